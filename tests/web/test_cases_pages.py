"""The case desk pages: the filtered, paged list (with and without htmx), one case with the
buttons its workflow allows, moving a case, the .xlsx export, and who gets 404 / 403 / the
login page."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date, timedelta

import httpx2
import pytest
from openpyxl import load_workbook

from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.forms.subsidy import round_for
from cadrebot.handlers.ports import NewCase
from tests.support.forms import VALID_ID
from tests.support.web import WebClient

Maker = Callable[..., WebClient]
TANDONG = "rjxq.tandong"
JIADING = "xf.jiading"
MASKED_ID = VALID_ID[:4] + "*" * 10 + VALID_ID[-4:]


def file_case(
    stack: ConversationStack,
    *,
    township_id: str = TANDONG,
    township: str = "潭东镇",
    name: str = "张三",
    kind: str = "risk_report",
    status: str = "已受理",
    days_ago: int = 1,
    due: dict[str, date] | None = None,
) -> str:
    """A case filed by a Telegram farmer, as the intake would store it; its number."""
    now = stack.service.clock()
    with stack.database.unit_of_work() as uow:
        farmer = uow.users.get_or_create("telegram", "7001", "农户")
        case = uow.cases.create(
            NewCase(
                case_type=kind,
                number_prefix="FX" if kind == "risk_report" else "JB",
                status=status,
                fields={
                    "name": name,
                    "id_number": VALID_ID,
                    "mobile": "13812345678",
                    "township": township,
                    "village": "某村",
                    "description": "家里有人住院",
                },
                submitter_id=farmer.id,
                township=township,
                village="某村",
                submitted_at=now - timedelta(days=days_ago),
                due_dates=due or {"识别认定": now.date() + timedelta(days=10)},
                township_id=township_id,
            )
        )
        uow.commit()
    return case.number


def numbers_on(html: str) -> list[str]:
    return re.findall(r'<tr data-number="([^"]+)"', html)


def offered(html: str) -> list[str]:
    """The transitions the case page offers as enabled buttons."""
    forms = re.findall(
        r'<form method="post" action="[^"]+/status" class="transition" '
        r'data-to-status="([^"]+)">(.*?)</form>',
        html,
        re.S,
    )
    return [status for status, body in forms if "disabled" not in body]


def post(client: WebClient, url: str, data: dict[str, str] | None = None) -> httpx2.Response:
    return client.post(
        url, data={**(data or {}), "csrf_token": client.csrf}, follow_redirects=False
    )


# ---------------------------------------------------------------------- the list


def test_a_cadre_lists_only_their_township_and_filters(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    mine = file_case(web_stack, name="张三")
    checking = file_case(web_stack, name="李四", status="核实中", days_ago=2)
    file_case(web_stack, township_id=JIADING, township="嘉定镇", name="王五")
    cadre = web_client(township="潭东镇")
    page = cadre.get("/cases")
    assert page.status_code == 200
    assert numbers_on(page.text) == [mine, checking]
    assert VALID_ID not in page.text and "王五" not in page.text
    assert numbers_on(cadre.get("/cases?status=核实中").text) == [checking]
    assert numbers_on(cadre.get("/cases", params={"q": "李"}).text) == [checking]
    # Asking for another township shows nothing of it.
    assert numbers_on(cadre.get(f"/cases?township={JIADING}").text) == []


def test_bad_filters_get_a_polite_word_and_an_id_is_not_echoed(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    file_case(web_stack)
    cadre = web_client()
    page = cadre.get("/cases", params={"q": VALID_ID, "from": "昨天", "page": "x"})
    assert page.status_code == 200
    assert VALID_ID not in page.text
    assert "身份证号或手机号，已忽略" in page.text
    assert "不是有效日期" in page.text
    # Markup typed into a filter is text, never markup.
    typed = cadre.get("/cases", params={"q": "<b>李</b>"})
    assert "<b>李</b>" not in typed.text and "&lt;b&gt;李&lt;/b&gt;" in typed.text


def test_paging_keeps_the_filters_and_htmx_gets_the_table_alone(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    numbers = [file_case(web_stack, days_ago=30 - i) for i in range(23)]
    file_case(web_stack, kind="subsidy", status="预登记", due={})
    cadre = web_client()
    first = cadre.get("/cases?type=risk_report")
    assert numbers_on(first.text) == numbers[::-1][:20]
    link = re.search(r'<a href="([^"]+)" hx-get="[^"]+"[^>]*rel="next"', first.text)
    assert link is not None
    href = link[1].replace("&amp;", "&")
    assert "type=risk_report" in href and "page=2" in href
    second = cadre.get(href)
    assert numbers_on(second.text) == numbers[::-1][20:]
    assert "第 2 / 2 页" in second.text
    partial = cadre.get(href, headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith('<div id="case-table">')
    assert "<html" not in partial.text and numbers_on(partial.text) == numbers[::-1][20:]
    # A history restore asks for the whole page.
    restore = cadre.get(href, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


# ---------------------------------------------------------------------- one case


def test_the_buttons_shown_are_exactly_the_allowed_transitions(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    new = file_case(web_stack)
    checking = file_case(web_stack, status="核实中")
    closed = file_case(web_stack, status="风险消除")
    preregistered = file_case(web_stack, kind="subsidy", status="预登记", due={})
    cadre = web_client()
    assert offered(cadre.get(f"/cases/{new}").text) == ["核实中"]
    page = cadre.get(f"/cases/{checking}").text
    assert offered(page) == ["已纳入监测", "不予纳入"]
    assert "理由（必填）" in page and MASKED_ID in page and VALID_ID not in page
    assert offered(cadre.get(f"/cases/{closed}").text) == []
    # Outside the application window the subsidy's next step is shown disabled, with why.
    subsidy_page = cadre.get(f"/cases/{preregistered}").text
    assert 'data-to-status="已申报"' in subsidy_page
    if round_for(web_stack.service.clock().date()) is None:
        assert offered(subsidy_page) == [] and "不在产业奖补申报期内" in subsidy_page
    else:
        assert offered(subsidy_page) == ["已申报"]


def test_a_cadre_moves_a_case_to_its_next_status(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    number = file_case(web_stack)
    cadre = web_client()
    response = post(cadre, f"/cases/{number}/status", {"to_status": "核实中", "note": ""})
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{number}?moved=1"
    page = cadre.get(response.headers["location"]).text
    assert "案件已改为“核实中”" in page
    assert offered(page) == ["已纳入监测", "不予纳入"]
    assert "核实中" in re.sub(r"\s+", " ", page.split('class="timeline"')[1])


def test_bad_input_changes_nothing_and_is_answered_politely(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    number = file_case(web_stack, status="核实中")
    cadre = web_client()
    no_note = post(cadre, f"/cases/{number}/status", {"to_status": "不予纳入", "note": " "})
    assert no_note.status_code == 400
    assert "必须填写理由" in no_note.text
    wrong = post(cadre, f"/cases/{number}/status", {"to_status": "已拨付<script>"})
    assert wrong.status_code == 400
    assert "不能改为" in wrong.text and "<script>" not in wrong.text
    assert offered(cadre.get(f"/cases/{number}").text) == ["已纳入监测", "不予纳入"]
    # A note is kept when the form comes back, masked as it would be stored.
    note = f"户主{VALID_ID}，另一电话13900001111。" + "理" * 480
    too_long = post(cadre, f"/cases/{number}/status", {"to_status": "不予纳入", "note": note})
    assert too_long.status_code == 400 and "最多 500 个字" in too_long.text
    assert f"户主{MASKED_ID}，另一电话139****1111。" in too_long.text
    assert VALID_ID not in too_long.text and "13900001111" not in too_long.text


def test_a_post_without_csrf_is_refused(web_stack: ConversationStack, web_client: Maker) -> None:
    number = file_case(web_stack)
    cadre = web_client()
    response = cadre.post(f"/cases/{number}/status", data={"to_status": "核实中"})
    assert response.status_code == 403
    assert offered(cadre.get(f"/cases/{number}").text) == ["核实中"]


# ---------------------------------------------------------------------- 404 / 403 / login


def test_another_townships_case_is_404_like_a_missing_one(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    theirs = file_case(web_stack, township_id=JIADING, township="嘉定镇")
    cadre = web_client(township="潭东镇")
    for url in (f"/cases/{theirs}", "/cases/FX-2026-999999"):
        response = cadre.get(url)
        assert response.status_code == 404
        assert "没有找到" in response.text
    moved = post(cadre, f"/cases/{theirs}/status", {"to_status": "核实中"})
    assert moved.status_code == 404
    admin = web_client(role="admin", township=None)
    assert admin.get(f"/cases/{theirs}").status_code == 200


def test_only_an_admin_reveals_an_id_and_it_is_audited(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    number = file_case(web_stack)
    cadre = web_client()
    assert post(cadre, f"/cases/{number}/reveal").status_code == 403
    assert post(cadre, "/cases/export.xlsx").status_code == 403
    assert "显示完整身份证号" not in cadre.get(f"/cases/{number}").text
    admin = web_client(role="admin", township=None)
    page = admin.get(f"/cases/{number}")
    assert "显示完整身份证号" in page.text and VALID_ID not in page.text
    revealed = post(admin, f"/cases/{number}/reveal")
    assert revealed.status_code == 200 and VALID_ID in revealed.text
    exported = post(admin, "/cases/export.xlsx?type=risk_report")
    assert exported.status_code == 200
    sheet = load_workbook(io.BytesIO(exported.content))["防返贫风险申报"]
    assert VALID_ID in [str(c.value) for row in sheet.iter_rows() for c in row]
    with web_stack.database.unit_of_work(read_only=True) as uow:
        revealed_events = uow.audit.recent(10, actions=["id_revealed"])
    assert [e.subject for e in revealed_events] == ["export", number]


@pytest.mark.parametrize("url", ["/cases", "/cases/FX-2026-000001", "/cases/export.xlsx"])
def test_without_a_session_the_pages_send_to_login(anonymous: WebClient, url: str) -> None:
    response = anonymous.get(url, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


# ---------------------------------------------------------------------- export


def test_export_is_a_real_xlsx_of_the_filtered_list_with_masked_ids(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    risk = file_case(web_stack)
    file_case(web_stack, kind="subsidy", status="预登记", due={})
    file_case(web_stack, township_id=JIADING, township="嘉定镇")
    cadre = web_client()
    response = cadre.get("/cases/export.xlsx?type=risk_report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "attachment" in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content))
    rows = [[str(c.value or "") for c in r] for r in book["防返贫风险申报"].iter_rows()]
    assert [r[0] for r in rows[1:]] == [risk]
    assert rows[1][rows[0].index("身份证号")] == MASKED_ID
    assert VALID_ID not in repr(rows)
    assert list(book["产业奖补申请"].iter_rows(min_row=2)) == []


def test_the_list_links_export_with_the_same_filters(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    file_case(web_stack)
    cadre = web_client()
    page = cadre.get("/cases?status=已受理&q=张").text
    link = re.search(r'href="(/cases/export\.xlsx\?[^"]*)"', page)
    assert link is not None
    href = link[1].replace("&amp;", "&")
    assert "status=" in href and "q=" in href
    assert cadre.get(href).status_code == 200
