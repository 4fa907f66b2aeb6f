"""The case desk of the web console: the list with its filters, one case with its history
and the status changes its workflow allows, and the filtered ledger as .xlsx.

Everything is decided by the case board (:mod:`cadrebot.handlers.case_board`): who sees
which case (a case outside the jurisdiction is a 404, like a missing one), which filters
apply, which transitions are offered. The list works as plain links and forms; with htmx
the table alone is swapped (``HX-Request``), and the URL still carries every filter.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import Staff, StaffDep, WebDep
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import csrf_protect
from cadrebot.handlers.access import NotFound, PermissionDenied, Refusal
from cadrebot.handlers.case_board import DEFAULT_PER_PAGE, CaseBoard, CaseFilter, CaseTable
from cadrebot.handlers.masking import mask_sensitive

router = APIRouter(dependencies=[Depends(csrf_protect)])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PER_PAGE_CHOICES = (20, 50, 100)


def _board(web: WebDep) -> CaseBoard:
    return web.stack.case_board


def _whole_number(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() and len(text) <= 6 else default


def _query(filters: CaseFilter, **extra: str | int) -> str:
    pairs: list[tuple[str, str | int]] = [*filters.params(), *extra.items()]
    return urlencode(pairs)


def _partial(request: Request) -> bool:
    """An htmx swap of the table (not a history restore, which needs the whole page)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


async def _list_page(
    request: Request,
    board: CaseBoard,
    staff: Staff,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    params = request.query_params
    parsed = board.parse_filter(
        {key: params.getlist(key) for key in params if key not in ("page", "per_page")}
    )
    page = _whole_number(params.get("page"), 1)
    per_page = _whole_number(params.get("per_page"), DEFAULT_PER_PAGE)
    table: CaseTable = await run_in_threadpool(
        board.search, staff.user, parsed.filter, page, per_page
    )
    context = {
        "table": table,
        "filter": parsed.filter,
        "problems": parsed.problems,
        "error": error,
        "choices": board.choices(staff.user, parsed.filter),
        "per_page_choices": PER_PAGE_CHOICES,
        "page_link": lambda n: "/cases?" + _query(table.filter, page=n, per_page=table.per_page),
        "export_query": _query(parsed.filter),
        "is_admin": staff.user.role.value == "admin",
    }
    template = "cases/_table.html" if _partial(request) else "cases/list.html"
    return render(request, template, context, status_code=status_code)


@router.get("/cases")
async def case_list(request: Request, web: WebDep, staff: StaffDep) -> Response:
    return await _list_page(request, _board(web), staff)


async def _export(request: Request, board: CaseBoard, staff: Staff, reveal: bool) -> Response:
    params = request.query_params
    parsed = board.parse_filter({key: params.getlist(key) for key in params})
    try:
        exported = await run_in_threadpool(
            lambda: board.export(staff.user, parsed.filter, reveal=reveal)
        )
    except (NotFound, PermissionDenied):
        raise
    except Refusal as refusal:
        return await _list_page(request, board, staff, error=refusal.message, status_code=400)
    # RFC 6266 / 5987: an ASCII fallback and the Chinese name, percent-encoded.
    disposition = (
        f"attachment; filename=\"cases.xlsx\"; filename*=UTF-8''{quote(exported.file_name)}"
    )
    return Response(exported.data, media_type=XLSX, headers={"Content-Disposition": disposition})


@router.get("/cases/export.xlsx")
async def export_cases(request: Request, web: WebDep, staff: StaffDep) -> Response:
    return await _export(request, _board(web), staff, reveal=False)


@router.post("/cases/export.xlsx")
async def export_cases_revealed(request: Request, web: WebDep, staff: StaffDep) -> Response:
    """An admin's export with whole ID numbers: a POST (with its CSRF token), never a link,
    and audited by the board before the file is built."""
    return await _export(request, _board(web), staff, reveal=True)


async def _case_page(
    request: Request,
    board: CaseBoard,
    staff: Staff,
    number: str,
    *,
    reveal: bool = False,
    done: bool = False,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    view = await run_in_threadpool(lambda: board.view(staff.user, number, reveal=reveal))
    context = {"case": view, "done": done, "error": error, "form": form or {}}
    return render(request, "cases/detail.html", context, status_code=status_code)


@router.get("/cases/{number}")
async def case_page(
    request: Request, web: WebDep, staff: StaffDep, number: str, moved: str | None = None
) -> Response:
    return await _case_page(request, _board(web), staff, number, done=bool(moved))


@router.post("/cases/{number}/reveal")
async def reveal_case(request: Request, web: WebDep, staff: StaffDep, number: str) -> Response:
    return await _case_page(request, _board(web), staff, number, reveal=True)


@router.post("/cases/{number}/status")
async def move_case(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    number: str,
    to_status: Annotated[str, Form(max_length=100)] = "",
    note: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    board = _board(web)
    try:
        moved = await run_in_threadpool(board.move, staff.user, number, to_status, note)
    except (NotFound, PermissionDenied):
        raise
    except Refusal as refusal:
        # Nothing changed: the page again, with why and with what was typed (the note
        # masked as it would be stored: never an ID number in full).
        form = {"to_status": to_status, "note": mask_sensitive(note)}
        return await _case_page(
            request, board, staff, number, error=refusal.message, form=form, status_code=400
        )
    # The farmer's notice went into the outbox with the change (CaseBoard.move); the
    # farmer's channel delivers it.
    return RedirectResponse(f"/cases/{quote(moved.case.number)}?moved=1", status_code=303)
