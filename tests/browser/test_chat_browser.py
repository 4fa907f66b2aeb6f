"""The farmers' web chat on a phone's browser (and WeChat's): asking, filing a risk report."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import WECHAT, Contexts, LiveServer, screenshot
from tests.browser.pages import ChatPage
from tests.support.forms import RISK_TYPED, VALID_ID
from tests.web.test_chat import BAD_ID, QUESTION

pytestmark = pytest.mark.browser


def test_a_farmer_on_a_phone_files_a_risk_report_after_a_bad_id(
    live_server: LiveServer, new_context: Contexts
) -> None:
    chat = ChatPage(new_context(phone=True).new_page(), live_server.url).open()
    page = chat.page
    # Mobile first: the input stays at the bottom of the screen, the buttons are big.
    box = page.locator("footer.composer").bounding_box()
    assert box is not None and box["y"] + box["height"] == pytest.approx(844, abs=1)
    quick = chat.button("风险申报").bounding_box()
    assert quick is not None and quick["height"] >= 40

    chat.tap("风险申报", expect_reply="（1/11）")
    chat.say(RISK_TYPED[0], expect_reply="（2/11）")
    chat.say(BAD_ID, expect_reply="校验位")
    expect(chat.last_reply).to_contain_text("（2/11）")  # asked again
    expect(chat.user_bubbles.last).to_have_text(BAD_ID[:4] + "*" * 10 + BAD_ID[-4:])
    expect(chat.input).to_have_value("")
    for typed in RISK_TYPED[1:7]:
        chat.say(typed)
    toggles = chat.last_reply.locator("button[aria-pressed]")
    first, fourth = toggles.nth(0).inner_text(), toggles.nth(3).inner_text()
    chat.toggle(first)
    chat.toggle(fourth)
    expect(chat.last_reply.locator('button[aria-pressed="true"]')).to_have_count(2)
    screenshot(page, "chat-multi-choice-phone", full_page=False)
    chat.tap("完成")
    for typed in RISK_TYPED[8:]:
        chat.say(typed)
    expect(chat.last_reply).to_contain_text(VALID_ID[:4] + "*" * 10 + VALID_ID[-4:])
    chat.tap("确认提交", expect_reply="已受理")
    number = re.search(r"FX-\d{4}-\d{6}", chat.last_reply.inner_text())
    assert number is not None
    chat.tap("我的申报", expect_reply=number[0])
    screenshot(page, "chat-phone")
    html = page.content()
    assert BAD_ID not in html and VALID_ID not in html

    # A reload shows the conversation so far; the same browser keeps it.
    page.reload()
    expect(chat.bot_bubbles.last).to_contain_text(number[0])


def test_the_chat_in_wechats_browser_answers_with_the_citation(
    live_server: LiveServer, new_context: Contexts
) -> None:
    chat = ChatPage(new_context(phone=True, user_agent=WECHAT).new_page(), live_server.url).open()
    assert "MicroMessenger" in chat.page.evaluate("navigator.userAgent")
    chat.say(
        QUESTION, expect_reply="出处：《全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点》"
    )
    expect(chat.last_reply.get_by_role("button", name="更多出处")).to_be_visible()
    chat.press("👍 有帮助")
    expect(chat.page.get_by_role("status").last).to_contain_text("感谢您的反馈")
    expect(chat.last_reply.get_by_role("button", name="👍 有帮助")).to_have_count(0)
    screenshot(chat.page, "chat-wechat")


def test_the_chat_works_without_javascript(live_server: LiveServer, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False, locale="zh-CN")
    try:
        chat = ChatPage(context.new_page(), live_server.url).open()
        chat.input.fill(QUESTION)
        chat.input.press("Enter")
        expect(chat.page).to_have_url(re.compile(r"/chat#latest$"))
        expect(chat.last_reply).to_contain_text("出处")
        chat.page.get_by_role("button", name="风险申报", exact=True).click()
        expect(chat.last_reply).to_contain_text("（1/11）")
    finally:
        context.close()
