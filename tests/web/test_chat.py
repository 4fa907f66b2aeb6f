"""The farmers' web chat (/chat): the conversation core behind htmx and plain forms."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.web.routes.chat import (
    BROWSER_COOKIE,
    CHANNEL,
    TOO_FAST,
    WebChat,
)
from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.conversation import MAX_MESSAGE_CHARS
from cadrebot.handlers.forms.validators import id_check_char
from cadrebot.handlers.qa import THANKS
from cadrebot.handlers.turns import Inbound, TurnResult
from tests.support.forms import RISK_TYPED, VALID_ID
from tests.support.web import WebClient, csrf_of

Maker = Callable[..., WebClient]
QUESTION = "监测对象识别认定一般不超过多少天？"
# VALID_ID with a wrong check character: a typing mistake the form must catch.
BAD_ID = VALID_ID[:17] + ("0" if id_check_char(VALID_ID[:17]) != "0" else "1")


# --------------------------------------------------------------------------- reading pages


@dataclass
class Button:
    label: str
    fields: dict[str, str]
    pressed: str | None


@dataclass
class Fragment:
    """What the browser sees of a response: the buttons and the bubbles' texts."""

    buttons: list[Button] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found = Fragment()
        self._form: dict[str, str] | None = None
        self._button: tuple[list[str], str | None] | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "tap" in a.get("class", "").split():
            self._form = {}
        elif tag == "input" and self._form is not None and a.get("type") == "hidden":
            self._form[a["name"]] = a.get("value", "")
        elif tag == "button" and self._form is not None:
            self._button = ([], a.get("aria-pressed"))
        elif tag == "div" and a.get("class") == "text":
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[0].append(data)
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self._form is not None:
            label = "".join(self._button[0]).strip()
            self.found.buttons.append(Button(label, dict(self._form), self._button[1]))
            self._button = None
        elif tag == "form":
            self._form = None
        elif tag == "div" and self._text is not None:
            self.found.texts.append("".join(self._text))
            self._text = None


def read(html: str) -> Fragment:
    reader = _Reader()
    reader.feed(html)
    return reader.found


class Farmer:
    """A phone's browser on /chat: htmx posts with the page's CSRF token, buttons tapped by
    their label as shown."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        page = client.get("/chat")
        assert page.status_code == 200
        self.token = csrf_of(page.text)
        self.last = read(page.text)
        self.page = self.last  # the quick buttons under the input stay on the page
        self.seen: list[str] = [page.text]

    def post(self, data: dict[str, str], *, htmx: bool = True) -> httpx.Response:
        headers = {"HX-Request": "true", "X-CSRF-Token": self.token} if htmx else {}
        if not htmx:
            data = {**data, "csrf_token": self.token}
        response = self.client.post("/chat/send", data=data, headers=headers)
        self.seen.append(response.text)
        if response.status_code == 200:
            self.last = read(response.text)
        return response

    def say(self, message: str) -> httpx.Response:
        return self.post({"text": message})

    def tap(self, label: str) -> httpx.Response:
        button = self.button(label)
        return self.post(button.fields)

    def button(self, label: str) -> Button:
        shown = self.last.buttons + self.page.buttons
        matching = [b for b in shown if b.label.removeprefix("✓ ") == label]
        assert matching, f"no button {label!r} among {[b.label for b in shown]}"
        return matching[-1]

    def text(self) -> str:
        return "\n".join(self.last.texts)


def exchanges_of(stack: ConversationStack) -> list[str]:
    """The messages the core processed from the web chat (its exchange log)."""
    with stack.database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT inbound_text FROM exchanges WHERE channel = :c ORDER BY id"),
            {"c": CHANNEL},
        )
        return [row[0] for row in rows]


@pytest.fixture
def farmer(anonymous: WebClient) -> Farmer:
    return Farmer(anonymous)


# --------------------------------------------------------------------------- tests


def test_a_question_is_answered_with_its_citation_and_buttons(farmer: Farmer) -> None:
    response = farmer.say(QUESTION)
    assert response.status_code == 200
    said, answer = farmer.last.texts[:2]
    assert said == QUESTION
    assert "15天" in answer
    assert "出处：《全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点》" in answer
    assert "赣党农字〔2023〕2号" in answer
    labels = [b.label for b in farmer.last.buttons]
    assert labels[:3] == ["👍 有帮助", "👎 没帮助", "更多出处"]
    assert len(labels) > 3  # suggested next questions follow, each asking itself
    suggestion = farmer.last.buttons[3]
    assert suggestion.fields["text"] == f"/ask {suggestion.label}"
    # The typed form's input comes back empty (an htmx out-of-band swap).
    assert re.search(r'<input id="chat-input"[^>]*value=""[^>]*hx-swap-oob="true"', response.text)

    answer_buttons = farmer.last.buttons
    more = farmer.tap("更多出处")
    assert more.status_code == 200
    assert farmer.last.texts[0] == "更多出处"  # the tapped button's label as the user's bubble
    assert "出处" in farmer.text()

    rated = farmer.post(answer_buttons[0].fields)
    assert rated.status_code == 200
    assert THANKS in rated.text
    # No bubble of the user's for a rating; the answer's buttons become 更多出处 alone.
    assert 'class="bubble user"' not in rated.text
    bar = re.search(r'<div class="bar" id="(b[0-9a-f]+)-actions" hx-swap-oob="true">', rated.text)
    assert bar is not None and bar[1] == answer_buttons[0].fields["origin"]
    assert [b.label for b in read(rated.text).buttons] == ["更多出处"]


def test_a_question_without_javascript_redirects_back_to_the_chat(farmer: Farmer) -> None:
    response = farmer.client.post(
        "/chat/send",
        data={"text": QUESTION, "csrf_token": farmer.token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/chat#latest"
    page = farmer.client.get("/chat").text
    assert page.index('id="latest"') < page.index(QUESTION) < page.index("出处：《全省巩固")
    assert "15天" in page


def test_a_risk_report_is_filed_after_a_bad_id_and_listed_in_my_cases(
    farmer: Farmer,
) -> None:
    farmer.tap("风险申报")
    assert "（1/11）" in farmer.text()
    farmer.say(RISK_TYPED[0])
    response = farmer.say(BAD_ID)
    assert response.status_code == 200
    assert "校验位" in farmer.text() and "（2/11）" in farmer.text()  # asked again, politely
    for typed in RISK_TYPED[1:7]:
        farmer.say(typed)
    # The multi-choice question: choices toggle in place, then 完成.
    toggles = [b.label for b in farmer.last.buttons if b.pressed is not None]
    first, fourth = toggles[0], toggles[3]
    toggled = farmer.tap(first)
    assert 'class="bubble user"' not in toggled.text  # the question is redrawn in place
    assert 'hx-swap-oob="outerHTML"' in toggled.text
    assert farmer.button(first).pressed == "true"
    farmer.tap(fourth)
    assert [b.label for b in farmer.last.buttons if b.pressed == "true"] == [
        f"✓ {first}",
        f"✓ {fourth}",
    ]
    farmer.tap("完成")
    for typed in RISK_TYPED[8:]:
        farmer.say(typed)
    assert "确认提交" in [b.label for b in farmer.last.buttons]
    farmer.tap("确认提交")
    filed = re.search(r"编号：(FX-\d{4}-\d{6})", farmer.text())
    assert filed is not None, farmer.text()

    farmer.tap("我的申报")
    assert filed[1] in farmer.text()
    # The ID number was never shown in full, neither the wrong one nor the right one.
    for html in farmer.seen:
        assert BAD_ID not in html and VALID_ID not in html
    assert VALID_ID[:4] + "*" * 10 + VALID_ID[-4:] in "".join(farmer.seen)


def test_the_conversation_is_shown_by_another_worker_and_after_a_restart(
    web_stack: ConversationStack, farmer: Farmer
) -> None:
    """A phone's next page load may reach another `web --workers N` process, or this one
    restarted: the conversation shown is the same (kept with the database, not in memory)."""
    farmer.say(QUESTION)
    farmer.tap("👍 有帮助")
    elsewhere = WebClient(create_web_app(web_context_of(web_stack), housekeeping_seconds=None))
    elsewhere.cookies.set(BROWSER_COOKIE, farmer.client.cookies[BROWSER_COOKIE], path="/chat")
    page = elsewhere.get("/chat").text
    assert page.index(QUESTION) < page.index("15天") < page.index(THANKS)
    # and the conversation goes on there
    again = Farmer(elsewhere)
    again.say("那信丰县呢？")
    assert "信丰" in again.text()


def test_an_old_conversation_is_not_shown_and_is_purged(
    web_stack: ConversationStack, farmer: Farmer
) -> None:
    farmer.say(QUESTION)
    key = hashlib.sha256(farmer.client.cookies[BROWSER_COOKIE].encode("ascii")).hexdigest()
    store = web_stack.chat_transcripts
    assert store.load(key, fresh_after=web_stack.service.clock() - timedelta(minutes=1))
    later = web_stack.service.clock() + timedelta(minutes=31)
    assert store.purge(older_than=later - timedelta(minutes=30)) >= 1
    assert store.load(key, fresh_after=datetime.min.replace(tzinfo=UTC)) is None


def test_markup_in_a_message_is_shown_as_text(farmer: Farmer) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    response = farmer.say(evil)
    assert response.status_code == 200
    assert "<script>alert" not in response.text and "<img src=x" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text
    assert farmer.last.texts[0] == evil  # shown to the user exactly as typed
    assert "<script>alert" not in farmer.client.get("/chat").text


def test_the_kept_transcript_holds_hostile_input_masked_and_shows_it_as_text(
    web_stack: ConversationStack, farmer: Farmer
) -> None:
    spaced_id = " ".join(
        [VALID_ID[:4], VALID_ID[4:8], VALID_ID[8:12], VALID_ID[12:16], VALID_ID[16:]]
    )
    typed = f"=1+1 <b>粗</b> {spaced_id} 电话 138 1234 5678 " + "长" * 300
    assert farmer.say(typed).status_code == 200
    key = hashlib.sha256(farmer.client.cookies[BROWSER_COOKIE].encode("ascii")).hexdigest()
    with web_stack.database.engine.connect() as connection:
        kept = connection.execute(
            text("SELECT state FROM web_chat_transcripts WHERE browser = :b"), {"b": key}
        ).scalar_one()
    digits = re.sub(r"\D", "", kept)
    assert VALID_ID not in digits and spaced_id not in kept
    assert "13812345678" not in digits and "138 1234 5678" not in kept
    assert f"{VALID_ID[:4]}**********{VALID_ID[-4:]}" in kept and "138****5678" in kept
    page = farmer.client.get("/chat").text  # shown again from the database, as text
    assert "<b>粗</b>" not in page and "&lt;b&gt;粗&lt;/b&gt;" in page
    assert "=1+1" in page and spaced_id not in page


def test_a_post_without_the_csrf_token_is_refused_and_not_processed(
    farmer: Farmer, web_stack: ConversationStack
) -> None:
    response = farmer.client.post("/chat/send", data={"text": QUESTION})
    assert response.status_code == 403
    forged = farmer.client.post(
        "/chat/send", data={"text": QUESTION}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert forged.status_code == 403
    assert exchanges_of(web_stack) == []


def test_the_rate_limit_refuses_politely_and_does_not_process(
    web_app: FastAPI, web_stack: ConversationStack
) -> None:
    limited = web_stack.settings.model_copy(
        update={
            "web_chat_messages_per_minute": 3,
            "web_chat_messages_per_minute_per_address": 5,
        }
    )
    web_app.state.web_chat = WebChat(
        limited, web_stack.service, web_stack.chat_transcripts, now=web_stack.service.clock
    )
    one = Farmer(WebClient(web_app))
    statuses = [one.say(f"问题{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert TOO_FAST in one.seen[-1]
    assert exchanges_of(web_stack) == ["问题0", "问题1", "问题2"]
    # Without JavaScript: the page again, the message kept in the input, status 429.
    plain = one.post({"text": "问题3"}, htmx=False)
    assert plain.status_code == 429
    assert TOO_FAST in plain.text and 'value="问题3"' in plain.text

    # Another browser behind the same address shares the address's allowance.
    other = Farmer(WebClient(web_app))
    assert [other.say(f"另一个{n}").status_code for n in range(3)] == [200, 200, 429]
    assert len(exchanges_of(web_stack)) == 5


def test_a_message_over_the_cores_length_cap_gets_its_polite_refusal(farmer: Farmer) -> None:
    response = farmer.say("长" * (MAX_MESSAGE_CHARS + 1))
    assert response.status_code == 200
    assert f"请精简到{MAX_MESSAGE_CHARS}字以内" in farmer.text()


def test_the_browser_cookie_is_httponly_lax_and_stored_only_as_a_hash(
    anonymous: WebClient, web_stack: ConversationStack
) -> None:
    page = anonymous.get("/chat")
    cookies = page.headers.get_list("set-cookie")
    (browser,) = [c for c in cookies if c.startswith(f"{BROWSER_COOKIE}=")]
    assert "HttpOnly" in browser and "SameSite=lax" in browser
    assert f"Max-Age={30 * 24 * 3600}" in browser
    assert "Secure" not in browser  # plain http here; behind TLS the cookie is Secure
    token = anonymous.cookies[BROWSER_COOKIE]
    Farmer(anonymous).say(QUESTION)
    with web_stack.database.engine.connect() as connection:
        (external_id,) = connection.execute(
            text("SELECT external_id FROM users WHERE channel = :c"), {"c": CHANNEL}
        ).one()
    assert external_id == hashlib.sha256(token.encode()).hexdigest()
    # The same browser keeps its conversation: a second page load shows it, and restarts
    # the cookie's 30 days with the same token.
    again = anonymous.get("/chat")
    assert QUESTION in again.text
    (renewed,) = [c for c in again.headers.get_list("set-cookie") if c.startswith(BROWSER_COOKIE)]
    assert renewed.startswith(f"{BROWSER_COOKIE}={token};")
    assert f"Max-Age={30 * 24 * 3600}" in renewed


def test_behind_tls_the_browser_cookie_is_secure(web_app: FastAPI) -> None:
    page = WebClient(web_app, base_url="https://chat.example").get("/chat")
    (browser,) = [c for c in page.headers.get_list("set-cookie") if c.startswith(BROWSER_COOKIE)]
    assert "Secure" in browser


def test_two_browsers_are_two_conversations(web_app: FastAPI) -> None:
    one, two = Farmer(WebClient(web_app)), Farmer(WebClient(web_app))
    one.tap("风险申报")
    two.say(QUESTION)
    assert "出处" in two.text()
    assert QUESTION not in one.client.get("/chat").text
    one.say("张三")
    assert "（2/11）" in one.text()


def test_a_logged_in_cadre_is_an_anonymous_user_on_the_chat(web_client: Maker) -> None:
    cadre = web_client()
    chat = Farmer(cadre)
    assert chat.token == cadre.csrf  # the session's token, as the CSRF check expects
    response = chat.say("/cases")
    assert response.status_code == 200
    assert "仅限已登记的干部" in chat.text()


class Overlap:
    """The real conversation core, recording how many turns run at once (each held a
    little longer, so that turns let through together do overlap)."""

    def __init__(self, core: ConversationStack) -> None:
        self.core = core.service
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def turn(self, inbound: Inbound) -> TurnResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return self.core.turn(inbound)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("limit", [1, 3])
async def test_turns_beyond_the_limit_wait_their_turn(
    web_app: FastAPI, web_stack: ConversationStack, limit: int
) -> None:
    settings = web_stack.settings.model_copy(update={"web_chat_concurrent_turns": limit})
    overlap = Overlap(web_stack)
    web_app.state.web_chat = WebChat(
        settings, overlap, web_stack.chat_transcripts, now=web_stack.service.clock
    )
    transport = httpx.ASGITransport(app=web_app)
    browsers = [httpx.AsyncClient(transport=transport, base_url="http://chat") for _ in range(6)]
    try:
        tokens = [csrf_of((await b.get("/chat")).text) for b in browsers]
        sent = await asyncio.gather(
            *(
                b.post(
                    "/chat/send",
                    data={"text": f"/help {n}"},
                    headers={"HX-Request": "true", "X-CSRF-Token": token},
                )
                for n, (b, token) in enumerate(zip(browsers, tokens, strict=True))
            )
        )
    finally:
        for b in browsers:
            await b.aclose()
    assert [r.status_code for r in sent] == [200] * 6
    assert overlap.most == limit
