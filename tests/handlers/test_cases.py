from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from cadrebot.handlers.cases import (
    CaseError,
    CaseNotFound,
    IllegalTransition,
    NoteRequired,
    PermissionDenied,
)
from cadrebot.handlers.casework import CaseDesk
from cadrebot.handlers.forms import default_registry, risk_report, subsidy
from cadrebot.handlers.places import bind_places, place_case
from cadrebot.handlers.ports import (
    Case,
    CaseRepository,
    JSONValue,
    Role,
    UnitOfWorkFactory,
    User,
)
from tests.handlers.places_helpers import DATANGBU, JIADING, SHIPPED_PLACES
from tests.support.clock import at
from tests.support.forms import SUBSIDY_TYPED, VALID_ID

FARMER = User(1, "console", "f1", "张三")
OTHER_FARMER = User(2, "console", "f2", "王五")
TOWNSHIP_CADRE = User(3, "console", "c1", "乡镇干部", Role.CADRE, "大塘埠镇", None, DATANGBU)
VILLAGE_CADRE = User(4, "console", "c2", "村干部", Role.CADRE, "大塘埠镇", "长岭村", DATANGBU)
OTHER_VILLAGE_CADRE = User(
    5, "console", "c3", "邻村干部", Role.CADRE, "大塘埠镇", "桃源村", DATANGBU
)
OTHER_TOWNSHIP_CADRE = User(6, "console", "c4", "外镇干部", Role.CADRE, "嘉定镇", None, JIADING)
ADMIN = User(7, "console", "a1", "县管理员", Role.ADMIN)
UNASSIGNED_CADRE = User(8, "console", "c5", "未分配干部", Role.CADRE)
PEOPLE = (
    FARMER, OTHER_FARMER, TOWNSHIP_CADRE, VILLAGE_CADRE, OTHER_VILLAGE_CADRE,
    OTHER_TOWNSHIP_CADRE, ADMIN, UNASSIGNED_CADRE,
)  # fmt: skip


@pytest.fixture
def cases(uow_factory: UnitOfWorkFactory) -> Iterator[CaseRepository]:
    """The case repository of one unit of work on a database holding :data:`PEOPLE`; the
    test runs in that one transaction (as the desk does in a turn), rolled back after it."""
    with uow_factory() as uow:
        for person in PEOPLE:
            user = uow.users.get_or_create(person.channel, person.external_id, person.display_name)
            user = uow.users.set_role(
                user.id,
                person.role,
                person.township,
                person.village,
                township_id=person.township_id,
                village_id=person.village_id,
            )
            assert user == person, "a fresh database numbers the users in this order"
        yield uow.cases


@pytest.fixture
def desk() -> CaseDesk:
    forms = bind_places(default_registry(), SHIPPED_PLACES)
    return CaseDesk(forms, clock=lambda: at(2026, 5, 12), places=SHIPPED_PLACES)


def file_risk(cases: CaseRepository, day: int = 12) -> Case:
    answers: dict[str, JSONValue] = {
        "name": "张三",
        "id_number": VALID_ID,
        "mobile": "13812345678",
        "township": "大塘埠镇",
        "village": "长岭村",
        "household_size": 4,
        "household_type": "监测户",
        "risk_types": ["因病"],
        "description": f"住院花费大，身份证{VALID_ID}。",
        "estimated_loss": None,
        "consent": True,
    }
    new = risk_report.FORM.file_case(answers, FARMER.id, at(2026, 5, day))
    return cases.create(place_case(new, SHIPPED_PLACES))


def file_subsidy(cases: CaseRepository, month: int = 5, day: int = 20) -> Case:
    keys = (
        "household_type", "name", "id_number", "mobile", "township", "village",
        "industry_type", "product", "scale", "scale_unit", "investment", "disaster",
    )  # fmt: skip
    answers: dict[str, JSONValue] = dict(zip(keys, SUBSIDY_TYPED, strict=True))
    answers.update(id_number=VALID_ID, scale=5, investment=20000, disaster=False)
    new = subsidy.FORM.file_case(answers, FARMER.id, at(2026, month, day))
    return cases.create(place_case(new, SHIPPED_PLACES))


def test_case_numbers_are_sequential_per_prefix_and_year(cases: CaseRepository) -> None:
    assert file_risk(cases).number == "FX-2026-000001"
    assert file_risk(cases).number == "FX-2026-000002"
    assert file_subsidy(cases).number == "JB-2026-000001"


def test_risk_workflow_to_monitoring_sets_help_plan_due(
    desk: CaseDesk, cases: CaseRepository
) -> None:
    case = file_risk(cases)
    checking = desk.transition(cases, VILLAGE_CADRE, case.number, "核实中", now=at(2026, 5, 13))
    assert checking.status == "核实中"
    monitored = desk.transition(
        cases, VILLAGE_CADRE, case.number, "已纳入监测", now=at(2026, 5, 20)
    )
    assert monitored.due_dates == {"识别认定": date(2026, 5, 27), "帮扶计划": date(2026, 5, 30)}
    assert [i.due_name for i in desk.overdue(cases, ADMIN, date(2026, 6, 1))] == ["帮扶计划"]
    helping = desk.transition(cases, VILLAGE_CADRE, case.number, "帮扶中", now=at(2026, 5, 28))
    assert helping.status == "帮扶中"
    assert desk.overdue(cases, ADMIN, date(2026, 6, 1)) == [], (
        "the plan is made: nothing is overdue"
    )
    with pytest.raises(NoteRequired):
        desk.transition(cases, ADMIN, case.number, "风险消除", now=at(2026, 12, 1))
    removed = desk.transition(
        cases, ADMIN, case.number, "风险消除", now=at(2026, 12, 1), note="收入稳定"
    )
    assert removed.status == "风险消除"
    events = cases.events(case.number)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "已受理"),
        ("已受理", "核实中"),
        ("核实中", "已纳入监测"),
        ("已纳入监测", "帮扶中"),
        ("帮扶中", "风险消除"),
    ]
    assert events[-1].actor_id == ADMIN.id
    assert events[-1].note == "收入稳定"


def test_illegal_transition_lists_the_allowed_ones(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_risk(cases)
    with pytest.raises(IllegalTransition) as info:
        desk.transition(cases, TOWNSHIP_CADRE, case.number, "已纳入监测", now=at(2026, 5, 13))
    assert info.value.allowed == ("核实中",)
    assert "已受理" in info.value.message
    assert "可以改为：核实中" in info.value.message
    assert cases.get(case.number) == case  # nothing changed


def test_final_status_has_no_way_out(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_risk(cases)
    desk.transition(cases, ADMIN, case.number, "核实中", now=at(2026, 5, 13))
    desk.transition(
        cases, ADMIN, case.number, "不予纳入", now=at(2026, 5, 14), note="收入高于监测线"
    )
    with pytest.raises(IllegalTransition) as info:
        desk.transition(cases, ADMIN, case.number, "核实中", now=at(2026, 5, 15))
    assert "已办结" in info.value.message


def test_rejection_requires_a_note(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_risk(cases)
    desk.transition(cases, VILLAGE_CADRE, case.number, "核实中", now=at(2026, 5, 13))
    with pytest.raises(NoteRequired):
        desk.transition(
            cases, VILLAGE_CADRE, case.number, "不予纳入", now=at(2026, 5, 14), note="  "
        )
    assert cases.get(case.number).status == "核实中"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "actor", [FARMER, OTHER_VILLAGE_CADRE, OTHER_TOWNSHIP_CADRE, UNASSIGNED_CADRE]
)
def test_only_jurisdiction_cadres_and_admins_may_transition(
    desk: CaseDesk, cases: CaseRepository, actor: User
) -> None:
    case = file_risk(cases)
    with pytest.raises(CaseError) as info:
        desk.transition(cases, actor, case.number, "核实中", now=at(2026, 5, 13))
    # the submitter may see the case but not work it; others do not even see it
    expected = PermissionDenied if actor is FARMER else CaseNotFound
    assert type(info.value) is expected
    assert cases.get(case.number).status == "已受理"  # type: ignore[union-attr]


@pytest.mark.parametrize("actor", [TOWNSHIP_CADRE, VILLAGE_CADRE, ADMIN])
def test_jurisdiction_cadres_and_admins_may_transition(
    desk: CaseDesk, cases: CaseRepository, actor: User
) -> None:
    case = file_risk(cases)
    assert (
        desk.transition(cases, actor, case.number, "核实中", now=at(2026, 5, 13)).status == "核实中"
    )


def test_subsidy_workflow_with_publicity_due(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_subsidy(cases)
    assert case.status == "已申报"
    publicity = desk.transition(cases, VILLAGE_CADRE, case.number, "公示中", now=at(2026, 5, 25))
    assert publicity.due_dates["公示期满"] == date(2026, 6, 1)
    for status in ("乡镇复核", "县级核实", "已拨付"):
        case = desk.transition(cases, TOWNSHIP_CADRE, case.number, status, now=at(2026, 6, 10))
    assert case.status == "已拨付"


@pytest.mark.parametrize("stage", ["已申报", "公示中", "乡镇复核", "县级核实"])
def test_subsidy_can_be_refused_from_any_stage_with_a_note(
    desk: CaseDesk, cases: CaseRepository, stage: str
) -> None:
    case = file_subsidy(cases)
    path = ["已申报", "公示中", "乡镇复核", "县级核实"]
    for status in path[1 : path.index(stage) + 1]:
        desk.transition(cases, ADMIN, case.number, status, now=at(2026, 6, 1))
    with pytest.raises(NoteRequired):
        desk.transition(cases, ADMIN, case.number, "不予通过", now=at(2026, 6, 2))
    refused = desk.transition(
        cases, ADMIN, case.number, "不予通过", now=at(2026, 6, 2), note="规模不符"
    )
    assert refused.status == "不予通过"


def test_preregistration_converts_only_inside_a_window(
    desk: CaseDesk, cases: CaseRepository
) -> None:
    case = file_subsidy(cases, month=7, day=1)
    assert case.status == "预登记"
    with pytest.raises(CaseError) as info:
        desk.transition(cases, ADMIN, case.number, "已申报", now=at(2026, 7, 15))
    assert "8月" in info.value.message or "08月" in info.value.message
    applied = desk.transition(cases, ADMIN, case.number, "已申报", now=at(2026, 8, 12))
    assert applied.status == "已申报"
    assert applied.due_dates["县级核实"] == date(2026, 9, 20)
    assert applied.due_dates["资金拨付"] == date(2026, 9, 30)


def test_farmers_see_only_their_own_cases(desk: CaseDesk, cases: CaseRepository) -> None:
    mine = file_risk(cases)
    assert desk.get(cases, FARMER, mine.number) == mine
    with pytest.raises(CaseNotFound):
        desk.get(cases, OTHER_FARMER, mine.number)
    assert desk.list_for(cases, OTHER_FARMER).total == 0
    assert [c.number for c in desk.list_for(cases, FARMER).items] == [mine.number]


def test_cadre_lists_are_limited_to_the_jurisdiction(desk: CaseDesk, cases: CaseRepository) -> None:
    file_risk(cases)
    file_subsidy(cases)
    assert desk.list_for(cases, VILLAGE_CADRE).total == 2
    assert desk.list_for(cases, TOWNSHIP_CADRE).total == 2
    assert desk.list_for(cases, OTHER_VILLAGE_CADRE).total == 0
    assert desk.list_for(cases, ADMIN).total == 2
    assert desk.list_for(cases, ADMIN, statuses=frozenset({"已申报"})).total == 1
    page = desk.list_for(cases, ADMIN, limit=1, offset=1)
    assert page.total == 2
    assert len(page.items) == 1


def test_due_soon_and_overdue(desk: CaseDesk, cases: CaseRepository) -> None:
    early = file_risk(cases, day=1)  # 识别认定 due 5-16
    late = file_risk(cases, day=12)  # due 5-27
    file_subsidy(cases)  # 县级核实 due 6-20
    today = date(2026, 5, 18)
    overdue = desk.overdue(cases, VILLAGE_CADRE, today)
    assert [(i.case.number, i.due_name, i.days_left) for i in overdue] == [
        (early.number, "识别认定", -2)
    ]
    soon = desk.due_soon(cases, TOWNSHIP_CADRE, today, 10)
    assert [(i.case.number, i.due_on) for i in soon] == [(late.number, date(2026, 5, 27))]
    assert desk.due_soon(cases, OTHER_TOWNSHIP_CADRE, today, 10) == []
    assert desk.overdue(cases, FARMER, today) == []
    # once identification is done the 识别认定 deadline no longer counts
    desk.transition(cases, ADMIN, early.number, "核实中", now=at(2026, 5, 18))
    desk.transition(cases, ADMIN, early.number, "已纳入监测", now=at(2026, 5, 18))
    assert desk.overdue(cases, ADMIN, today) == []
    assert [i.due_name for i in desk.due_soon(cases, ADMIN, today, 10)] == ["识别认定", "帮扶计划"]


def test_views_mask_id_numbers_except_for_admins(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_risk(cases)
    today = date(2026, 5, 12)
    for viewer in (FARMER, VILLAGE_CADRE, TOWNSHIP_CADRE):
        text = desk.render(case, viewer, today=today, events=cases.events(case.number))
        assert VALID_ID not in text
        assert "3601**********1239" in text
        assert "13812345678" in text  # cadres need the phone number
    admin_view = desk.render(case, ADMIN, today=today)
    assert admin_view.count(VALID_ID) == 2  # the ID field and the description
    assert "识别认定：2026-05-27（剩15天）" in admin_view
    assert "可办理为：核实中" in admin_view
    assert "可办理为" not in desk.render(case, FARMER, today=today)


def test_list_view(desk: CaseDesk, cases: CaseRepository) -> None:
    case = file_risk(cases)
    text = desk.render_list(desk.list_for(cases, FARMER))
    assert case.number in text
    assert "已受理" in text
    assert VALID_ID not in text
