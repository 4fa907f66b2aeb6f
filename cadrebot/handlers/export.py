"""The case ledger (台账) as an Excel workbook: one sheet per form, Chinese headers.

Everything comes from the forms: the sheets (in registry order, titled by each form's
workflow), the columns (the form's fields, the fields it adds to a case, its workflow's due
dates). Anything a case carries beyond that (older data) is kept in extra columns at the end.
ID numbers are masked unless the reader is an admin, the same rule as every case view.

Every cell is written as text, never as a formula: a farmer named ``=1+1`` or a 情况说明 of
``=HYPERLINK(…)`` must not run in the cadre's Excel or WPS. openpyxl turns any string that
starts with "=" into a formula, so cells get their type set explicitly, and text a
spreadsheet program would read as a formula when a user edits the cell (leading ``= + - @``,
a tab or a carriage return) is also marked with Excel's quote prefix.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import Case, JSONValue

BASE_HEADERS = ("案件编号", "状态", "乡镇", "村", "提交时间", "最近更新")
EXCEL_SHEET_TITLE_MAX = 31  # Excel refuses longer sheet names
# First characters that make Excel/WPS read typed text as a formula (full-width too: WPS).
FORMULA_TRIGGERS = frozenset("=+-@\t\r＝＋－＠")


def _plain(value: JSONValue) -> str:
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return "" if value is None else str(value)


def ledger_rows(
    cases: Sequence[Case], case_type: str, forms: FormRegistry, *, unmasked: bool
) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of one case type's sheet (pure; the workbook is built from these)."""
    form = forms.get(case_type)
    specs = list(form.fields) if form is not None else []
    labels = dict(form.extra_field_labels) if form is not None else {}
    declared_dues = form.workflow.due_names if form is not None else []
    known = {s.name for s in specs} | set(labels)
    extra = [*labels, *sorted({n for case in cases for n in case.fields} - known)]
    present_dues = {name for case in cases for name in case.due_dates}
    due_names = [*declared_dues, *sorted(present_dues - set(declared_dues))]
    headers = list(BASE_HEADERS)
    headers += [spec.label for spec in specs]
    headers += [labels.get(name, name) for name in extra]
    headers += [f"期限·{name}" for name in due_names]
    rows: list[list[str]] = []
    for case in cases:
        row = [
            case.number,
            case.status,
            case.township,
            case.village,
            f"{case.submitted_at:%Y-%m-%d %H:%M}",
            f"{case.updated_at:%Y-%m-%d %H:%M}",
        ]
        for spec in specs:
            value = case.fields.get(spec.name)
            shown = "" if value is None else spec.display(value, mask=not unmasked)
            row.append(shown if unmasked else mask_sensitive(shown, mask_phones=False))
        for name in extra:
            shown = _plain(case.fields.get(name))
            row.append(shown if unmasked else mask_sensitive(shown, mask_phones=False))
        row += [
            case.due_dates[name].isoformat() if name in case.due_dates else "" for name in due_names
        ]
        rows.append(row)
    return headers, rows


def cases_workbook(
    cases: Iterable[Case],
    forms: FormRegistry,
    *,
    unmasked: bool,
) -> bytes:
    """The .xlsx file: a sheet per form (even when empty, so the layout is stable), titled by
    its workflow; cases of a type no form knows get a sheet of their own after those."""
    by_type: dict[str, list[Case]] = {form.name: [] for form in forms.all()}
    for case in cases:
        by_type.setdefault(case.case_type, []).append(case)
    workbook = Workbook()
    workbook.remove(workbook.active)
    bold = Font(bold=True)
    for case_type, items in by_type.items():
        sheet = workbook.create_sheet(title=_sheet_title(case_type, forms))
        headers, rows = ledger_rows(items, case_type, forms, unmasked=unmasked)
        _write_text_row(sheet, 1, headers)
        for cell in sheet[1]:
            cell.font = bold
        for number, row in enumerate(rows, 2):
            _write_text_row(sheet, number, row)
        sheet.freeze_panes = "A2"
        for index, header in enumerate(headers, 1):
            width = max([len(header), *(len(r[index - 1]) for r in rows)]) * 2 + 2
            sheet.column_dimensions[get_column_letter(index)].width = min(width, 60)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _write_text_row(sheet: Worksheet, row: int, values: Sequence[str]) -> None:
    """One row of literal text cells (never a formula, whatever the text starts with)."""
    for column, value in enumerate(values, 1):
        text = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell = sheet.cell(row=row, column=column)
        cell.value = text  # openpyxl types a leading "=" as a formula here ...
        cell.data_type = "s"  # ... so the type is set to text explicitly
        if text[:1] in FORMULA_TRIGGERS:
            cell.quotePrefix = True


def _sheet_title(case_type: str, forms: FormRegistry) -> str:
    form = forms.get(case_type)
    title = form.workflow.title if form is not None else case_type
    return title[:EXCEL_SHEET_TITLE_MAX]
