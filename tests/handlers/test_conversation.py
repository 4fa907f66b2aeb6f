from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cadrebot.handlers.conversation import (
    APOLOGY,
    CONFLICT,
    ConversationService,
    looks_like_question,
    replies_text,
)
from cadrebot.handlers.ports import (
    Case,
    CaseQuery,
    ConcurrentUpdateError,
    ConversationKey,
    DialogPhase,
    DialogState,
    Exchange,
    ExchangeKind,
    Role,
    User,
)
from cadrebot.storage import CaseDatabase, SqlDialogStateRepository, SqlUnitOfWork
from cadrebot.storage.models import ExchangeRow
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at
from tests.support.forms import RISK_TYPED, SUBSIDY_TYPED, VALID_ID


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(2026, 5, 12))


@pytest.fixture
def answerer() -> FakeAnswerer:
    return FakeAnswerer()


def make_service(
    database: CaseDatabase, answerer: FakeAnswerer, clock: FixedClock
) -> ConversationService:
    return ConversationService(database.unit_of_work, answerer, clock=clock, idle_timeout=IDLE)


@pytest.fixture
def service(
    database: CaseDatabase, answerer: FakeAnswerer, clock: FixedClock
) -> ConversationService:
    return make_service(database, answerer, clock)


def say(service: ConversationService, text: str, user: str = "u1") -> str:
    return replies_text(service.handle("console", user, f"用户{user}", text))


# What the service left in the database, read back through the repositories.


def dialog(database: CaseDatabase, user: str = "u1") -> DialogState | None:
    with database.unit_of_work(read_only=True) as uow:
        return uow.dialogs.load(ConversationKey("console", user))


def cases(database: CaseDatabase) -> list[Case]:
    with database.unit_of_work(read_only=True) as uow:
        return list(uow.cases.list_cases(CaseQuery(), limit=100).items)


def users(database: CaseDatabase) -> list[User]:
    with database.unit_of_work(read_only=True) as uow:
        return list(uow.users.list_users(roles=frozenset(Role)))


def exchanges(database: CaseDatabase) -> list[Exchange]:
    """The whole exchange log, oldest first."""
    with database.engine.connect() as connection:
        statement = select(ExchangeRow.id).order_by(ExchangeRow.id)
        ids = list(connection.execute(statement).scalars())
    with database.unit_of_work(read_only=True) as uow:
        logged = [uow.exchanges.get(exchange_id) for exchange_id in ids]
    return [entry.exchange for entry in logged if entry is not None]


def fail_next_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next unit of work to commit raises instead (and rolls back on exit)."""
    real_commit = SqlUnitOfWork.commit
    armed = [True]

    def commit(self: SqlUnitOfWork) -> None:
        if armed:
            armed.clear()
            raise RuntimeError("simulated database failure")
        real_commit(self)

    monkeypatch.setattr(SqlUnitOfWork, "commit", commit)


def test_start_help_and_unknown_commands(
    service: ConversationService, database: CaseDatabase
) -> None:
    assert "/report" in say(service, "/start")
    assert "/subsidy" in say(service, "/help")
    assert "没有“/foo”这个命令" in say(service, "/foo")
    assert "请输入文字内容" in say(service, "   ")
    assert [e.kind for e in exchanges(database)[:3]] == [ExchangeKind.COMMAND] * 3
    assert len(users(database)) == 1


def test_policy_question_is_answered_and_logged(
    service: ConversationService, database: CaseDatabase, answerer: FakeAnswerer
) -> None:
    reply = say(service, "监测对象识别认定一般不超过多少天？")
    assert "15天" in reply
    assert answerer.questions == ["监测对象识别认定一般不超过多少天？"]
    (exchange,) = exchanges(database)
    assert exchange.kind is ExchangeKind.QA
    assert exchange.found is True
    assert exchange.chunk_ids == ("c-0001",)
    assert exchange.kb_version == "test-kb"
    assert exchange.inbound_text == "监测对象识别认定一般不超过多少天？"
    assert exchange.reply_text == reply


def test_risk_report_end_to_end_files_one_case_and_clears_the_dialog(
    service: ConversationService, database: CaseDatabase
) -> None:
    assert "姓名" in say(service, "/report")
    for text in RISK_TYPED:
        say(service, text)
    assert dialog(database) is not None
    assert dialog(database).phase is DialogPhase.SUMMARY  # type: ignore[union-attr]
    reply = say(service, "确认提交")
    assert "FX-2026-000001" in reply
    assert "12317" in reply
    assert dialog(database) is None
    (case,) = cases(database)
    assert case.status == "已受理"
    assert case.fields["id_number"] == VALID_ID
    (user,) = users(database)
    assert case.submitter_id == user.id
    # the log never holds the full ID number or phone number
    logged = exchanges(database)
    for exchange in logged:
        assert VALID_ID not in exchange.inbound_text + exchange.reply_text
        assert "13812345678" not in exchange.inbound_text + exchange.reply_text
    assert {e.kind for e in logged} == {ExchangeKind.FORM}


def test_subsidy_end_to_end(service: ConversationService, database: CaseDatabase) -> None:
    say(service, "/subsidy")
    for text in SUBSIDY_TYPED:
        say(service, text)
    reply = say(service, "确认提交")
    assert "JB-2026-000001" in reply
    (case,) = cases(database)
    assert case.status == "已申报"


def test_ineligible_subsidy_ends_without_a_case(
    service: ConversationService, database: CaseDatabase
) -> None:
    say(service, "/subsidy")
    reply = say(service, "一般农户")
    assert "信巩字〔2024〕1号" in reply
    assert dialog(database) is None
    assert not cases(database)


def test_resume_after_rebuilding_the_service(
    database: CaseDatabase, answerer: FakeAnswerer, clock: FixedClock
) -> None:
    first = make_service(database, answerer, clock)
    say(first, "/report")
    for text in RISK_TYPED[:5]:
        say(first, text)
    del first
    second = make_service(database, answerer, clock)  # a restart: nothing but the database survives
    assert "几口人" in say(second, "/report")  # same form: just a reminder of where we are
    for text in RISK_TYPED[5:]:
        say(second, text)
    assert "FX-2026-000001" in say(second, "确认提交")
    (case,) = cases(database)
    assert case.fields["name"] == "张三"
    assert case.fields["household_size"] == 4


def test_two_conversations_interleaved(
    service: ConversationService, database: CaseDatabase
) -> None:
    say(service, "/report", "a")
    say(service, "/subsidy", "b")
    for risk, sub in zip(RISK_TYPED, SUBSIDY_TYPED, strict=False):
        say(service, risk, "a")
        say(service, sub, "b")
    say(service, SUBSIDY_TYPED[-1], "b")
    assert "JB-2026-000001" in say(service, "确认提交", "b")
    assert "FX-2026-000001" in say(service, "确认提交", "a")
    by_type = {c.case_type: c for c in cases(database)}
    assert by_type["risk_report"].fields["name"] == "张三"
    assert by_type["subsidy"].fields["name"] == "李四"
    assert by_type["risk_report"].submitter_id != by_type["subsidy"].submitter_id


def test_question_in_the_middle_of_a_form(
    service: ConversationService, database: CaseDatabase, answerer: FakeAnswerer
) -> None:
    say(service, "/report")
    for text in RISK_TYPED[:5]:
        say(service, text)
    before = dialog(database)
    replies = service.handle("console", "u1", "用户u1", "监测对象识别认定要多久？")
    assert "15天" in replies[0].text
    assert "您正在填写《防返贫风险自主申报》" in replies[-1].text
    assert "几口人" in replies[-1].text
    assert dialog(database) == before
    assert exchanges(database)[-1].kind is ExchangeKind.FORM_QA
    # an invalid answer that is not a question gets the validation message, no Q&A
    assert "数字" in say(service, "好多人")
    assert len(answerer.questions) == 1


def test_looks_like_question() -> None:
    assert looks_like_question("低保怎么申请")
    assert looks_like_question("可以吗?")
    assert not looks_like_question("好多人")


def test_other_form_refused_while_one_is_active(
    service: ConversationService, database: CaseDatabase
) -> None:
    say(service, "/report")
    say(service, "张三")
    reply = say(service, "/subsidy")
    assert "请先填完" in reply
    assert "身份证" in reply
    assert dialog(database).form_name == "risk_report"  # type: ignore[union-attr]


def test_cancel_command(service: ConversationService, database: CaseDatabase) -> None:
    assert "没有正在填写" in say(service, "/cancel")
    say(service, "/report")
    say(service, "张三")
    assert "已取消" in say(service, "/cancel")
    assert dialog(database) is None
    assert not cases(database)


def test_idle_form_expires_and_the_answer_is_not_sent_to_qa(
    service: ConversationService, database: CaseDatabase, clock: FixedClock, answerer: FakeAnswerer
) -> None:
    say(service, "/report")
    say(service, "张三")
    clock.now += IDLE + timedelta(minutes=1)
    reply = say(service, VALID_ID)
    assert "已自动取消" in reply
    assert dialog(database) is None
    assert answerer.questions == []
    assert "姓名" in say(service, "/report")  # can start again


def test_failed_commit_files_nothing_and_loses_nothing(
    service: ConversationService, database: CaseDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    say(service, "/report")
    for text in RISK_TYPED:
        say(service, text)
    summary_state = dialog(database)
    fail_next_commit(monkeypatch)
    assert say(service, "确认提交") == APOLOGY
    assert not cases(database)
    assert dialog(database) == summary_state
    assert exchanges(database)[-1].kind is ExchangeKind.ERROR
    assert "FX-2026-000001" in say(service, "确认提交")
    assert len(cases(database)) == 1


def test_conflicting_update_asks_to_resend(
    service: ConversationService, database: CaseDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(self: SqlDialogStateRepository, state: DialogState) -> DialogState:
        raise ConcurrentUpdateError("stale")

    monkeypatch.setattr(SqlDialogStateRepository, "save", conflict)
    assert say(service, "/report") == CONFLICT
    assert dialog(database) is None


def test_my_cases_for_farmers(service: ConversationService, database: CaseDatabase) -> None:
    assert "还没有提交过" in say(service, "/mycases")
    say(service, "/report")
    for text in RISK_TYPED:
        say(service, text)
    say(service, "确认提交")
    listing = say(service, "/mycases")
    assert "FX-2026-000001" in listing
    assert "已受理" in listing
    detail = say(service, "/mycases FX-2026-000001")
    assert "3601**********1239" in detail
    assert VALID_ID not in detail
    assert "提交（已受理）" in detail
    assert "没有找到" in say(service, "/mycases FX-2026-000001", "stranger")
    assert "没有找到" in say(service, "/case FX-2026-000001", "stranger")


def test_cadre_works_a_case_through_the_conversation(
    service: ConversationService, database: CaseDatabase, clock: FixedClock
) -> None:
    say(service, "/report")
    for text in RISK_TYPED:
        say(service, text)
    say(service, "确认提交")
    say(service, "/start", "cadre")
    with database.unit_of_work() as uow:
        cadre = uow.users.find("console", "cadre")
        assert cadre is not None
        # No place register given: a township's id is its cleaned name ("~" + name).
        uow.users.set_role(cadre.id, Role.CADRE, "大塘埠镇", "长岭村", township_id="~大塘埠镇")
        uow.commit()
    assert "干部命令" in say(service, "/help", "cadre")
    # The role check is the registry's, the same on every channel.
    assert "仅限已登记的干部" in say(service, "/setstatus FX-2026-000001 核实中", "u1")
    refused = say(service, "/setstatus FX-2026-000001 已纳入监测", "cadre")
    assert "可以改为：核实中" in refused
    assert "已改为“核实中”" in say(service, "/setstatus FX-2026-000001 核实中", "cadre")
    assert "必须填写理由" in say(service, "/setstatus FX-2026-000001 不予纳入", "cadre")
    clock.now = at(2026, 5, 20)
    moved = say(service, "/setstatus FX-2026-000001 已纳入监测", "cadre")
    assert "帮扶计划期限：2026-05-30" in moved
    overview = say(service, "/mycases", "cadre")
    assert "FX-2026-000001" in overview
    assert "3天内到期：无" in overview
    clock.now = at(2026, 6, 2)
    assert "已逾期3天" in say(service, "/mycases", "cadre")
