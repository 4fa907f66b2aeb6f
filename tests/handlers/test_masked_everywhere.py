"""An ID number typed with spaces is masked wherever text is stored or shown: the exchange
log, the cadre's case view and the cadre's export."""

from __future__ import annotations

import io
import unicodedata

from openpyxl import load_workbook

from cadrebot.handlers.conversation import ConversationService
from cadrebot.storage import CaseDatabase
from tests.support.forms import RISK_TYPED

from .test_conversation import exchanges
from .test_turns import make_cadre, service, turn  # noqa: F401  (fixture)

SPACED_ID = "3607 0219 9001 0112 32"
BIRTH = "19900101"
STORY = f"父亲住院，身份证{SPACED_ID}，电话138 1234 5678，花了3000元"


def digits_of(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def file_report_with_story(service: ConversationService) -> str:  # noqa: F811
    turn(service, "/report")
    answers = list(RISK_TYPED)
    answers[8] = STORY  # 情况说明
    for answer in answers:
        turn(service, answer)
    filed = turn(service, "确认提交").text
    return filed.split("编号：")[1].split("。")[0]


def test_the_exchange_log_holds_no_spaced_id(
    service: ConversationService,  # noqa: F811
    database: CaseDatabase,
) -> None:
    turn(service, f"我的身份证是{SPACED_ID}，能申请吗？")
    file_report_with_story(service)
    logged = exchanges(database)
    assert logged
    for exchange in logged:
        for text in (exchange.inbound_text, exchange.reply_text):
            assert BIRTH not in digits_of(text), text
    assert any("3607**********1232" in e.inbound_text for e in logged)


def test_the_cadre_case_view_and_export_hold_no_spaced_id(
    service: ConversationService,  # noqa: F811
) -> None:
    make_cadre(service)
    number = file_report_with_story(service)
    shown = turn(service, f"/case {number}", "cadre").text
    assert "情况说明" in shown and "3000元" in shown
    assert BIRTH not in digits_of(shown)
    assert "3607**********1232" in shown
    assert "138 1234 5678" in shown  # the cadre calls the farmer back
    (exported,) = turn(service, "/export", "cadre").files
    workbook = load_workbook(io.BytesIO(exported.data))
    cells = [
        str(cell.value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value is not None
    ]
    assert any("3000元" in cell for cell in cells)
    assert all(BIRTH not in digits_of(cell) for cell in cells)
