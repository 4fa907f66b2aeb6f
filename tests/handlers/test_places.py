"""The place register: what people type is matched to a registered township, and cases and
cadres meet by register id (issue 12, item 3: cases filed as ``潭东`` or ``潭东镇\\u200b``
never reached the 潭东镇 cadre)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.invites import RoleBook
from cadrebot.handlers.places import PlaceRegister, Township, Village, clean_place
from cadrebot.handlers.ports import Case, CaseQuery
from cadrebot.handlers.turns import Inbound, TurnResult
from cadrebot.indexer.places_file import PlacesFileError, load_places
from cadrebot.storage import CaseDatabase
from tests.handlers.places_helpers import DATANGBU, SHIPPED_PLACES, TANDONG
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at
from tests.support.forms import RISK_TYPED

ADMIN = "admin1"
CODE = "YQ-PLACES22"
TOWNSHIP_ANSWER = RISK_TYPED.index("大塘埠镇")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(2026, 5, 12))


@pytest.fixture
def service(database: CaseDatabase, clock: FixedClock) -> ConversationService:
    return ConversationService(
        database.unit_of_work,
        FakeAnswerer(),
        clock=clock,
        idle_timeout=IDLE,
        roles=RoleBook({"console": frozenset({ADMIN})}),
        invite_codes=lambda: CODE,
        places=SHIPPED_PLACES,
    )


def turn(service: ConversationService, text: str, user: str = "farmer") -> TurnResult:
    return service.turn(Inbound("console", user, f"用户{user}", text))


def file_report(service: ConversationService, township: str, village: str = "龙井村") -> str:
    answers = list(RISK_TYPED)
    answers[TOWNSHIP_ANSWER] = township
    answers[TOWNSHIP_ANSWER + 1] = village
    turn(service, "/report")
    for answer in answers:
        turn(service, answer)
    filed = turn(service, "确认提交").text
    assert "编号：" in filed, filed
    return filed.split("编号：")[1].split("。")[0]


def register_cadre(service: ConversationService, place: str, user: str = "cadre") -> None:
    created = turn(service, f"/invite {place}", ADMIN).text
    assert CODE in created, created
    assert "登记成功" in turn(service, f"/register {CODE}", user).text


def stored(database: CaseDatabase, number: str) -> Case:
    with database.unit_of_work() as uow:
        case = uow.cases.get(number)
    assert case is not None
    return case


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    "typed",
    [
        "潭东",
        "潭东镇",
        "潭东镇\u200b",
        " 潭 东 镇 ",
        "潭东镇\u3000",
        "\ufeff潭东镇。",
        "蓉江新区潭东镇",
    ],
)
def test_typed_townships_match_the_register(typed: str) -> None:
    match = SHIPPED_PLACES.match_township(typed)
    assert match.township is not None and match.township.id == TANDONG
    assert match.township.name == "潭东镇"


def test_an_unknown_township_offers_close_choices() -> None:
    match = SHIPPED_PLACES.match_township("潭冬镇")
    assert match.township is None
    assert "潭东镇" in [t.name for t in match.candidates]
    assert SHIPPED_PLACES.match_township("北京镇") == type(match)(None, ())


def test_the_shipped_register_has_the_townships_of_the_seed_areas() -> None:
    names = {(t.county, t.name) for t in SHIPPED_PLACES.townships()}
    assert {("蓉江新区", "潭东镇"), ("蓉江新区", "潭口镇")} <= names
    assert ("信丰县", "大塘埠镇") in names and ("浮梁县", "瑶里镇") in names
    assert len([n for n in names if n[0] == "信丰县"]) == 16
    assert len([n for n in names if n[0] == "浮梁县"]) == 17


def test_same_names_in_two_counties_are_told_apart_by_county() -> None:
    register = PlaceRegister(
        [Township("a.dq", "大桥镇", "信丰县"), Township("b.dq", "大桥镇", "浮梁县")]
    )
    assert register.match_township("大桥").township is None
    assert len(register.match_township("大桥").candidates) == 2
    found = register.match_township("浮梁县大桥镇").township
    assert found is not None and found.id == "b.dq"


def test_registered_villages_get_ids_others_stay_cleaned_text() -> None:
    place = SHIPPED_PLACES.resolve("潭东", "龙井\u200b")
    assert place is not None
    assert (place.township_id, place.village_id, place.village) == (
        TANDONG,
        "rjxq.tandong.longjing",
        "龙井村",
    )
    other = SHIPPED_PLACES.resolve("大塘埠", " 长岭村 ")
    assert other is not None and (other.township_id, other.village_id) == (DATANGBU, None)
    assert other.village == "长岭村"


def test_an_open_register_accepts_townships_as_typed() -> None:
    match = PlaceRegister().match_township("大塘埠镇\u200b")
    assert match.township is not None and match.township.id == "~大塘埠镇"
    assert clean_place("ｔａｎ　东") == "tan东"


def test_the_place_file_loader(tmp_path: Path) -> None:
    assert load_places(tmp_path / "missing.toml").is_open
    broken = tmp_path / "places.toml"
    broken.write_text(
        '[[county]]\nname = "信丰县"\ntownships = [{ id = "x", name = "甲镇" }, '
        '{ id = "x", name = "乙镇" }]\n',
        encoding="utf-8",
    )
    with pytest.raises(PlacesFileError, match="duplicate"):
        load_places(broken)
    broken.write_text('[[county]]\ntownships = [{ name = "甲镇" }]\n', encoding="utf-8")
    with pytest.raises(PlacesFileError, match="id"):
        load_places(broken)
    good = tmp_path / "good.toml"
    good.write_text(
        '[[county]]\nname = "某县"\ntownships = [{ id = "m.a", name = "甲镇", '
        'aliases = ["甲乡"], villages = [{ id = "m.a.1", name = "一村" }] }]\n',
        encoding="utf-8",
    )
    register = load_places(good)
    assert register.townships() == (
        Township("m.a", "甲镇", "某县", ("甲乡",), (Village("m.a.1", "一村"),)),
    )


# --------------------------------------------------------------------------- forms and desks


@pytest.mark.parametrize("typed", ["潭东", "潭东镇\u200b"])
def test_a_case_typed_loosely_reaches_the_township_cadre(
    service: ConversationService, database: CaseDatabase, clock: FixedClock, typed: str
) -> None:
    register_cadre(service, "潭东镇")
    number = file_report(service, typed)
    case = stored(database, number)
    assert (case.township, case.township_id) == ("潭东镇", TANDONG)
    assert (case.village, case.village_id) == ("龙井村", "rjxq.tandong.longjing")

    assert number in turn(service, "/cases", "cadre").text
    assert "已改为" in turn(service, f"/setstatus {number} 核实中", "cadre").text
    clock.now = at(2026, 5, 20)
    assert "已改为" in turn(service, f"/setstatus {number} 已纳入监测", "cadre").text
    clock.now = at(2026, 5, 29)
    digests = {d.user.external_id: d for d in service.daily_digests("console")}
    assert number in digests["cadre"].text


def test_a_village_cadre_sees_the_village_typed_without_suffix(
    service: ConversationService,
) -> None:
    register_cadre(service, "潭东镇 龙井村")
    mine = file_report(service, "潭东", "龙井")
    other = file_report(service, "潭东", "新村")
    listing = turn(service, "/cases", "cadre").text
    assert mine in listing and other not in listing


def test_a_cadre_of_another_township_does_not_see_it(service: ConversationService) -> None:
    register_cadre(service, "潭口")
    number = file_report(service, "潭东")
    assert number not in turn(service, "/cases", "cadre").text


def test_an_unknown_township_is_asked_again(service: ConversationService) -> None:
    turn(service, "/report")
    for answer in RISK_TYPED[:TOWNSHIP_ANSWER]:
        turn(service, answer)
    unknown = turn(service, "北京镇").text
    assert "没有找到“北京镇”这个乡镇" in unknown and "乡（镇）" in unknown
    close = turn(service, "潭冬镇").text
    assert "您是不是要填" in close and "潭东镇" in close
    accepted = turn(service, "潭东").text
    assert "请输入您所在的村" in accepted


def test_invites_are_checked_against_the_register(service: ConversationService) -> None:
    refused = turn(service, "/invite 潭冬镇", ADMIN).text
    assert "没有找到" in refused and "潭东镇" in refused and CODE not in refused
    created = turn(service, "/invite 潭东 龙井", ADMIN).text
    assert "辖区：潭东镇龙井村" in created
    assert "蓉江新区：潭口镇" in turn(service, "/places", ADMIN).text
    assert "仅限" in turn(service, "/places", "farmer").text


def test_admins_assign_unassigned_cases(
    service: ConversationService, database: CaseDatabase
) -> None:
    """A case whose township the register did not know (a row from before the register)
    waits in the admins' queue until an admin assigns it."""
    number = file_report(service, "潭东")
    with database.unit_of_work() as uow:  # as the migration leaves an unmatched row
        uow.connection().exec_driver_sql(
            "UPDATE cases SET township = '旧镇', township_id = NULL, village_id = NULL"
        )
        uow.commit()
    register_cadre(service, "潭东镇")
    assert number not in turn(service, "/cases", "cadre").text
    assert "仅限" in turn(service, "/cases 未分配", "farmer").text
    assert "管理员" in turn(service, "/cases 未分配", "cadre").text
    assert "另有 1 件未分配" in turn(service, "/cases", ADMIN).text
    queue = turn(service, "/cases 未分配", ADMIN).text
    assert number in queue
    assert "待管理员分配" in turn(service, f"/case {number}", ADMIN).text
    assert "没有找到" in turn(service, f"/assign {number} 旧镇", ADMIN).text
    assigned = turn(service, f"/assign {number} 潭东 龙井村", ADMIN).text
    assert "已分配至潭东镇龙井村" in assigned
    assert number in turn(service, "/cases", "cadre").text
    assert number not in turn(service, "/cases 未分配", ADMIN).text
    with database.unit_of_work() as uow:
        assert uow.cases.list_cases(CaseQuery(unassigned=True)).total == 0
        assert "分配至潭东镇龙井村" in uow.cases.events(number)[-1].note
