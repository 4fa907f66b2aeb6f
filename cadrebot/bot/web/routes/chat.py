"""The farmers' web chat (/chat): the same conversation as Telegram and the console.

Every message goes to the conversation core as one turn on channel ``webchat``; this module
only renders the turn's structured output as HTML: replies as bubbles (line breaks kept,
text autoescaped), options as buttons (toggles with the current selection in a multi-choice),
actions (👍/👎, 更多出处, 立即申报, …) as buttons carrying their command, suggested next
questions as buttons, a toast as a small notice. A tapped button sends its payload or command
with ``via_button``. Nothing here parses reply text or checks a role: on the chat everyone is
an anonymous user of the ``webchat`` channel (a logged-in cadre too: staff powers are on the
console pages, not here).

No login: a browser is identified by a random token in an HttpOnly cookie; the core sees
only its SHA-256 (``external_id``), so the database never holds the cookie's value.

htmx posts a message to /chat/send and appends the returned fragment to the transcript; the
same form posted without JavaScript gets a redirect back to /chat, which shows the latest
exchanges as rendered (:class:`Transcripts`, kept with the database for 30 minutes, so a
reload, another ``--workers`` process or a restarted one shows the conversation too; the
conversation itself lives in the database as on every channel).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import current_staff, session_of, web_context
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import cookie_is_secure, csrf_protect
from cadrebot.bot.wiring import WEB_CHAT_CHANNEL
from cadrebot.handlers.conversation import MAX_MESSAGE_CHARS
from cadrebot.handlers.forms.engine import CANCEL_LABEL, SUBMIT_LABEL
from cadrebot.handlers.forms.fields import DONE_WORD, SKIP_WORD, TOGGLE_PREFIX
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import Action, ActionKind, Reply
from cadrebot.handlers.turns import BackgroundTask, Inbound, TurnResult
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(csrf_protect)])

CHANNEL = WEB_CHAT_CHANNEL
DISPLAY_NAME = "网页用户"
BROWSER_COOKIE = "cadrebot_chat"
BROWSER_COOKIE_DAYS = 30
RATE_WINDOW_SECONDS = 60.0

TOO_FAST = "您发送消息太频繁了，请稍等一分钟再发，我会继续为您服务。"
NO_FILES_HERE = "（网页咨询不能发送文件：{name}）"
WELCOME = (
    "您好！我是乡村振兴政策助手。\n"
    "可以直接输入政策问题，我会注明出处；也可以点下面的按钮申报防返贫风险、申请产业奖补，"
    "或查看您的申报进度。"
)

# The buttons under the input: the forms and the farmer's own cases, always one tap away.
QUICK_COMMANDS = (
    ("风险申报", "/report"),
    ("产业奖补", "/subsidy"),
    ("我的申报", "/mycases"),
    ("取消", "/cancel"),
    ("帮助", "/help"),
)

# Options that finish or leave a question rather than answer it: shown apart from the choices.
_CONTROL_WORDS = frozenset({SUBMIT_LABEL, CANCEL_LABEL, DONE_WORD, SKIP_WORD})
_ASK = "/ask "
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_BUBBLE_ID = re.compile(r"b[0-9a-f]{12}")
# Longer messages get the core's own polite refusal (2,000 characters); this only bounds
# what a request may make the process hold.
MAX_FORM_CHARS = 10_000


class Conversation(Protocol):
    """What the chat needs of the conversation core."""

    def turn(self, inbound: Inbound) -> TurnResult: ...

    def pending_notices(self, channel: str, external_id: str) -> list[str]: ...


# --------------------------------------------------------------------------- what is shown


@dataclass(frozen=True)
class ChatButton:
    """A button: ``send`` goes back through the core as the user's text."""

    label: str
    send: str
    style: str  # choice, control, action, feedback, start, suggestion, quick
    pressed: bool | None = None  # a multi-choice toggle: chosen or not


@dataclass(frozen=True)
class ChatBubble:
    """One reply of the assistant, ready for the template."""

    id: str
    text: str
    choices: tuple[ChatButton, ...] = ()
    controls: tuple[ChatButton, ...] = ()
    actions: tuple[ChatButton, ...] = ()
    suggestions: tuple[ChatButton, ...] = ()
    multi_select: bool = False
    expects_reply: bool = False


@dataclass
class ChatTurn:
    """One exchange: what the user sent (masked), the replies, a toast."""

    said: str | None
    bubbles: list[ChatBubble] = field(default_factory=list)
    toast: str | None = None


@dataclass
class ChatUpdate:
    """What one message changes on the page: a new exchange appended, bubbles of earlier
    exchanges replaced (a toggled choice) or given new actions (a rated answer)."""

    turn: ChatTurn
    replaced: list[ChatBubble] = field(default_factory=list)
    re_actioned: list[ChatBubble] = field(default_factory=list)
    prompt: str | None = None  # a reply that expects the next message as its answer


def new_bubble_id() -> str:
    return "b" + secrets.token_hex(6)


def _action_button(action: Action) -> ChatButton:
    style = {
        ActionKind.FEEDBACK: "feedback",
        ActionKind.START: "start",
    }.get(action.kind, "action")
    return ChatButton(action.label, action.command, style)


def bubble_of(reply: Reply, bubble_id: str, suggestions: Sequence[str] = ()) -> ChatBubble:
    """``reply`` as a bubble: choices, control words, actions and suggested questions."""
    chosen = set(reply.selected)
    choices: list[ChatButton] = []
    controls: list[ChatButton] = []
    for option in reply.options:
        if option.payload in _CONTROL_WORDS:
            controls.append(ChatButton(option.label, option.payload, "control"))
        elif reply.multi_select and option.payload.startswith(TOGGLE_PREFIX):
            choices.append(
                ChatButton(option.label, option.payload, "choice", option.label in chosen)
            )
        else:
            choices.append(ChatButton(option.label, option.payload, "choice"))
    return ChatBubble(
        bubble_id,
        reply.text,
        tuple(choices),
        tuple(controls),
        *_split_actions(reply.actions, suggestions if reply.is_answer else ()),
        multi_select=reply.multi_select,
        expects_reply=reply.expects_reply,
    )


def _split_actions(
    actions: Sequence[Action], suggestions: Sequence[str]
) -> tuple[tuple[ChatButton, ...], tuple[ChatButton, ...]]:
    """(the action bar, the suggested next questions) of a reply."""
    asked = set(suggestions)
    bar: list[ChatButton] = []
    asks: list[ChatButton] = []
    for action in actions:
        is_suggestion = (
            action.kind == ActionKind.NAVIGATE
            and action.label in asked
            and action.command.startswith(_ASK)
        )
        if is_suggestion:
            asks.append(ChatButton(action.label, action.command, "suggestion"))
        else:
            bar.append(_action_button(action))
    return tuple(bar), tuple(asks)


def update_of(
    result: TurnResult, *, said: str | None, origin: str | None, via_button: bool
) -> ChatUpdate:
    """The page changes of one turn. A tapped button's own exchange shows its label as the
    user's bubble, unless the turn only changed the message the button belongs to (a
    toggled choice, a rating): then there is nothing new to answer."""
    new: list[ChatBubble] = []
    replaced: list[ChatBubble] = []
    prompt: str | None = None
    for reply in result.replies:
        if reply.replaces_origin and origin is not None:
            replaced.append(bubble_of(reply, origin, result.suggestions))
        else:
            new.append(bubble_of(reply, new_bubble_id(), result.suggestions))
        if reply.expects_reply:
            prompt = reply.text
    for file in result.files:
        text = f"{file.caption}\n" if file.caption else ""
        new.append(ChatBubble(new_bubble_id(), text + NO_FILES_HERE.format(name=file.file_name)))
    re_actioned: list[ChatBubble] = []
    if origin is not None and result.origin_actions is not None:
        bar, _ = _split_actions(result.origin_actions, ())
        re_actioned.append(ChatBubble(origin, "", actions=bar))
    shown_said = said if (new or not via_button) else None
    return ChatUpdate(ChatTurn(shown_said, new, result.toast), replaced, re_actioned, prompt)


# --------------------------------------------------------------------------- transcripts


class TranscriptStore(Protocol):
    """Where the transcripts are kept (storage/chat_transcripts.py): one text per browser."""

    def load(self, browser: str, *, fresh_after: datetime) -> str | None: ...

    def save(self, browser: str, state: str, *, at: datetime) -> None: ...


TRANSCRIPT_TTL = timedelta(minutes=30)


@dataclass
class BrowserState:
    """A browser's transcript as loaded: its latest turns and the reply it expects."""

    turns: deque[ChatTurn]
    prompt: str | None = None


class Transcripts:
    """Each browser's latest exchanges as rendered: what /chat shows on a reload, after a
    form posted without JavaScript, on another ``--workers`` process or after a restart.
    Kept with the database (a :class:`TranscriptStore`), bounded in turns and time (gone
    30 minutes after the last change). Blocking: call it from a worker thread."""

    def __init__(
        self,
        store: TranscriptStore,
        *,
        now: Callable[[], datetime],
        turns_kept: int = 8,
        ttl: timedelta = TRANSCRIPT_TTL,
    ) -> None:
        self._store = store
        self._now = now
        self._turns_kept = turns_kept
        self._ttl = ttl

    def load(self, key: str) -> BrowserState:
        state = self._store.load(key, fresh_after=self._now() - self._ttl)
        browser = BrowserState(deque(maxlen=self._turns_kept))
        if state is None:
            return browser
        try:
            saved = json.loads(state)
            browser.turns.extend(_turn_of(turn) for turn in saved["turns"])
            browser.prompt = saved.get("prompt")
        except (ValueError, KeyError, TypeError):  # another version's shape: start afresh
            log.warning("a web chat transcript could not be read; starting it afresh")
            browser.turns.clear()
        return browser

    def _save(self, key: str, browser: BrowserState) -> None:
        state = {"turns": [_saved(turn) for turn in browser.turns], "prompt": browser.prompt}
        self._store.save(key, json.dumps(state, ensure_ascii=False), at=self._now())

    def turns(self, key: str) -> list[ChatTurn]:
        return list(self.load(key).turns)

    def record(self, key: str, update: ChatUpdate, browser: BrowserState | None = None) -> None:
        """Add a turn's update to the transcript: ``browser`` as loaded before the turn (a
        browser sends one message at a time), or loaded now."""
        browser = browser if browser is not None else self.load(key)
        turn = ChatTurn(update.turn.said, list(update.turn.bubbles), update.turn.toast)
        for bubble in update.replaced:
            if not self._edit(browser, bubble.id, _replacing(bubble)):
                turn.bubbles.append(bubble)  # its message is no longer kept: show it anew
        for bubble in update.re_actioned:
            self._edit(browser, bubble.id, _with_actions_of(bubble))
        if turn.said is not None or turn.bubbles or turn.toast:
            browser.turns.append(turn)
        # A reply expecting an answer is answered by the very next message only.
        browser.prompt = update.prompt
        self._save(key, browser)

    def append(self, key: str, texts: Sequence[str]) -> list[ChatTurn]:
        """Messages for this browser from outside its own turns (notices, a finished
        background task), shown from its next page load on; the transcript with them."""
        browser = self.load(key)
        if texts:
            for text in texts:
                browser.turns.append(ChatTurn(None, [ChatBubble(new_bubble_id(), text)]))
            self._save(key, browser)
        return list(browser.turns)

    @staticmethod
    def _edit(
        browser: BrowserState, bubble_id: str, change: Callable[[ChatBubble], ChatBubble]
    ) -> bool:
        for turn in browser.turns:
            for n, old in enumerate(turn.bubbles):
                if old.id == bubble_id:
                    turn.bubbles[n] = change(old)
                    return True
        return False


def _saved_buttons(buttons: Sequence[ChatButton]) -> list[dict[str, Any]]:
    return [
        {"label": b.label, "send": b.send, "style": b.style, "pressed": b.pressed} for b in buttons
    ]


def _saved(turn: ChatTurn) -> dict[str, Any]:
    """A turn as JSON data (by hand: ``dataclasses.asdict`` deep-copies, ten times slower)."""
    return {
        "said": turn.said,
        "toast": turn.toast,
        "bubbles": [
            {
                "id": b.id,
                "text": b.text,
                "choices": _saved_buttons(b.choices),
                "controls": _saved_buttons(b.controls),
                "actions": _saved_buttons(b.actions),
                "suggestions": _saved_buttons(b.suggestions),
                "multi_select": b.multi_select,
                "expects_reply": b.expects_reply,
            }
            for b in turn.bubbles
        ],
    }


def _buttons_of(saved: list[dict[str, Any]]) -> tuple[ChatButton, ...]:
    return tuple(ChatButton(**button) for button in saved)


def _turn_of(saved: dict[str, Any]) -> ChatTurn:
    bubbles = [
        ChatBubble(
            id=bubble["id"],
            text=bubble["text"],
            choices=_buttons_of(bubble["choices"]),
            controls=_buttons_of(bubble["controls"]),
            actions=_buttons_of(bubble["actions"]),
            suggestions=_buttons_of(bubble["suggestions"]),
            multi_select=bool(bubble["multi_select"]),
            expects_reply=bool(bubble["expects_reply"]),
        )
        for bubble in saved["bubbles"]
    ]
    return ChatTurn(saved["said"], bubbles, saved["toast"])


def _replacing(new: ChatBubble) -> Callable[[ChatBubble], ChatBubble]:
    return lambda _old: new


def _with_actions_of(new: ChatBubble) -> Callable[[ChatBubble], ChatBubble]:
    return lambda old: replace(old, actions=new.actions)


class SlidingWindowLimit:
    """At most ``limit`` accepted messages per key in any ``window`` seconds (in memory, per
    process). Refused messages do not count, so a browser that waits gets through."""

    def __init__(
        self,
        limit: int,
        window: float = RATE_WINDOW_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 20_000,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}

    def full(self, key: str) -> bool:
        stamps = self._seen.get(key)
        if stamps is None:
            return False
        now = self._clock()
        while stamps and now - stamps[0] >= self._window:
            stamps.popleft()
        return len(stamps) >= self._limit

    def record(self, key: str) -> None:
        now = self._clock()
        self._seen.setdefault(key, deque()).append(now)
        if len(self._seen) > self._max_keys:
            idle = [k for k, s in self._seen.items() if not s or now - s[-1] >= self._window]
            for k in idle:
                del self._seen[k]


class WebChat:
    """The chat's state: its rate limits (per process), the transcripts (in the database)."""

    def __init__(
        self,
        settings: Settings,
        conversation: Conversation,
        transcripts: TranscriptStore,
        *,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conversation = conversation
        self.per_browser = SlidingWindowLimit(settings.web_chat_messages_per_minute, clock=clock)
        self.per_address = SlidingWindowLimit(
            settings.web_chat_messages_per_minute_per_address, clock=clock
        )
        self.transcripts = Transcripts(transcripts, now=now)
        # Turns are CPU-bound: past a few at once they only slow each other down, so the
        # rest wait here, first come first served, instead of in the thread pool.
        self.turns = asyncio.Semaphore(settings.web_chat_concurrent_turns)
        self._background: set[asyncio.Task[None]] = set()

    def admit(self, browser: str, address: str) -> bool:
        """Count the message if both its browser and its address are under their limits."""
        if self.per_browser.full(browser) or self.per_address.full(address):
            return False
        self.per_browser.record(browser)
        self.per_address.record(address)
        return True

    def start(self, key: str, tasks: Sequence[BackgroundTask]) -> None:
        """Run slow work a turn started in a worker thread; its outcome joins the transcript."""
        for task in tasks:
            running = asyncio.create_task(self._run(key, task))
            self._background.add(running)
            running.add_done_callback(self._background.discard)

    async def _run(self, key: str, task: BackgroundTask) -> None:
        try:
            outcome = await asyncio.to_thread(task.run, lambda _text: None)
        except Exception:
            log.exception("web chat background task failed")
            return
        await asyncio.to_thread(self.transcripts.append, key, [outcome])


async def web_chat(request: Request) -> WebChat:
    """The app's chat state, made on first use (async, so on the event loop: made once)."""
    chat: WebChat | None = getattr(request.app.state, "web_chat", None)
    if chat is None:
        web = web_context(request)
        chat = WebChat(web.settings, web.stack.service, web.stack.chat_transcripts, now=web.clock)
        request.app.state.web_chat = chat
    return chat


ChatDep = Annotated[WebChat, Depends(web_chat)]


# --------------------------------------------------------------------------- browsers


@dataclass(frozen=True)
class BrowserId:
    token: str
    new: bool

    @property
    def key(self) -> str:
        """The core's external id: the token's hash, never the token itself."""
        return hashlib.sha256(self.token.encode("ascii")).hexdigest()


def browser_of(request: Request) -> BrowserId:
    token = request.cookies.get(BROWSER_COOKIE, "")
    if _TOKEN.fullmatch(token):
        return BrowserId(token, new=False)
    return BrowserId(secrets.token_urlsafe(32), new=True)


def _remember(
    response: Response, request: Request, browser: BrowserId, *, renew: bool = False
) -> Response:
    """Set the browser's cookie when it is new; ``renew`` (a page load) restarts its 30 days,
    so a farmer who keeps coming back keeps the conversation."""
    if browser.new or renew:
        response.set_cookie(
            BROWSER_COOKIE,
            browser.token,
            max_age=BROWSER_COOKIE_DAYS * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=cookie_is_secure(request),
            path="/chat",
        )
    return response


async def _as_staff_if_logged_in(request: Request) -> None:
    """A logged-in cadre's forms carry the session's CSRF token (what the check expects for
    a request with a session) and the page shows their navigation; the chat itself still
    treats them as an anonymous web-chat user."""
    if await session_of(request) is not None:
        await current_staff(request)


def _quick_buttons() -> list[ChatButton]:
    return [ChatButton(label, command, "quick") for label, command in QUICK_COMMANDS]


async def _page(
    request: Request,
    chat: WebChat,
    browser: BrowserId,
    *,
    notice: str | None = None,
    draft: str = "",
    status_code: int = 200,
    turns: list[ChatTurn] | None = None,
) -> Response:
    """The chat page; ``turns``: the transcript when the caller has just loaded it."""
    if turns is None:
        turns = await run_in_threadpool(chat.transcripts.turns, browser.key)
    context = {
        "turns": turns,
        "welcome": WELCOME,
        "quick": _quick_buttons(),
        "notice": notice,
        "draft": draft,
        "max_chars": MAX_MESSAGE_CHARS,
    }
    response = render(request, "chat/page.html", context, status_code=status_code)
    return _remember(response, request, browser, renew=True)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --------------------------------------------------------------------------- routes


@router.get("/chat")
async def chat_page(request: Request, chat: ChatDep) -> Response:
    await _as_staff_if_logged_in(request)
    browser = browser_of(request)
    if not browser.new:
        # A status change made since the last visit (the case desk's notice, kept in the
        # outbox because a browser cannot be reached): shown now, at the end of the chat.
        waiting = await run_in_threadpool(chat.conversation.pending_notices, CHANNEL, browser.key)
        turns = await run_in_threadpool(chat.transcripts.append, browser.key, waiting)
        return await _page(request, chat, browser, turns=turns)
    return await _page(request, chat, browser)


@router.post("/chat/send")
async def send(
    request: Request,
    chat: ChatDep,
    text: Annotated[str, Form(max_length=MAX_FORM_CHARS)] = "",
    via_button: Annotated[str, Form(max_length=5)] = "",
    label: Annotated[str, Form(max_length=200)] = "",
    origin: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    await _as_staff_if_logged_in(request)
    browser = browser_of(request)
    htmx = _is_htmx(request)
    if not text.strip():
        response: Response = Response(status_code=204) if htmx else _back_to_chat()
        return _remember(response, request, browser)
    address = request.client.host if request.client else "unknown"
    tapped = via_button == "1"
    if not chat.admit(browser.key, address):
        if htmx:
            refused = render(request, "chat/refused.html", {"message": TOO_FAST}, status_code=429)
            return _remember(refused, request, browser)
        draft = "" if tapped else text
        return await _page(request, chat, browser, notice=TOO_FAST, draft=draft, status_code=429)

    key = browser.key
    state = await run_in_threadpool(chat.transcripts.load, key)
    inbound = Inbound(
        CHANNEL,
        key,
        DISPLAY_NAME,
        text,
        replying_to=state.prompt,
        via_button=tapped,
    )
    async with chat.turns:
        result = await run_in_threadpool(chat.conversation.turn, inbound)
    # What the user sent is shown back masked: an ID or phone number typed into a form is
    # never echoed in full (nor kept in full in the transcript's memory).
    said = mask_sensitive(label if tapped and label else text)
    bubble_origin = origin if _BUBBLE_ID.fullmatch(origin) else None
    update = update_of(result, said=said, origin=bubble_origin, via_button=tapped)
    await run_in_threadpool(chat.transcripts.record, key, update, state)
    chat.start(key, result.tasks)
    if not htmx:
        return _remember(_back_to_chat(), request, browser)
    context = {"update": update, "clear_input": not tapped, "max_chars": MAX_MESSAGE_CHARS}
    return _remember(render(request, "chat/update.html", context), request, browser)


def _back_to_chat() -> Response:
    return RedirectResponse("/chat#latest", status_code=303)
