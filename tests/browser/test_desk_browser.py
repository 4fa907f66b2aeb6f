"""The console's desks in a real browser: a cadre working a case and exporting the ledger,
a case outside the jurisdiction, an admin's upload answered after the build, a correction
changing the answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.turns import Inbound
from tests.browser.conftest import Contexts, LiveServer, screenshot
from tests.browser.pages import (
    CasesPage,
    ChatPage,
    ErrorPage,
    HitTestPage,
    KnowledgePage,
    LoginPage,
    LogPage,
)
from tests.support.forms import RISK_TYPED, VALID_ID
from tests.web.test_chat import QUESTION

pytestmark = pytest.mark.browser

MASKED_ID = VALID_ID[:4] + "*" * 10 + VALID_ID[-4:]
TEA_NOTICE = """关于做好2026年高山茶园种植奖补工作的通知

各乡镇人民政府：
为发展高山茶产业，现就2026年高山茶园种植奖补事项通知如下。

一、奖补标准
1. 新种高山茶园每亩一次性奖补800元，由乡镇统一申报。（责任单位：县农业农村局）
2. 申请奖补的茶园连片面积须达到10亩以上。（责任单位：县农业农村局）
"""


def file_risk_report(stack: ConversationStack, who: str = "farmer-1") -> str:
    """A 防返贫 risk report filed through the conversation core (大塘埠镇); its number."""
    for text in ("/report", *RISK_TYPED, "确认提交"):
        result = stack.service.turn(Inbound("webchat", who, "网页用户", text))
    filed = re.search(r"FX-\d{4}-\d{6}", result.text)
    assert filed is not None, result.text
    return filed[0]


def test_a_cadre_moves_a_case_on_and_exports_the_ledger_with_masked_ids(
    live_server: LiveServer, page: Page, tmp_path: Path
) -> None:
    number = file_risk_report(live_server.stack)
    live_server.account("li", township="大塘埠镇")
    LoginPage(page, live_server.url).open("/login?next=/cases").log_in("li")
    cases = CasesPage(page, live_server.url)
    expect(cases.row(number)).to_contain_text("已受理")
    screenshot(page, "cases")
    case = cases.open_case(number)
    expect(case.status).to_have_text("已受理")
    expect(page.locator("table.fields")).to_contain_text(MASKED_ID)
    screenshot(page, "case")
    case.move_to("核实中", note="已安排入户核实。")
    expect(case.status).to_have_text("核实中")
    expect(page.locator("ol.timeline")).to_contain_text("已受理 → 核实中")
    assert VALID_ID not in page.content()

    ledger = CasesPage(page, live_server.url).open().export(tmp_path)
    assert ledger.suffix == ".xlsx"
    cells = [
        str(cell)
        for sheet in load_workbook(ledger, read_only=True).worksheets
        for row in sheet.iter_rows(values_only=True)
        for cell in row
        if cell is not None
    ]
    assert number in cells
    assert MASKED_ID in cells
    assert not any(VALID_ID in cell for cell in cells)

    page.goto(live_server.url + "/dashboard")
    expect(page.get_by_role("heading", name="统计看板")).to_be_visible()
    expect(page.locator("#total")).to_have_text("1")
    screenshot(page, "dashboard")


def test_another_townships_case_is_not_found(live_server: LiveServer, page: Page) -> None:
    number = file_risk_report(live_server.stack)
    live_server.account("wang", township="潭东镇")
    LoginPage(page, live_server.url).open("/login?next=/cases").log_in("wang")
    expect(CasesPage(page, live_server.url).row(number)).to_have_count(0)
    response = page.goto(f"{live_server.url}/cases/{number}")
    assert response is not None and response.status == 404
    ErrorPage(page).expect_status("没有找到")
    assert "张三" not in page.content()  # nothing of the case is shown


def test_an_uploaded_document_is_listed_and_answered_after_the_build(
    live_server: LiveServer, page: Page, new_context: Contexts, tmp_path: Path
) -> None:
    live_server.account("boss", role="admin")
    LoginPage(page, live_server.url).open("/login?next=/knowledge").log_in("boss")
    notice = tmp_path / "tea-subsidy-2026.txt"
    notice.write_text(TEA_NOTICE, encoding="utf-8")
    knowledge = KnowledgePage(page, live_server.url)
    knowledge.upload(notice)
    knowledge.wait_for_build()
    knowledge.open()
    expect(knowledge.document_row("tea-subsidy-2026.txt")).to_contain_text("高山茶园")
    screenshot(page, "knowledge")

    answer = HitTestPage(page, live_server.url).search("新种高山茶园每亩奖补多少钱？")
    expect(answer).to_contain_text("800元")
    expect(answer).to_have_attribute("data-found", "yes")
    screenshot(page, "hit-test")

    chat = ChatPage(new_context(phone=True).new_page(), live_server.url).open()
    chat.say("新种高山茶园每亩奖补多少钱？", expect_reply="800元")
    expect(chat.last_reply).to_contain_text("高山茶园种植奖补")


def test_a_correction_written_from_the_log_changes_the_answer(
    live_server: LiveServer, page: Page, new_context: Contexts
) -> None:
    chat = ChatPage(new_context(phone=True).new_page(), live_server.url).open()
    chat.say(QUESTION, expect_reply="15天")

    live_server.account("boss", role="admin")
    LoginPage(page, live_server.url).open("/login?next=/log").log_in("boss")
    log = LogPage(page, live_server.url)
    expect(page.locator("table.log")).to_contain_text(QUESTION)
    screenshot(page, "log")
    corrections = log.correct(QUESTION)
    expect(page.get_by_label("问题")).to_have_value(QUESTION)
    corrected = "监测对象识别认定一般不超过10个工作日，由乡镇负责组织核实。"
    corrections.write(corrected, "县乡村振兴局2026年第1号解答")
    KnowledgePage(page, live_server.url).wait_for_build()
    screenshot(page, "corrections")

    chat.say(QUESTION, expect_reply="10个工作日")
    expect(chat.last_reply).to_contain_text("县乡村振兴局")
    expect(chat.last_reply).not_to_contain_text("15天")
