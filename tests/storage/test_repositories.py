"""Repositories against real databases (SQLite and PostgreSQL), through the ports' API."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, timedelta

import pytest
from sqlalchemy import Engine, Text, cast, select
from sqlalchemy.orm import Session

from cadrebot.handlers.ports import (
    CaseQuery,
    ConcurrentUpdateError,
    ConversationKey,
    DialogPhase,
    DialogState,
    Exchange,
    ExchangeKind,
    NotFoundError,
    Role,
    UnitOfWorkFactory,
    User,
)
from cadrebot.storage.models import CaseEventRow, CaseRow, ExchangeRow
from tests.support.cases import ID_NUMBER, risk_case
from tests.support.clock import SHANGHAI, at

from .helpers import KEY

# --------------------------------------------------------------------------- users


def test_get_or_create_makes_a_farmer_once_and_follows_name_changes(
    uow_factory: UnitOfWorkFactory,
) -> None:
    with uow_factory() as uow:
        created = uow.users.get_or_create("telegram", "42", "李四")
        again = uow.users.get_or_create("telegram", "42", "李四")
        uow.commit()
    assert created == again
    assert created.role is Role.FARMER
    assert (created.township, created.village) == (None, None)

    with uow_factory() as uow:
        renamed = uow.users.get_or_create("telegram", "42", "李四（坪石村）")
        other_channel = uow.users.get_or_create("console", "42", "李四")
        uow.commit()
    assert renamed.id == created.id
    assert renamed.display_name == "李四（坪石村）"
    assert other_channel.id != created.id

    with uow_factory() as uow:
        assert uow.users.find("telegram", "42") == renamed
        assert uow.users.get(created.id) == renamed
        assert uow.users.find("telegram", "43") is None
        assert uow.users.get(987654) is None


def test_set_role_assigns_jurisdiction(uow_factory: UnitOfWorkFactory, farmer: User) -> None:
    with uow_factory() as uow:
        cadre = uow.users.set_role(farmer.id, Role.CADRE, "大塘埠镇", "坪石村")
        uow.commit()
    assert (cadre.role, cadre.township, cadre.village) == (Role.CADRE, "大塘埠镇", "坪石村")
    with uow_factory() as uow:
        assert uow.users.get(farmer.id) == cadre
        with pytest.raises(NotFoundError):
            uow.users.set_role(987654, Role.ADMIN, None, None)


# --------------------------------------------------------------------------- dialogs


def _state(**changes: object) -> DialogState:
    state = DialogState(
        key=KEY,
        form_name="risk_report",
        current_field="姓名",
        phase=DialogPhase.ASKING,
        answers={},
        started_at=at(2026, 5, 6, 9, 0),
        updated_at=at(2026, 5, 6, 9, 0),
        scratch={"history": []},
    )
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]


def test_dialog_state_round_trips_with_versions(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        assert uow.dialogs.load(KEY) is None
        first = uow.dialogs.save(_state())
        uow.commit()
    assert first.version == 1

    answers = {"姓名": "张三", "身份证号": ID_NUMBER, "风险类型": ["支出骤增"], "人口": 4}
    with uow_factory() as uow:
        loaded = uow.dialogs.load(KEY)
        assert loaded == first
        second = uow.dialogs.save(
            dataclasses.replace(
                first,
                answers=answers,
                scratch={"history": ["姓名"], "selected": ["支出骤增"]},
                current_field=None,
                phase=DialogPhase.SUMMARY,
                updated_at=at(2026, 5, 6, 9, 5),
            )
        )
        uow.commit()
    assert second.version == 2

    with uow_factory() as uow:
        loaded = uow.dialogs.load(KEY)
    assert loaded == second
    assert loaded.answers == answers
    assert loaded.phase is DialogPhase.SUMMARY
    # Times come back equal and in the zone the factory reports in.
    assert loaded.updated_at == at(2026, 5, 6, 9, 5)
    assert loaded.updated_at.utcoffset() == timedelta(hours=8)
    assert list(loaded.answers) == list(answers)  # field order kept for the summary


def test_stale_dialog_versions_are_rejected(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        saved = uow.dialogs.save(_state())
        uow.commit()
    with uow_factory() as uow:
        with pytest.raises(ConcurrentUpdateError):
            uow.dialogs.save(_state())  # version 0 but a row exists
        newer = uow.dialogs.save(saved)
        with pytest.raises(ConcurrentUpdateError):
            uow.dialogs.save(saved)  # version 1 was already superseded by 2
        uow.commit()
    assert newer.version == 2
    with uow_factory() as uow:
        assert uow.dialogs.load(KEY) == newer


def test_dialog_delete_is_per_conversation_and_idempotent(
    uow_factory: UnitOfWorkFactory,
) -> None:
    other = ConversationKey("telegram", "chat-2")
    with uow_factory() as uow:
        uow.dialogs.save(_state())
        uow.dialogs.save(_state(key=other))
        uow.commit()
    with uow_factory() as uow:
        uow.dialogs.delete(KEY)
        uow.dialogs.delete(KEY)
        uow.dialogs.delete(ConversationKey("console", "chat-1"))
        uow.commit()
    with uow_factory() as uow:
        assert uow.dialogs.load(KEY) is None
        kept = uow.dialogs.load(other)
        assert kept is not None
        assert kept.key == other
        # After a delete the conversation starts afresh at version 0.
        assert uow.dialogs.save(_state()).version == 1


# --------------------------------------------------------------------------- unit of work


def test_leaving_without_commit_rolls_back(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        uow.users.get_or_create("telegram", "7", "王五")
        uow.dialogs.save(_state())
    with uow_factory() as uow:
        assert uow.users.find("telegram", "7") is None
        assert uow.dialogs.load(KEY) is None


def test_commit_can_be_called_repeatedly(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        uow.users.get_or_create("telegram", "7", "王五")
        uow.commit()
        uow.users.get_or_create("telegram", "8", "赵六")
        uow.commit()
        uow.users.get_or_create("telegram", "9", "不保存")
        uow.rollback()
        uow.commit()  # nothing pending: harmless
    with uow_factory() as uow:
        assert uow.users.find("telegram", "7") is not None
        assert uow.users.find("telegram", "8") is not None
        assert uow.users.find("telegram", "9") is None


def test_filing_a_case_and_clearing_the_dialog_is_atomic(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    with uow_factory() as uow:
        uow.dialogs.save(_state(answers={"身份证号": ID_NUMBER}))
        uow.commit()

    class Crash(Exception):
        pass

    def file_then_crash() -> None:
        with uow_factory() as uow, uow.dialogs.locked(KEY):
            uow.cases.create(risk_case(farmer.id, at(2026, 5, 6)))
            uow.dialogs.delete(KEY)
            raise Crash  # e.g. the confirmation reply failed to render

    with pytest.raises(Crash):
        file_then_crash()
    with uow_factory() as uow:
        assert uow.dialogs.load(KEY) is not None
        assert uow.cases.list_cases(CaseQuery()).total == 0

    with uow_factory() as uow, uow.dialogs.locked(KEY):
        case = uow.cases.create(risk_case(farmer.id, at(2026, 5, 6)))
        uow.dialogs.delete(KEY)
        uow.commit()
    with uow_factory() as uow:
        assert uow.dialogs.load(KEY) is None
        assert uow.cases.get(case.number) == case


# --------------------------------------------------------------------------- cases


def test_case_numbers_count_per_prefix_and_year(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    subsidy = dataclasses.replace(
        risk_case(farmer.id, at(2026, 5, 20)),
        case_type="subsidy",
        number_prefix="JB",
        status="已申报",
    )
    with uow_factory() as uow:
        numbers = [
            uow.cases.create(risk_case(farmer.id, at(2026, 5, 6))).number,
            uow.cases.create(risk_case(farmer.id, at(2026, 5, 7))).number,
            uow.cases.create(subsidy).number,
            # 00:30 on New Year's Day in Shanghai is still 2026 in UTC: the year is local.
            uow.cases.create(risk_case(farmer.id, at(2027, 1, 1, 0, 30))).number,
            uow.cases.create(risk_case(farmer.id, at(2026, 12, 31, 23, 30))).number,
        ]
        uow.commit()
    assert numbers == [
        "FX-2026-000001",
        "FX-2026-000002",
        "JB-2026-000001",
        "FX-2027-000001",
        "FX-2026-000003",
    ]


def test_created_case_reads_back_whole_with_its_creation_event(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    new = dataclasses.replace(
        risk_case(farmer.id, at(2026, 5, 6, 10, 15)),
        due_dates={"识别认定": date(2026, 5, 21)},
    )
    with uow_factory() as uow:
        case = uow.cases.create(new)
        uow.commit()
    assert case.number == "FX-2026-000001"
    assert case.fields == new.fields
    assert case.fields["身份证号"] == ID_NUMBER  # stored whole
    assert (case.status, case.township, case.village) == ("已受理", "大塘埠镇", "坪石村")
    assert case.submitted_at == new.submitted_at == case.updated_at
    assert case.submitted_at.utcoffset() == timedelta(hours=8)
    assert case.due_dates == {"识别认定": date(2026, 5, 21)}

    with uow_factory() as uow:
        assert uow.cases.get(case.number) == case
        assert uow.cases.get("FX-2026-999999") is None
        (created,) = uow.cases.events(case.number)
        assert uow.cases.events("FX-2026-999999") == []
    assert created.case_id == case.id
    assert (created.from_status, created.to_status) == (None, "已受理")
    assert created.actor_id == farmer.id
    assert created.at == new.submitted_at


def test_transition_checks_status_merges_due_dates_and_appends_events(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    with uow_factory() as uow:
        case = uow.cases.create(
            dataclasses.replace(
                risk_case(farmer.id, at(2026, 5, 6)), due_dates={"识别认定": date(2026, 5, 21)}
            )
        )
        cadre = uow.users.get_or_create("telegram", "2001", "村干部")
        uow.commit()

    with uow_factory() as uow:
        moved = uow.cases.transition(
            case.number,
            expected_status="已受理",
            to_status="已核实",
            actor_id=cadre.id,
            at=at(2026, 5, 8, 14, 0),
            note="入户核实，情况属实",
            due_dates={"帮扶计划": date(2026, 6, 1), "识别认定": date(2026, 5, 20)},
        )
        uow.commit()
    assert moved.status == "已核实"
    assert moved.updated_at == at(2026, 5, 8, 14, 0)
    assert moved.submitted_at == case.submitted_at
    assert moved.due_dates == {"识别认定": date(2026, 5, 20), "帮扶计划": date(2026, 6, 1)}

    with uow_factory() as uow:
        with pytest.raises(ConcurrentUpdateError):
            uow.cases.transition(
                case.number,
                expected_status="已受理",  # someone already moved it on
                to_status="已退回",
                actor_id=cadre.id,
                at=at(2026, 5, 9),
            )
        with pytest.raises(NotFoundError):
            uow.cases.transition(
                "FX-2026-999999",
                expected_status="已受理",
                to_status="已核实",
                actor_id=None,
                at=at(2026, 5, 9),
            )
        uow.cases.transition(
            case.number,
            expected_status="已核实",
            to_status="已办结",
            actor_id=None,
            at=at(2026, 5, 9),
        )
        uow.commit()
    with uow_factory() as uow:
        history = uow.cases.events(case.number)
        assert uow.cases.get(case.number).status == "已办结"  # type: ignore[union-attr]
    assert [(e.from_status, e.to_status, e.actor_id) for e in history] == [
        (None, "已受理", farmer.id),
        ("已受理", "已核实", cadre.id),
        ("已核实", "已办结", None),
    ]
    assert history[1].note == "入户核实，情况属实"
    assert history[1].at == at(2026, 5, 8, 14, 0)


def _file_cases(uow_factory: UnitOfWorkFactory, farmer: User) -> list[str]:
    specs = [
        # (submitted, township, village, status, due dates)
        (at(2026, 5, 1), "大塘埠镇", "坪石村", "已受理", {"识别认定": date(2026, 5, 16)}),
        (at(2026, 5, 2), "大塘埠镇", "坪石村", "已核实", {"帮扶计划": date(2026, 5, 12)}),
        (at(2026, 5, 3), "大塘埠镇", "大塘村", "已受理", {"识别认定": date(2026, 5, 18)}),
        (at(2026, 5, 3), "嘉定镇", "东门村", "已受理", {"识别认定": date(2026, 5, 10)}),
        (at(2026, 5, 4), "大塘埠镇", "坪石村", "已办结", {}),
    ]
    numbers = []
    with uow_factory() as uow:
        for submitted, township, village, status, due in specs:
            new = dataclasses.replace(
                risk_case(farmer.id, submitted),
                township=township,
                village=village,
                status=status,
                due_dates=due,
            )
            numbers.append(uow.cases.create(new).number)
        uow.commit()
    return numbers


def test_list_cases_filters_orders_and_pages(uow_factory: UnitOfWorkFactory, farmer: User) -> None:
    n = _file_cases(uow_factory, farmer)
    with uow_factory() as uow:
        everything = uow.cases.list_cases(CaseQuery())
        township = uow.cases.list_cases(CaseQuery(township="大塘埠镇"))
        village_open = uow.cases.list_cases(
            CaseQuery(
                township="大塘埠镇", village="坪石村", statuses=frozenset({"已受理", "已核实"})
            )
        )
        first_page = uow.cases.list_cases(CaseQuery(), limit=2)
        second_page = uow.cases.list_cases(CaseQuery(), limit=2, offset=2)
        nothing = uow.cases.list_cases(CaseQuery(statuses=frozenset()))
        by_type = uow.cases.list_cases(CaseQuery(case_type="subsidy"))
        mine = uow.cases.list_cases(CaseQuery(submitter_id=farmer.id))

    # Newest first; the two cases of 5 May 3rd tie on time and go by id, descending.
    assert [c.number for c in everything.items] == [n[4], n[3], n[2], n[1], n[0]]
    assert everything.total == 5
    assert [c.number for c in township.items] == [n[4], n[2], n[1], n[0]]
    assert [c.number for c in village_open.items] == [n[1], n[0]]
    assert village_open.total == 2
    assert [c.number for c in first_page.items] == [n[4], n[3]]
    assert [c.number for c in second_page.items] == [n[2], n[1]]
    assert first_page.total == second_page.total == 5
    assert (nothing.total, list(nothing.items)) == (0, [])
    assert by_type.total == 0
    assert mine.total == 5
    assert everything.items[0].due_dates == {}
    assert everything.items[1].due_dates == {"识别认定": date(2026, 5, 10)}


def test_due_before_orders_by_earliest_due_date(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    n = _file_cases(uow_factory, farmer)
    with uow_factory() as uow:
        overdue = uow.cases.due_before(CaseQuery(), date(2026, 5, 17))
        township = uow.cases.due_before(CaseQuery(township="大塘埠镇"), date(2026, 5, 17))
        identification = uow.cases.due_before(
            CaseQuery(), date(2026, 6, 1), due_names=frozenset({"识别认定"})
        )
        on_the_day = uow.cases.due_before(CaseQuery(), date(2026, 5, 10))
    assert [c.number for c in overdue] == [n[3], n[1], n[0]]
    assert [c.number for c in township] == [n[1], n[0]]
    assert [c.number for c in identification] == [n[3], n[0], n[2]]
    assert on_the_day == []  # strictly before


def test_case_events_cannot_be_rewritten_through_the_orm(
    engine: Engine, uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    with uow_factory() as uow:
        uow.cases.create(risk_case(farmer.id, at(2026, 5, 6)))
        uow.commit()
    with Session(engine) as session:
        event = session.scalars(select(CaseEventRow)).one()
        event.note = "改写历史"
        with pytest.raises(RuntimeError, match="append-only"):
            session.flush()


def test_case_type_outside_the_schema_is_refused(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    bad = dataclasses.replace(risk_case(farmer.id, at(2026, 5, 6)), case_type="other")
    with uow_factory() as uow, pytest.raises(Exception, match="case_type"):
        uow.cases.create(bad)


# --------------------------------------------------------------------------- exchanges


def test_exchanges_are_recorded(
    engine: Engine, uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    exchange = Exchange(
        channel="telegram",
        chat_id="chat-1",
        user_id=farmer.id,
        at=at(2026, 5, 6, 9, 30),
        inbound_text="产业奖补什么时候申报？",
        reply_text="每年分两批：5月中下旬和8月中下旬。",
        kind=ExchangeKind.QA,
        found=True,
        chunk_ids=("003-0012", "003-0013"),
        latency_ms=840,
        kb_version="20260506-1",
    )
    with uow_factory() as uow:
        uow.exchanges.record(exchange)
        uow.exchanges.record(
            dataclasses.replace(exchange, user_id=None, kind=ExchangeKind.ERROR, found=None)
        )
        uow.commit()
    with Session(engine) as session:
        rows = session.scalars(select(ExchangeRow).order_by(ExchangeRow.id)).all()
    assert len(rows) == 2
    row = rows[0]
    assert (row.channel, row.chat_id, row.user_id, row.kind) == (
        "telegram",
        "chat-1",
        farmer.id,
        "qa",
    )
    assert (row.inbound_text, row.reply_text) == (exchange.inbound_text, exchange.reply_text)
    assert (row.found, row.cited_chunk_ids, row.latency_ms) == (True, ["003-0012", "003-0013"], 840)
    assert row.kb_version == "20260506-1"
    assert row.created_at == exchange.at
    assert row.created_at.tzinfo is not None
    assert row.feedback is None
    assert (rows[1].kind, rows[1].user_id, rows[1].found) == ("error", None, None)


def test_naive_datetimes_are_refused(uow_factory: UnitOfWorkFactory, farmer: User) -> None:
    naive = at(2026, 5, 6).replace(tzinfo=None)
    with uow_factory() as uow, pytest.raises(Exception, match="naive"):
        uow.cases.create(risk_case(farmer.id, naive))


def test_times_are_stored_as_instants(uow_factory: UnitOfWorkFactory, farmer: User) -> None:
    """A time given in UTC reads back as the same instant (in the factory's zone)."""
    given = at(2026, 5, 6, 9, 0).astimezone(UTC)
    with uow_factory() as uow:
        case = uow.cases.create(risk_case(farmer.id, given))
    assert case.submitted_at == given
    assert case.submitted_at.tzinfo == SHANGHAI


def test_json_is_stored_as_readable_utf8(
    engine: Engine, uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    with uow_factory() as uow:
        uow.cases.create(risk_case(farmer.id, at(2026, 5, 6)))
        uow.commit()
    with engine.connect() as connection:
        raw = connection.execute(select(cast(CaseRow.fields, Text))).scalar_one()
    assert "今年住院花了六万多元" in raw
