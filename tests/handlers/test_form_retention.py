"""Abandoned forms do not keep anyone's ID number: a clean-up deletes them after the
retention time and tells the user so, truthfully."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.ports import ConversationKey
from cadrebot.handlers.turns import Inbound
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at
from tests.support.forms import RISK_TYPED

START = at(2026, 5, 12)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


def service_with(
    database: CaseDatabase, clock: FixedClock, retention: timedelta
) -> ConversationService:
    return ConversationService(
        database.unit_of_work,
        FakeAnswerer(),
        clock=clock,
        idle_timeout=IDLE,
        form_retention=retention,
    )


def start_a_report(service: ConversationService, user: str) -> None:
    service.turn(Inbound("telegram", user, "张三", "/report"))
    for answer in RISK_TYPED[:3]:  # name, ID number, phone
        service.turn(Inbound("telegram", user, "张三", answer))


def stored_form(database: CaseDatabase, user: str) -> object:
    with database.unit_of_work(read_only=True) as uow:
        return uow.dialogs.load(ConversationKey("telegram", user))


def test_the_clean_up_deletes_forms_idle_past_the_retention_and_tells_the_user(
    database: CaseDatabase, clock: FixedClock
) -> None:
    service = service_with(database, clock, retention=timedelta(hours=24))
    start_a_report(service, "old")
    clock.now = START + timedelta(hours=20)
    start_a_report(service, "recent")
    assert service.clean_up_forms() == []  # "old" is expired but within the retention
    clock.now = START + timedelta(hours=24, minutes=1)
    [notice] = service.clean_up_forms()
    assert notice.user.external_id == "old"
    assert "已自动取消" in notice.text and "已删除" in notice.text and "/report" in notice.text
    assert stored_form(database, "old") is None
    assert stored_form(database, "recent") is not None
    assert service.clean_up_forms() == []  # told once


def test_the_retention_is_never_shorter_than_the_idle_timeout(
    database: CaseDatabase, clock: FixedClock
) -> None:
    service = service_with(database, clock, retention=timedelta(minutes=1))
    start_a_report(service, "u1")
    clock.now = START + IDLE - timedelta(minutes=1)
    assert service.clean_up_forms() == []  # still a live form
    assert stored_form(database, "u1") is not None


def test_a_user_back_after_expiry_is_told_the_truth(
    database: CaseDatabase, clock: FixedClock
) -> None:
    service = service_with(database, clock, retention=timedelta(hours=24))
    start_a_report(service, "u1")
    clock.now = START + IDLE + timedelta(minutes=5)
    reply = service.turn(Inbound("telegram", "u1", "张三", "13812345678")).text
    assert "已自动取消" in reply and "已删除" in reply and "没有保存" not in reply
    assert stored_form(database, "u1") is None


def test_notices_the_caller_cannot_send_wait_in_the_outbox(
    database: CaseDatabase, clock: FixedClock
) -> None:
    service = service_with(database, clock, retention=timedelta(hours=24))
    start_a_report(service, "tg")
    service.turn(Inbound("webchat", "browser", "网页用户", "/report"))
    service.turn(Inbound("webchat", "browser", "网页用户", RISK_TYPED[0]))
    clock.now = START + timedelta(hours=24, minutes=1)
    # A Telegram process sends Telegram users' notices itself; the browser's waits.
    [sent] = service.clean_up_forms(deliver={"telegram"})
    assert sent.user.external_id == "tg"
    [waiting] = service.pending_notices("webchat", "browser")
    assert "已自动取消" in waiting
    assert stored_form(database, "tg") is None


def test_a_process_that_sends_nothing_queues_every_notice(
    database: CaseDatabase, clock: FixedClock
) -> None:
    service = service_with(database, clock, retention=timedelta(hours=24))
    start_a_report(service, "tg")
    clock.now = START + timedelta(hours=24, minutes=1)
    assert service.clean_up_forms(deliver=()) == []  # `cadrebot web` alone
    [claimed] = service.claim_notices("telegram", 10)
    assert claimed.user.external_id == "tg" and "已自动取消" in claimed.text
