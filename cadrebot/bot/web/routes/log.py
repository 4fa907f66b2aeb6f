"""The conversation log (admins only, checked by the knowledge desk): the questions asked on
every channel with whether they were answered and how they were rated, filtered to the
unanswered or the 👎 ones, the most frequent unanswered questions, and from any of them a
correction (写更正) with the question filled in."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import StaffDep, WebDep
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import csrf_protect
from cadrebot.handlers.ports import QuestionView

router = APIRouter(dependencies=[Depends(csrf_protect)])

VIEWS = (
    (QuestionView.ALL, "全部问题"),
    (QuestionView.UNANSWERED, "未找到答案"),
    (QuestionView.THUMBS_DOWN, "👎 没帮助"),
)
DAY_CHOICES = (7, 30, 90)


def _number(text: str | None, default: int, high: int) -> int:
    return min(int(text), high) if text and text.isdigit() and len(text) <= 6 else default


@router.get("/log")
async def conversation_log(
    request: Request,
    web: WebDep,
    staff: StaffDep,
    view: str = "all",
    page: str | None = None,
    days: str | None = None,
) -> Response:
    desk = web.stack.knowledge_desk
    chosen = next((v for v, _ in VIEWS if v.value == view), QuestionView.ALL)
    span = _number(days, 7, 366)
    listed = await run_in_threadpool(desk.log, staff.user, chosen, _number(page, 1, 100_000))
    top = await run_in_threadpool(desk.top_unanswered, staff.user, span, 10)
    context = {
        "log": listed,
        "top": top,
        "views": VIEWS,
        "days": span,
        "day_choices": DAY_CHOICES,
        "page_link": lambda n: "/log?" + urlencode({"view": chosen.value, "page": n}),
        "correct_link": lambda q: "/knowledge/corrections?" + urlencode({"question": q}),
    }
    return render(request, "log/index.html", context)
