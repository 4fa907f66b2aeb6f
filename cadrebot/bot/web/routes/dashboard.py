"""The dashboard: counts by status and by township, what is overdue and due soon, and the
cases filed and closed per week as a bar chart drawn here, server-side, as inline SVG (no
script, no chart library, nothing fetched from elsewhere)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import StaffDep, WebDep
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import csrf_protect
from cadrebot.handlers.case_board import Dashboard, WeekCount

router = APIRouter(dependencies=[Depends(csrf_protect)])

# The chart's geometry, in SVG user units (it scales to the page width).
WIDTH = 720
HEIGHT = 240
LEFT = 40  # room for the y-axis labels
BOTTOM = 36  # room for the week labels
TOP = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "filed" | "closed"
    title: str  # the tooltip: week and count


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class WeekLabel:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    base: float  # the y of the x axis
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[WeekLabel, ...]
    summary: str  # the chart in words (for screen readers)


def _nice_top(value: int) -> int:
    """The axis maximum: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 4:
        return 4
    power = int(10 ** math.floor(math.log10(value)))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def weekly_chart(weeks: Sequence[WeekCount]) -> Chart:
    top = _nice_top(max([1, *(w.filed for w in weeks), *(w.closed for w in weeks)]))
    base = HEIGHT - BOTTOM
    plot = base - TOP
    slot = (WIDTH - LEFT) / max(len(weeks), 1)
    bar = slot * 0.36
    bars: list[Bar] = []
    labels: list[WeekLabel] = []
    for i, week in enumerate(weeks):
        x = LEFT + i * slot + slot * 0.12
        for offset, kind, count, word in (
            (0.0, "filed", week.filed, "新增"),
            (bar, "closed", week.closed, "办结"),
        ):
            height = plot * count / top
            title = f"{week.label}（{week.start:%m-%d} 起）{word} {count} 件"
            bars.append(Bar(round(x + offset, 1), round(base - height, 1), round(bar, 1),
                            round(height, 1), kind, title))  # fmt: skip
        labels.append(WeekLabel(round(LEFT + i * slot + slot / 2, 1), f"{week.start:%m-%d}"))
    ticks = tuple(Tick(round(base - plot * f, 1), f"{top * f:g}") for f in (0, 0.5, 1))
    summary = "；".join(f"{w.start:%m-%d}起一周新增{w.filed}件、办结{w.closed}件" for w in weeks)
    return Chart(WIDTH, HEIGHT, LEFT, base, tuple(bars), ticks, tuple(labels), summary)


@router.get("/dashboard")
async def dashboard(request: Request, web: WebDep, staff: StaffDep) -> Response:
    board: Dashboard = await run_in_threadpool(web.stack.case_board.dashboard, staff.user)
    context = {"board": board, "chart": weekly_chart(board.weeks)}
    return render(request, "dashboard/index.html", context)
