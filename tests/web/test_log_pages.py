"""The conversation log page through the real app: questions asked through the real
conversation core, filtered to the unanswered and the 👎 ones, the most frequent unanswered
questions, the 写更正 links; masked and escaped; admins only.

The questions here are written for these tests, not taken from any eval set."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.turns import Inbound, TurnResult
from tests.support.web import WebClient

ANSWERED = "部门数据比对和筛查预警要常态化开展吗？"
UNANSWERED = "养老金每年涨多少？"
MakeClient = Callable[..., WebClient]


def ask(stack: ConversationStack, chat: str, text: str) -> TurnResult:
    return stack.service.turn(Inbound("telegram", chat, f"用户{chat}", text))


def logged_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-exchange="(\d+)"', html)]


@pytest.fixture
def admin(web_client: MakeClient) -> WebClient:
    return web_client(role="admin", township=None)


def test_the_log_filters_unanswered_and_thumbs_down(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    answered = ask(web_stack, "1", ANSWERED)
    unanswered = ask(web_stack, "2", UNANSWERED)
    ask(web_stack, "2", "/help")  # a command: not a question
    again = ask(web_stack, "3", UNANSWERED)
    disliked = ask(web_stack, "4", f"/ask {ANSWERED}")
    ask(web_stack, "4", f"/rate {disliked.exchange_id} down")

    everything = admin.get("/log")
    assert everything.status_code == 200
    assert logged_ids(everything.text) == [
        disliked.exchange_id,
        again.exchange_id,
        unanswered.exchange_id,
        answered.exchange_id,
    ]
    assert (
        "共 4 个问题" in everything.text and "已回答" in everything.text and "👎" in everything.text
    )
    missing = admin.get("/log", params={"view": "unanswered"}).text
    assert logged_ids(missing) == [again.exchange_id, unanswered.exchange_id]
    assert "未找到" in missing
    down = admin.get("/log", params={"view": "thumbs_down"}).text
    assert logged_ids(down) == [disliked.exchange_id]
    # The most frequent unanswered, counted, each with a correction link.
    top = re.search(r'<ol class="top-unanswered">(.*?)</ol>', everything.text, re.S)
    assert top is not None and f'{UNANSWERED}</span> <span class="count">（2 次）' in top[1]
    assert "/knowledge/corrections?question=%E5%85%BB%E8%80%81" in top[1]
    link = f'href="/knowledge/corrections?exchange={unanswered.exchange_id}"'
    assert link in everything.text
    # An unknown filter shows everything rather than failing.
    assert logged_ids(admin.get("/log", params={"view": "nonsense"}).text) == logged_ids(
        everything.text
    )


def test_the_log_masks_ids_and_shows_markup_as_text(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    ask(web_stack, "5", "我身份证是360121199001011234，<b>低保</b>怎么申请？")
    page = admin.get("/log").text
    assert "360121199001011234" not in page and "3601**********1234" in page
    assert "&lt;b&gt;低保&lt;/b&gt;" in page and "<b>低保</b>" not in page


def test_the_log_pages(admin: WebClient, web_stack: ConversationStack) -> None:
    asked = [ask(web_stack, str(n), f"第{n}个关于养老金的问题？").exchange_id for n in range(22)]
    first = admin.get("/log").text
    assert logged_ids(first) == asked[::-1][:20] and "第 1/2 页" in first
    assert 'href="/log?view=all&amp;page=2"' in first
    second = admin.get("/log", params={"page": "2"}).text
    assert logged_ids(second) == asked[1::-1]


def test_a_cadre_gets_403_and_no_session_goes_to_the_login(
    web_client: MakeClient, anonymous: WebClient
) -> None:
    cadre = web_client(role="cadre")
    for url in ("/log", "/log?view=thumbs_down&page=2"):
        refused = cadre.get(url)
        assert refused.status_code == 403 and "只有管理员" in refused.text
    response = anonymous.get("/log", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Flog"


def test_the_log_names_the_web_chat_channel(admin: WebClient, web_stack: ConversationStack) -> None:
    web_stack.service.turn(Inbound("webchat", "browser1", "网页用户", UNANSWERED))
    page = admin.get("/log").text
    assert "网页咨询" in page
    assert ">webchat<" not in page
