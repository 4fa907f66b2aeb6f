"""The conversation core and the notice outbox: a turn's notice for a user of another
channel is queued in the turn's transaction (one for the turn's own channel still comes with
the result), a returning web-chat user takes theirs once, and the deliverers' claim, retry,
give-up and purge rules — on a real SQLite database."""

from __future__ import annotations

from datetime import timedelta

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.invites import RoleBook
from cadrebot.handlers.outbox_ports import CLAIM_LEASE, KEEP_FOR, MAX_ATTEMPTS, RETRY_AFTER
from cadrebot.handlers.ports import UnitOfWork
from cadrebot.handlers.turns import Inbound, TurnResult
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at
from tests.support.conversation import ADMIN, CODE
from tests.support.forms import RISK_TYPED, VALID_ID

WEB_FARMER = "browser-1"


def make_service(database: CaseDatabase, clock: FixedClock) -> ConversationService:
    return ConversationService(
        database.unit_of_work,
        FakeAnswerer(),
        clock=clock,
        idle_timeout=IDLE,
        roles=RoleBook({"console": frozenset({ADMIN})}),
        invite_codes=lambda: CODE,
    )


def say(service: ConversationService, channel: str, user: str, text: str) -> TurnResult:
    return service.turn(Inbound(channel, user, f"用户{user}", text))


def file_case(service: ConversationService, channel: str, user: str) -> str:
    for text in ("/report", *RISK_TYPED):
        say(service, channel, user, text)
    filed = say(service, channel, user, "确认提交").text
    return filed.split("编号：")[1].split("。")[0]


def console_cadre(service: ConversationService) -> None:
    say(service, "console", ADMIN, "/invite 大塘埠镇")
    assert "登记成功" in say(service, "console", "cadre", f"/register {CODE}").text


def test_a_notice_for_another_channels_user_waits_in_the_outbox(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    number = file_case(service, "webchat", WEB_FARMER)
    console_cadre(service)
    moved = say(
        service, "console", "cadre", f"/setstatus {number} 核实中 请保持电话畅通，身份证 {VALID_ID}"
    )
    assert f"案件 {number} 已改为“核实中”" in moved.text
    assert moved.notices == ()  # the console cannot reach a web-chat farmer
    assert service.pending_notices("webchat", "someone-else") == []
    [told] = service.pending_notices("webchat", WEB_FARMER)
    assert number in told and "办理状态已更新为：核实中" in told and "请保持电话畅通" in told
    assert VALID_ID not in told
    assert service.pending_notices("webchat", WEB_FARMER) == []  # delivered once


def test_a_notice_for_the_turns_own_channel_comes_with_the_result(
    database: CaseDatabase,
) -> None:
    service = make_service(database, FixedClock(at(2026, 5, 12)))
    number = file_case(service, "console", "farmer")
    console_cadre(service)
    moved = say(service, "console", "cadre", f"/setstatus {number} 核实中")
    [notice] = moved.notices
    assert notice.user.external_id == "farmer" and "核实中" in notice.text
    assert service.pending_notices("console", "farmer") == []
    assert service.claim_notices("console") == []


class FailingReceipt:
    """A channel's delivery record that cannot be completed (its inbox row is gone): the
    last write of the turn's transaction fails, after the notice was queued."""

    def complete_in(self, uow: UnitOfWork) -> None:
        raise RuntimeError("inbox row gone")

    def committed(self) -> None:
        raise AssertionError("a failed turn has nothing committed")


def test_a_failed_turn_queues_nothing(database: CaseDatabase) -> None:
    service = make_service(database, FixedClock(at(2026, 5, 12)))
    number = file_case(service, "webchat", WEB_FARMER)
    console_cadre(service)
    inbound = Inbound("console", "cadre", "用户cadre", f"/setstatus {number} 核实中")
    failed = service.turn(inbound, receipt=FailingReceipt())
    assert "抱歉" in failed.text
    assert service.pending_notices("webchat", WEB_FARMER) == []
    with database.unit_of_work(read_only=True) as uow:
        case = uow.cases.get(number)
    assert case is not None and case.status == "已受理"
    # The same move going through is queued (so the check above could fail).
    say(service, "console", "cadre", f"/setstatus {number} 核实中")
    assert len(service.pending_notices("webchat", WEB_FARMER)) == 1


def queue(database: CaseDatabase, clock: FixedClock, count: int = 1) -> list[int]:
    with database.unit_of_work() as uow:
        farmer = uow.users.get_or_create("telegram", "4242", "张三")
        ids = [uow.outbox.add(farmer, f"通知{n}", clock()) for n in range(count)]
        uow.commit()
    return ids


def test_a_claimed_notice_is_held_until_its_lease_lapses(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    [notice_id] = queue(database, clock)
    [claimed] = service.claim_notices("telegram")
    assert (claimed.id, claimed.user.external_id, claimed.attempts) == (notice_id, "4242", 1)
    assert service.claim_notices("telegram") == []
    clock.now += CLAIM_LEASE  # its sender died before reporting
    [again] = service.claim_notices("telegram")
    assert (again.id, again.attempts) == (notice_id, 2)
    service.notice_sent(notice_id)
    clock.now += CLAIM_LEASE
    assert service.claim_notices("telegram") == []


def test_failed_sends_are_retried_later_then_given_up(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    [notice_id] = queue(database, clock)
    for attempt in range(1, MAX_ATTEMPTS):
        [claimed] = service.claim_notices("telegram")
        assert claimed.attempts == attempt
        assert not service.notice_failed(claimed)
        wait = RETRY_AFTER[attempt - 1]
        clock.now += wait - timedelta(seconds=1)
        assert service.claim_notices("telegram") == []  # not yet
        clock.now += timedelta(seconds=1)
    [last] = service.claim_notices("telegram")
    assert last.attempts == MAX_ATTEMPTS
    assert service.notice_failed(last)  # given up
    clock.now += timedelta(days=1)
    assert service.claim_notices("telegram") == []
    with database.unit_of_work(read_only=True) as uow:
        stored = uow.outbox.get(notice_id)
    assert stored is not None and stored.sent_at is None and stored.attempts == MAX_ATTEMPTS


def test_a_permanent_failure_gives_up_at_once(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    queue(database, clock)
    [claimed] = service.claim_notices("telegram")
    assert service.notice_failed(claimed, permanent=True)
    clock.now += timedelta(days=1)
    assert service.claim_notices("telegram") == []


def test_claims_come_in_batches_oldest_first(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    ids = queue(database, clock, count=5)
    assert [c.id for c in service.claim_notices("telegram", limit=3)] == ids[:3]
    assert [c.id for c in service.claim_notices("telegram", limit=3)] == ids[3:]


def test_old_notices_are_purged(database: CaseDatabase) -> None:
    clock = FixedClock(at(2026, 5, 12))
    service = make_service(database, clock)
    [old] = queue(database, clock)
    clock.now += timedelta(days=1)
    [recent] = queue(database, clock)
    clock.now += KEEP_FOR - timedelta(hours=1)
    assert service.purge_notices() == 1
    with database.unit_of_work(read_only=True) as uow:
        assert uow.outbox.get(old) is None and uow.outbox.get(recent) is not None
