"""The dashboard page: the jurisdiction's counts, the overdue and due-soon lists, and the
weekly chart drawn server-side as inline SVG."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

from cadrebot.bot.web.routes.dashboard import weekly_chart
from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.case_board import WeekCount
from tests.support.web import WebClient
from tests.web.test_cases_pages import JIADING, file_case

Maker = Callable[..., WebClient]


def _text_of(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert found is not None, element_id
    return found[1]


def test_a_cadre_sees_their_townships_figures(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    today = web_stack.service.clock().date()
    overdue = file_case(web_stack, due={"识别认定": today - timedelta(days=3)}, days_ago=20)
    soon = file_case(web_stack, due={"识别认定": today + timedelta(days=2)})
    later = file_case(web_stack, due={"识别认定": today + timedelta(days=12)})
    file_case(web_stack, township_id=JIADING, township="嘉定镇", due={"识别认定": today})
    cadre = web_client(township="潭东镇")
    moved = cadre.post(
        f"/cases/{later}/status", data={"to_status": "核实中", "csrf_token": cadre.csrf}
    )
    assert moved.status_code == 200  # followed to the case page

    page = cadre.get("/dashboard")
    assert page.status_code == 200
    html = page.text
    assert _text_of(html, "total") == "3"
    assert _text_of(html, "overdue-total") == "1"
    assert _text_of(html, "due-soon-total") == "1"
    overdue_list, soon_list = re.findall(r'<ul class="due-list">(.*?)</ul>', html, re.S)
    assert re.findall(r'data-number="([^"]+)"', overdue_list) == [overdue]
    assert "已逾期3天" in overdue_list
    assert re.findall(r'data-number="([^"]+)"', soon_list) == [soon]
    assert re.findall(r'<tr data-township="([^"]+)"', html) == ["rjxq.tandong"]
    statuses = dict(re.findall(r'<tr data-status="([^"]+)">.*?<td>(\d+)</td>', html, re.S))
    assert statuses["risk_report:已受理"] == "2" and statuses["risk_report:核实中"] == "1"
    # The chart: inline SVG, 12 weeks of two bars, no script but htmx's own file.
    assert html.count("<svg") == 1 and html.count("<rect") == 24
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/htmx-2.0.11.min.js" defer>']
    monday = today - timedelta(days=today.weekday())
    filed_this_week = sum(today - timedelta(days=d) >= monday for d in (20, 1, 1))
    filed_bar, closed_bar = re.findall(r"<title>([^<]+)</title>", html)[-2:]
    assert filed_bar.endswith(f"新增 {filed_this_week} 件")
    assert closed_bar.endswith("办结 0 件")


def test_an_admin_sees_every_township(web_stack: ConversationStack, web_client: Maker) -> None:
    file_case(web_stack)
    file_case(web_stack, township_id=JIADING, township="嘉定镇")
    file_case(web_stack, township_id=JIADING, township="嘉定镇")
    admin = web_client(role="admin", township=None)
    html = admin.get("/dashboard").text
    assert _text_of(html, "total") == "3"
    assert re.findall(r'<tr data-township="([^"]+)"', html) == [JIADING, "rjxq.tandong"]


def test_the_chart_scales_its_bars_to_the_largest_week() -> None:
    weeks = [
        WeekCount(date(2026, 11, 2) + timedelta(weeks=i), f"2026-W{45 + i}", f, c)
        for i, (f, c) in enumerate([(0, 0), (10, 5), (20, 0)])
    ]
    chart = weekly_chart(weeks)
    heights = [b.height for b in chart.bars]
    assert heights[0] == heights[1] == heights[5] == 0
    assert heights[4] == 2 * heights[2] == 4 * heights[3] > 0
    assert [t.label for t in chart.ticks] == ["0", "10", "20"]
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.y == chart.base - tallest.height and tallest.title.endswith("新增 20 件")
    assert "11-16起一周新增20件、办结0件" in chart.summary


def test_without_a_session_the_dashboard_sends_to_login(anonymous: WebClient) -> None:
    response = anonymous.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fdashboard"
