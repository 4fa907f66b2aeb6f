"""The web case board: jurisdiction, filters, paging, masking, transitions, export and the
dashboard's figures, on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL is
set: the filters and counts are SQL, so both backends run every test)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from cadrebot.handlers.access import NotFound, PermissionDenied, Refusal
from cadrebot.handlers.case_board import (
    MAX_NOTE,
    SEARCH_LOOKS_PERSONAL,
    UNASSIGNED,
    CaseBoard,
    CaseFilter,
)
from cadrebot.handlers.forms import default_registry, policy
from cadrebot.handlers.ports import JSONValue, NewCase, Role, User
from cadrebot.storage import SqlUnitOfWorkFactory
from tests.handlers.places_helpers import DATANGBU, JIADING, SHIPPED_PLACES, TANDONG
from tests.support.clock import SHANGHAI, FixedClock, at
from tests.support.database import migrated_engine
from tests.support.forms import VALID_ID

NOW = at(2026, 6, 10, 10, 0)  # a Wednesday, outside the subsidy application windows
TODAY = NOW.date()
LONGJING = "rjxq.tandong.longjing"  # 潭东镇龙井村
MOBILE = "13812345678"


@dataclass
class World:
    board: CaseBoard
    factory: SqlUnitOfWorkFactory
    clock: FixedClock
    people: dict[str, User]
    numbers: dict[str, str]


def _fields(name: str, township: str, village: str) -> dict[str, JSONValue]:
    return {
        "name": name,
        "id_number": VALID_ID,
        "mobile": MOBILE,
        "township": township,
        "village": village,
        "household_size": 4,
        "household_type": "监测户",
        "risk_types": ["因病"],
        "description": f"家里有人住院，联系电话 {MOBILE}",
    }


# (key, case type, township id, village id, township, village, applicant, filed, status,
#  due dates)
CASES: tuple[tuple[str, str, str | None, str | None, str, str, str, datetime, str,
                   Mapping[str, date]], ...] = (
    ("c1", "risk_report", DATANGBU, None, "大塘埠镇", "长岭村", "张三", at(2026, 6, 1), "已受理",
     {"识别认定": date(2026, 6, 12)}),
    ("c2", "risk_report", DATANGBU, None, "大塘埠镇", "桃源村", "李四", at(2026, 5, 20), "已受理",
     {"识别认定": date(2026, 6, 4)}),
    ("c3", "risk_report", JIADING, None, "嘉定镇", "某村", "王五", at(2026, 6, 5), "已受理",
     {"识别认定": date(2026, 6, 12)}),
    ("c4", "subsidy", DATANGBU, None, "大塘埠镇", "长岭村", "赵六", at(2026, 5, 15), "已申报",
     {"县级核实": date(2026, 6, 15), "资金拨付": date(2026, 6, 30)}),
    ("c5", "risk_report", TANDONG, LONGJING, "潭东镇", "龙井村", "孙七", at(2026, 4, 1), "已受理",
     {"识别认定": date(2026, 4, 16)}),
    ("c6", "risk_report", None, None, "不存在镇", "某村", "周八", at(2026, 6, 9), "已受理",
     {"识别认定": date(2026, 6, 24)}),
    # Filed half an hour into Monday in Shanghai (Sunday in UTC): counted in this week.
    ("c7", "subsidy", DATANGBU, None, "大塘埠镇", "长岭村", "吴九", at(2026, 6, 8, 0, 30), "预登记",
     {"申报截止": date(2026, 8, 31)}),
    ("c8", "risk_report", DATANGBU, None, "大塘埠镇", "长岭村", "郑十", at(2026, 5, 25), "已受理",
     {"识别认定": date(2026, 6, 9)}),
)  # fmt: skip

# (case, to status, when, note, due dates set)
MOVES: tuple[tuple[str, str, datetime, str, Mapping[str, date]], ...] = (
    ("c2", "核实中", at(2026, 5, 22), "", {}),
    ("c4", "公示中", at(2026, 5, 20), "", {"公示期满": date(2026, 5, 27)}),
    ("c4", "乡镇复核", at(2026, 5, 28), "", {}),
    ("c4", "县级核实", at(2026, 6, 1), "", {}),
    ("c4", "已拨付", at(2026, 6, 8, 11), "", {}),
    ("c5", "核实中", at(2026, 4, 3), "", {}),
    ("c5", "已纳入监测", at(2026, 4, 10), "", {"帮扶计划": date(2026, 4, 20)}),
    ("c8", "核实中", at(2026, 5, 26), "", {}),
    ("c8", "不予纳入", at(2026, 6, 2, 15), "经核实收入稳定", {}),
)

PEOPLE = {
    "farmer": User(0, "telegram", "f1", "张三"),
    "cadre": User(0, "web", "c1", "大塘埠干部", Role.CADRE, "大塘埠镇", None, DATANGBU),
    "jiading": User(0, "web", "c2", "嘉定干部", Role.CADRE, "嘉定镇", None, JIADING),
    "longjing": User(0, "web", "c3", "龙井村干部", Role.CADRE, "潭东镇", "龙井村", TANDONG, LONGJING),
    "admin": User(0, "web", "a1", "县管理员", Role.ADMIN),
    "nowhere": User(0, "web", "c4", "未登记干部", Role.CADRE),
}  # fmt: skip


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with migrated_engine(db_url) as engine:
        factory = SqlUnitOfWorkFactory(engine, tz=SHANGHAI)
        clock = FixedClock(NOW)
        people: dict[str, User] = {}
        numbers: dict[str, str] = {}
        with factory() as uow:
            for key, person in PEOPLE.items():
                user = uow.users.get_or_create(
                    person.channel, person.external_id, person.display_name
                )
                people[key] = uow.users.set_role(
                    user.id,
                    person.role,
                    person.township,
                    person.village,
                    township_id=person.township_id,
                    village_id=person.village_id,
                )
            for key, kind, t_id, v_id, township, village, name, filed, status, due in CASES:
                case = uow.cases.create(
                    NewCase(
                        case_type=kind,
                        number_prefix="FX" if kind == "risk_report" else "JB",
                        status=status,
                        fields=_fields(name, township, village),
                        submitter_id=people["farmer"].id,
                        township=township,
                        village=village,
                        submitted_at=filed,
                        due_dates=dict(due),
                        township_id=t_id,
                        village_id=v_id,
                    )
                )
                numbers[key] = case.number
            for key, to_status, when, note, due in MOVES:
                current = uow.cases.get(numbers[key])
                assert current is not None
                uow.cases.transition(
                    numbers[key],
                    expected_status=current.status,
                    to_status=to_status,
                    actor_id=people["cadre"].id,
                    at=when,
                    note=note,
                    due_dates=due,
                )
            uow.commit()
        board = CaseBoard(
            factory, default_registry(), places=SHIPPED_PLACES, clock=clock, due_soon_days=3
        )
        yield World(board, factory, clock, people, numbers)


def listed(world: World, who: str, filters: CaseFilter | None = None, **paging: int) -> list[str]:
    """The keys (c1…) of the cases ``who`` gets for ``filters``, in list order."""
    table = world.board.search(world.people[who], filters or CaseFilter(), **paging)
    by_number = {number: key for key, number in world.numbers.items()}
    return [by_number[row.number] for row in table.rows]


def parsed(world: World, **params: str | list[str]) -> CaseFilter:
    values = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return world.board.parse_filter(values).filter


# ---------------------------------------------------------------------- jurisdiction


def test_each_actor_lists_exactly_their_jurisdiction_newest_first(world: World) -> None:
    assert listed(world, "cadre") == ["c7", "c1", "c8", "c2", "c4"]
    assert listed(world, "jiading") == ["c3"]
    assert listed(world, "longjing") == ["c5"]
    assert listed(world, "admin") == ["c6", "c7", "c3", "c1", "c8", "c2", "c4", "c5"]
    # A cadre whose jurisdiction is not in the register sees no one's cases.
    assert listed(world, "nowhere") == []


def test_a_cadre_asking_for_another_place_gets_nothing_from_it(world: World) -> None:
    assert listed(world, "cadre", CaseFilter(township_id=JIADING)) == []
    assert listed(world, "cadre", CaseFilter(township_id=UNASSIGNED)) == []
    assert listed(world, "longjing", CaseFilter(township_id=TANDONG)) == ["c5"]
    assert listed(world, "cadre", CaseFilter(village_id=LONGJING)) == []
    # Admins narrow to any township, or to the unassigned queue.
    assert listed(world, "admin", CaseFilter(township_id=JIADING)) == ["c3"]
    assert listed(world, "admin", CaseFilter(township_id=UNASSIGNED)) == ["c6"]
    assert listed(world, "admin", CaseFilter(village_id=LONGJING)) == ["c5"]


def test_farmers_have_no_board(world: World) -> None:
    farmer = world.people["farmer"]
    with pytest.raises(PermissionDenied):
        world.board.search(farmer, CaseFilter())
    with pytest.raises(PermissionDenied):
        world.board.view(farmer, world.numbers["c1"])
    with pytest.raises(PermissionDenied):
        world.board.dashboard(farmer)
    with pytest.raises(PermissionDenied):
        world.board.move(farmer, world.numbers["c1"], "核实中")


def test_a_case_outside_the_jurisdiction_is_not_found_like_a_missing_one(world: World) -> None:
    cadre = world.people["cadre"]
    with pytest.raises(NotFound) as outside:
        world.board.view(cadre, world.numbers["c3"])
    with pytest.raises(NotFound) as missing:
        world.board.view(cadre, "FX-2026-999999")
    assert "无权查看" in outside.value.message and "无权查看" in missing.value.message
    with pytest.raises(NotFound):
        world.board.move(cadre, world.numbers["c3"], "核实中")
    # An ID number typed as a case number is not quoted back whole.
    with pytest.raises(NotFound) as typed_id:
        world.board.view(cadre, VALID_ID)
    assert VALID_ID not in typed_id.value.message


# ---------------------------------------------------------------------- filters


def test_filters(world: World) -> None:
    numbers = world.numbers
    assert listed(world, "cadre", parsed(world, status=["已受理", "核实中"])) == ["c1", "c2"]
    assert listed(world, "cadre", parsed(world, type="subsidy")) == ["c7", "c4"]
    # Text: part of a case number (any case), or part of the applicant's name.
    assert listed(world, "admin", parsed(world, q=numbers["c3"].lower())) == ["c3"]
    assert listed(world, "admin", parsed(world, q="JB-2026")) == ["c7", "c4"]
    assert listed(world, "admin", parsed(world, q="赵")) == ["c4"]
    assert listed(world, "cadre", parsed(world, q="王五")) == []  # 嘉定镇's applicant
    # LIKE wildcards are literal characters, not patterns.
    assert listed(world, "admin", parsed(world, q="%")) == []
    # Filed between two dates, both days included, in the service's time zone.
    window = parsed(world, **{"from": "2026-06-01", "to": "2026-06-08"})
    assert listed(world, "admin", window) == ["c7", "c3", "c1"]
    assert listed(world, "admin", parsed(world, to="2026-06-07")) == [
        "c3", "c1", "c8", "c2", "c4", "c5",
    ]  # fmt: skip
    # Overdue: an open due date before today (c8's is closed with the case).
    assert listed(world, "admin", parsed(world, overdue="1")) == ["c2", "c5"]
    # Due within N days: open due dates from today to today + N.
    assert listed(world, "admin", parsed(world, due_within="2")) == ["c3", "c1"]
    assert listed(world, "admin", parsed(world, due_within="1")) == []
    # Both: overdue or due soon.
    assert listed(world, "cadre", parsed(world, overdue="1", due_within="3")) == ["c1", "c2"]
    # Everything at once.
    narrow = parsed(world, status="已受理", type="risk_report", township=DATANGBU, q="张")
    assert listed(world, "admin", narrow) == ["c1"]


def test_an_id_number_typed_in_the_search_is_neither_kept_nor_searched(world: World) -> None:
    result = world.board.parse_filter({"q": [f"身份证{VALID_ID}"]})
    assert result.filter.text == ""
    assert SEARCH_LOOKS_PERSONAL in result.problems
    assert all(VALID_ID not in value for _, value in result.filter.params())
    phone = world.board.parse_filter({"q": [MOBILE]})
    assert phone.filter.text == "" and phone.problems


def test_bad_filter_values_are_dropped_with_a_word_each(world: World) -> None:
    result = world.board.parse_filter(
        {
            "status": ["已受理", "<script>"],
            "type": ["nope"],
            "township": ["xf.nowhere"],
            "due_within": ["-1"],
            "from": ["2026-13-01"],
            "to": ["2026-06-01"],
        }
    )
    assert result.filter == CaseFilter(statuses=frozenset({"已受理"}), filed_to=date(2026, 6, 1))
    assert len(result.problems) == 5
    # Swapped dates are put in order; a village brings its township.
    swapped = world.board.parse_filter(
        {"from": ["2026-06-05"], "to": ["2026-06-01"], "village": [LONGJING]}
    )
    assert (swapped.filter.filed_from, swapped.filter.filed_to) == (
        date(2026, 6, 1),
        date(2026, 6, 5),
    )
    assert swapped.filter.township_id == TANDONG


def test_filter_params_round_trip(world: World) -> None:
    original = CaseFilter(
        statuses=frozenset({"已受理", "核实中"}),
        case_type="risk_report",
        township_id=TANDONG,
        village_id=LONGJING,
        overdue=True,
        due_within=5,
        filed_from=date(2026, 5, 1),
        filed_to=date(2026, 6, 1),
        text="张",
    )
    params: dict[str, list[str]] = {}
    for name, value in original.params():
        params.setdefault(name, []).append(value)
    assert world.board.parse_filter(params).filter == original


# ---------------------------------------------------------------------- paging


def test_paging_counts_and_clamps(world: World) -> None:
    admin = world.people["admin"]
    first = world.board.search(admin, CaseFilter(), page=1, per_page=3)
    assert (first.total, first.pages, first.first, first.last) == (8, 3, 1, 3)
    everyone = [
        row.number
        for page in (1, 2, 3)
        for row in world.board.search(admin, CaseFilter(), page=page, per_page=3).rows
    ]
    assert everyone == [world.numbers[k] for k in ("c6", "c7", "c3", "c1", "c8", "c2", "c4", "c5")]
    # Past the end: the last page.
    beyond = world.board.search(admin, CaseFilter(), page=99, per_page=3)
    assert beyond.page == 3 and [r.number for r in beyond.rows] == everyone[6:]
    # per_page is kept within bounds.
    assert world.board.search(admin, CaseFilter(), per_page=0).per_page == 1
    assert world.board.search(admin, CaseFilter(), per_page=10_000).per_page == 100


# ---------------------------------------------------------------------- one case


def test_rows_and_views_are_masked(world: World) -> None:
    cadre = world.people["cadre"]
    table = world.board.search(cadre, CaseFilter())
    assert VALID_ID not in repr(table.rows)
    row = next(r for r in table.rows if r.number == world.numbers["c2"])
    assert row.applicant == "李四"
    assert row.next_due is not None and row.next_due.overdue and row.next_due.days_left == -6
    for who in ("cadre", "admin"):
        view = world.board.view(world.people[who], world.numbers["c1"])
        assert VALID_ID not in repr(view)
        fields = dict(view.fields)
        assert fields["身份证号"] == VALID_ID[:4] + "*" * 10 + VALID_ID[-4:]
        assert fields["手机号"] == MOBILE  # cadres call the farmer
        assert fields["姓名"] == "张三"


def test_only_an_admin_reveals_an_id_and_every_reveal_is_audited(world: World) -> None:
    with pytest.raises(PermissionDenied):
        world.board.view(world.people["cadre"], world.numbers["c1"], reveal=True)
    admin = world.people["admin"]
    assert world.board.view(admin, world.numbers["c1"]).can_reveal
    view = world.board.view(admin, world.numbers["c1"], reveal=True)
    assert dict(view.fields)["身份证号"] == VALID_ID and view.revealed
    with world.factory(read_only=True) as uow:
        events = uow.audit.recent(5)
    assert [(e.action, e.subject, e.actor_id) for e in events] == [
        ("id_revealed", world.numbers["c1"], admin.id)
    ]


def test_the_view_shows_timeline_notes_and_due_dates_with_their_basis(world: World) -> None:
    view = world.board.view(world.people["cadre"], world.numbers["c8"])
    assert view.status == "不予纳入" and view.title == "防返贫风险申报"
    steps = [(e.from_status, e.to_status, e.actor) for e in view.timeline]
    assert steps == [
        (None, "已受理", "张三"),
        ("已受理", "核实中", "大塘埠干部"),
        ("核实中", "不予纳入", "大塘埠干部"),
    ]
    assert [n.note for n in view.notes] == ["经核实收入稳定"]
    assert view.transitions == ()  # a final status
    (due,) = view.dues
    assert (due.name, due.open, due.basis) == ("识别认定", False, policy.IDENTIFICATION_RULE)
    c5 = world.board.view(world.people["admin"], world.numbers["c5"])
    assert [(d.name, d.open, d.overdue) for d in c5.dues] == [
        ("识别认定", False, False),
        ("帮扶计划", True, True),
    ]
    assert c5.dues[1].basis == policy.HELP_PLAN_RULE


def test_the_transitions_offered_are_exactly_those_the_workflow_allows(world: World) -> None:
    cadre = world.people["cadre"]

    def offered(key: str) -> list[tuple[str, bool, bool]]:
        view = world.board.view(cadre, world.numbers[key])
        return [(t.to_status, t.note_required, t.blocked is not None) for t in view.transitions]

    assert offered("c1") == [("核实中", False, False)]
    assert offered("c2") == [("已纳入监测", False, False), ("不予纳入", True, False)]
    # 预登记 → 已申报 only inside an application window: offered, but blocked with why.
    assert offered("c7") == [("已申报", False, True)]
    assert offered("c4") == []
    # An admin works every case; nobody is offered anything on a case they may only see.
    admin_view = world.board.view(world.people["admin"], world.numbers["c3"])
    assert [t.to_status for t in admin_view.transitions] == ["核实中"]


# ---------------------------------------------------------------------- moving a case


def test_a_cadre_moves_a_case_and_the_farmer_gets_a_notice(world: World) -> None:
    cadre = world.people["cadre"]
    moved = world.board.move(cadre, world.numbers["c2"], "已纳入监测")
    assert moved.case.status == "已纳入监测"
    assert moved.case.due_dates["帮扶计划"] == date(2026, 6, 20)  # 10 days (第2条)
    assert "已改为“已纳入监测”" in moved.message
    assert moved.notice is not None and moved.notice.user.id == world.people["farmer"].id
    assert "已纳入监测" in moved.notice.text and world.numbers["c2"] in moved.notice.text
    view = world.board.view(cadre, world.numbers["c2"])
    assert view.status == "已纳入监测"
    assert (view.timeline[-1].from_status, view.timeline[-1].at) == ("核实中", NOW)


def test_refused_moves_change_nothing(world: World) -> None:
    cadre = world.people["cadre"]
    number = world.numbers["c2"]
    with pytest.raises(Refusal, match="必须填写理由"):
        world.board.move(cadre, number, "不予纳入", "   ")
    with pytest.raises(Refusal, match="不能改为"):
        world.board.move(cadre, number, "风险消除", "")
    with pytest.raises(Refusal, match=f"最多 {MAX_NOTE} 个字"):
        world.board.move(cadre, number, "不予纳入", "理" * (MAX_NOTE + 1))
    with pytest.raises(Refusal, match="申报期"):
        world.board.move(cadre, world.numbers["c7"], "已申报")
    view = world.board.view(cadre, number)
    assert view.status == "核实中" and len(view.timeline) == 2


def test_a_note_is_stored_clean_and_masked(world: World) -> None:
    cadre = world.people["cadre"]
    note = f"经核实\x00不符合条件，身份证 {VALID_ID}"
    moved = world.board.move(cadre, world.numbers["c2"], "不予纳入", note)
    assert moved.notice is not None and VALID_ID not in moved.notice.text
    view = world.board.view(world.people["admin"], world.numbers["c2"], reveal=True)
    stored = view.notes[0].note
    assert "\x00" not in stored and VALID_ID not in stored and stored.startswith("经核实不符合")


# ---------------------------------------------------------------------- export


def _sheet_rows(data: bytes, title: str) -> list[list[str]]:
    sheet = load_workbook(io.BytesIO(data))[title]
    return [[str(c.value or "") for c in row] for row in sheet.iter_rows()]


def test_export_is_the_filtered_ledger_masked(world: World) -> None:
    exported = world.board.export(world.people["cadre"], CaseFilter(case_type="risk_report"))
    assert exported.file_name.endswith(".xlsx") and "大塘埠镇" in exported.file_name
    rows = _sheet_rows(exported.data, "防返贫风险申报")
    numbers = sorted(r[0] for r in rows[1:])
    assert numbers == sorted(world.numbers[k] for k in ("c1", "c2", "c8"))
    assert VALID_ID not in repr(rows)
    id_column = rows[0].index("身份证号")
    assert {r[id_column] for r in rows[1:]} == {VALID_ID[:4] + "*" * 10 + VALID_ID[-4:]}
    assert _sheet_rows(exported.data, "产业奖补申请")[1:] == []


def test_an_admin_export_reveals_only_on_request_and_is_audited(world: World) -> None:
    admin = world.people["admin"]
    masked = world.board.export(admin, CaseFilter())
    assert VALID_ID not in repr(_sheet_rows(masked.data, "防返贫风险申报"))
    with pytest.raises(PermissionDenied):
        world.board.export(world.people["cadre"], CaseFilter(), reveal=True)
    revealed = world.board.export(admin, CaseFilter(), reveal=True)
    assert VALID_ID in repr(_sheet_rows(revealed.data, "防返贫风险申报"))
    with world.factory(read_only=True) as uow:
        assert [e.action for e in uow.audit.recent(5)] == ["id_revealed"]


# ---------------------------------------------------------------------- dashboard


def test_dashboard_numbers_for_a_cadre(world: World) -> None:
    board = world.board.dashboard(world.people["cadre"], TODAY)
    assert board.total == 5
    counts = {(c.case_type, c.status): c.count for c in board.by_status if c.count}
    assert counts == {
        ("risk_report", "已受理"): 1,
        ("risk_report", "核实中"): 1,
        ("risk_report", "不予纳入"): 1,
        ("subsidy", "预登记"): 1,
        ("subsidy", "已拨付"): 1,
    }
    assert [(t.name, t.count) for t in board.by_township] == [("信丰县大塘埠镇", 5)]
    assert [(d.number, d.due_name, d.days_left) for d in board.overdue] == [
        (world.numbers["c2"], "识别认定", -6)
    ]
    assert [(d.number, d.days_left) for d in board.due_soon] == [(world.numbers["c1"], 2)]
    assert (board.overdue_total, board.due_soon_total) == (1, 1)
    weeks = {w.start: (w.filed, w.closed) for w in board.weeks}
    assert len(board.weeks) == 12 and board.weeks[-1].start == date(2026, 6, 8)
    assert board.weeks[-1].label == "2026-W24"
    assert weeks[date(2026, 6, 8)] == (1, 1)  # c7 filed Monday 00:30; c4 paid
    assert weeks[date(2026, 6, 1)] == (1, 1)  # c1 filed; c8 不予纳入
    assert weeks[date(2026, 5, 25)] == (1, 0)  # c8
    assert weeks[date(2026, 5, 18)] == (1, 0)  # c2
    assert weeks[date(2026, 5, 11)] == (1, 0)  # c4
    assert sum(f for f, _ in weeks.values()) == 5


def test_dashboard_numbers_for_an_admin(world: World) -> None:
    board = world.board.dashboard(world.people["admin"], TODAY)
    assert board.total == 8
    counts = {t.township_id: t.count for t in board.by_township}
    assert counts == {DATANGBU: 5, None: 1, JIADING: 1, TANDONG: 1}
    assert board.by_township[0].township_id == DATANGBU  # most cases first
    names = {t.township_id: t.name for t in board.by_township}
    assert names[None] == "未分配乡镇" and names[TANDONG] == "蓉江新区潭东镇"
    assert [(d.number, d.due_name) for d in board.overdue] == [
        (world.numbers["c5"], "帮扶计划"),
        (world.numbers["c2"], "识别认定"),
    ]
    assert [d.number for d in board.due_soon] == sorted([world.numbers["c1"], world.numbers["c3"]])
    weeks = {w.start: (w.filed, w.closed) for w in board.weeks}
    assert weeks[date(2026, 6, 8)] == (2, 1)  # c6, c7; c4
    assert weeks[date(2026, 3, 30)] == (1, 0)  # c5 (1 April)
    assert sum(f for f, _ in weeks.values()) == 8


def test_pages_are_declared_for_staff(world: World) -> None:
    pages = world.board.pages()
    assert [(p.path, p.allows(Role.CADRE), p.allows(Role.FARMER)) for p in pages] == [
        ("/cases", True, False),
        ("/dashboard", True, False),
    ]


def test_the_filter_form_offers_each_actor_their_own_places(world: World) -> None:
    cadre = world.board.choices(world.people["cadre"])
    assert [c.value for c in cadre.townships] == [DATANGBU]
    village = world.board.choices(world.people["longjing"])
    assert [c.value for c in village.townships] == [TANDONG]
    assert [c.value for c in village.villages] == [LONGJING]
    admin = world.board.choices(world.people["admin"], CaseFilter(township_id=TANDONG))
    assert len(admin.townships) == len(SHIPPED_PLACES.townships()) + 1
    assert admin.townships[-1].value == UNASSIGNED
    assert LONGJING in [c.value for c in admin.villages]
    assert [c.value for c in admin.case_types] == ["risk_report", "subsidy"]
    # A village outside the township asked for is dropped, with a word.
    mixed = world.board.parse_filter({"township": [JIADING], "village": [LONGJING]})
    assert (mixed.filter.township_id, mixed.filter.village_id) == (JIADING, None)
    assert mixed.problems


# ---------------------------------------------------------------------- the farmer's notice


def queued(world: World) -> list[tuple[int, str, str]]:
    """The notices waiting in the outbox for Telegram users: (user id, channel, text)."""
    with world.factory() as uow:
        claimed = uow.outbox.claim("telegram", NOW, until=NOW, limit=100)
    return [(c.user.id, c.user.channel, c.text) for c in claimed]


def test_the_farmers_notice_is_queued_with_the_move(world: World) -> None:
    note = f"经核实不符合条件，身份证 {VALID_ID}"
    moved = world.board.move(world.people["cadre"], world.numbers["c2"], "不予纳入", note)
    assert moved.notice is not None
    [(user_id, channel, text)] = queued(world)
    assert (user_id, channel) == (world.people["farmer"].id, "telegram")
    assert text == moved.notice.text
    assert world.numbers["c2"] in text and "不予纳入" in text and "经核实不符合条件" in text
    assert VALID_ID not in text


def test_a_refused_move_queues_nothing(world: World) -> None:
    cadre = world.people["cadre"]
    with pytest.raises(Refusal):
        world.board.move(cadre, world.numbers["c2"], "风险消除")
    with pytest.raises(NotFound):
        world.board.move(world.people["jiading"], world.numbers["c2"], "已纳入监测")
    assert queued(world) == []


def test_a_move_and_its_notice_commit_together(world: World) -> None:
    # The notice cannot be stored (its table is gone): the move must not happen either.
    with world.factory() as uow:
        uow.connection().exec_driver_sql("DROP TABLE outbound_notices")
        uow.commit()
    with pytest.raises(Exception, match="outbound_notices"):
        world.board.move(world.people["cadre"], world.numbers["c2"], "已纳入监测")
    view = world.board.view(world.people["cadre"], world.numbers["c2"])
    assert view.status == "核实中" and len(view.timeline) == 2


def test_the_dashboard_is_counted_once_per_ttl_and_recounted_after_a_move(
    world: World,
) -> None:
    cadre = world.people["cadre"]
    first = world.board.dashboard(cadre)
    with world.factory() as uow:  # a case filed meanwhile (by the chat, another process)
        uow.cases.create(
            NewCase(
                case_type="risk_report",
                number_prefix="FX",
                status="已受理",
                fields=_fields("新申报", "大塘埠镇", "长岭村"),
                submitter_id=world.people["farmer"].id,
                township="大塘埠镇",
                village="长岭村",
                submitted_at=NOW,
                due_dates={},
                township_id=DATANGBU,
            )
        )
        uow.commit()
    assert world.board.dashboard(cadre) is first  # kept: the new case is not counted yet
    assert first.counted_at == NOW
    world.clock.now = NOW + timedelta(seconds=31)
    recounted = world.board.dashboard(cadre)
    assert recounted.total == first.total + 1
    world.board.move(cadre, world.numbers["c1"], "核实中")
    moved = world.board.dashboard(cadre)
    assert moved is not recounted  # a move through this board clears the kept figures
    assert {(c.status, c.count) for c in moved.by_status if c.case_type == "risk_report"} >= {
        ("核实中", 2)
    }


def test_every_due_date_a_workflow_tracks_is_quoted_with_its_policy_basis() -> None:
    """The case page shows each due date beside the rule it comes from; the workflow that
    sets the date declares it (a new due date without one would show a bare date)."""
    for form in default_registry().all():
        workflow = form.workflow
        assert workflow.due_names, form.name
        for name in workflow.due_names:
            assert workflow.due_basis.get(name, "").strip(), (form.name, name)
    subsidy = default_registry()["subsidy"].workflow
    assert set(subsidy.due_basis.values()) == {policy.SUBSIDY_RULE}
