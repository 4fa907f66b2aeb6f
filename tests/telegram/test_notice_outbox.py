"""The Telegram side of the notice outbox: the job of every Telegram process sends what waits
(a farmer told of a status change made in the web console), marks it sent, tries a failed
send again later, gives a blocked user up; two workers on PostgreSQL never send one twice.
The real application against the fake Bot API on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cadrebot.bot.telegram import build_services
from cadrebot.bot.telegram.services import TelegramServices
from cadrebot.handlers.outbox_ports import RETRY_AFTER
from cadrebot.handlers.places import PlaceRegister
from cadrebot.handlers.ports import Role, User
from tests.support.clock import SHANGHAI, FixedClock
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import FakeTelegram, FakeUser, Json, _ApiError
from tests.support.forms import RISK_TYPED
from tests.support.knowledge import Parts, knowledge_for
from tests.support.settings import make_settings
from tests.support.telegram import Harness, running


@dataclass
class FlakyTelegram(FakeTelegram):
    """The fake Bot API, with users who blocked the bot and outages on demand."""

    blocked: set[int] = field(default_factory=set)  # sendMessage to them: 403
    down: bool = False  # every sendMessage: 502

    async def _m_sendmessage(self, params: Json) -> Json:
        chat_id = int(params["chat_id"])
        if chat_id in self.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if self.down:
            raise _ApiError(502, "Bad Gateway")
        return await super()._m_sendmessage(params)


@pytest.fixture
async def server() -> AsyncIterator[FlakyTelegram]:
    fake = FlakyTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, or (parametrised indirectly with "postgres") a private PostgreSQL schema."""
    if getattr(request, "param", "sqlite") == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return sqlite_file_url(tmp_path / "bot.sqlite3")


@pytest.fixture
def poll_seconds() -> float:
    """How often the scheduled job runs: never within a test, unless a test says so."""
    return 3600.0


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(SHANGHAI))


@pytest.fixture
def services(
    bot_dirs: tuple[Path, Path],
    server: FakeTelegram,
    parts: Parts,
    database_url: str,
    poll_seconds: float,
    clock: FixedClock,
) -> Iterator[TelegramServices]:
    yield from _services(bot_dirs, server, parts, database_url, poll_seconds, clock)


def _services(
    bot_dirs: tuple[Path, Path],
    server: FakeTelegram,
    parts: Parts,
    database_url: str,
    poll_seconds: float,
    clock: FixedClock,
) -> Iterator[TelegramServices]:
    data_dir, knowledge_dir = bot_dirs
    settings = make_settings(
        data_dir,
        knowledge_dir,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        database_url=database_url,
        notice_poll_seconds=poll_seconds,
    )
    built = build_services(settings, knowledge=knowledge_for(settings, parts), clock=clock)
    with built:
        yield built


async def file_case(bot: Harness, farmer: FakeUser) -> str:
    """A risk report filed by a Telegram farmer through the core (the forms have their own
    tests); its number."""
    handle = bot.services.core.handle
    for text in ("/report", *RISK_TYPED):
        await asyncio.to_thread(handle, "telegram", str(farmer.id), farmer.first_name, text)
    replies = await asyncio.to_thread(
        handle, "telegram", str(farmer.id), farmer.first_name, "确认提交"
    )
    return replies[-1].text.split("编号：")[1].split("。")[0]


def web_cadre(services: TelegramServices) -> User:
    """A cadre of 大塘埠镇 as the web console signs one in (a ``web`` user)."""
    with services.database.unit_of_work() as uow:
        user = uow.users.get_or_create("web", "account-1", "刘干部")
        place = PlaceRegister().resolve("大塘埠镇", None)
        assert place is not None
        user = uow.users.set_role(
            user.id, Role.CADRE, place.township, None, township_id=place.township_id
        )
        uow.commit()
    return user


def queue(services: TelegramServices, chat_id: int, text: str) -> int:
    with services.database.unit_of_work() as uow:
        user = uow.users.get_or_create("telegram", str(chat_id), "农户")
        notice_id = uow.outbox.add(user, text, services.clock())
        uow.commit()
    return notice_id


def stored(services: TelegramServices, notice_id: int) -> tuple[int, bool, bool]:
    """(attempts, sent, still due) of a notice."""
    with services.database.unit_of_work(read_only=True) as uow:
        notice = uow.outbox.get(notice_id)
    assert notice is not None
    return notice.attempts, notice.sent_at is not None, notice.next_attempt_at is not None


async def run_job(bot: Harness) -> None:
    [job] = bot.application.job_queue.get_jobs_by_name("notice-outbox")  # type: ignore[union-attr]
    await job.run(bot.application)


def texts_in(server: FakeTelegram, chat_id: int) -> list[str]:
    return [m.get("text", "") for m in server.chat_messages(chat_id)]


@pytest.mark.parametrize("poll_seconds", [0.2])
async def test_a_web_console_move_reaches_the_farmer_by_the_scheduled_job(bot: Harness) -> None:
    farmer = bot.user(8101, "张三")
    number = await file_case(bot, farmer)
    farmer.skip_all()
    cadre = web_cadre(bot.services)
    moved = await asyncio.to_thread(bot.services.case_board.move, cadre, number, "核实中")
    assert moved.notice is not None
    told = await farmer.expect("办理状态已更新为：核实中")
    assert number in told["text"]
    await asyncio.sleep(1.0)  # several more runs of the job: nothing is sent again
    assert sum("办理状态已更新为" in t for t in texts_in(bot.server, farmer.id)) == 1
    with bot.services.database.unit_of_work() as uow:
        assert not uow.outbox.has_pending(moved.notice.user.id)


async def test_a_failed_send_is_tried_again_later(
    bot: Harness, server: FlakyTelegram, clock: FixedClock
) -> None:
    notice_id = queue(bot.services, 8201, "您的案件办理状态已更新为：核实中。")
    server.down = True
    await run_job(bot)
    assert stored(bot.services, notice_id) == (1, False, True)
    assert texts_in(server, 8201) == []
    server.down = False
    clock.now += RETRY_AFTER[0] - timedelta(seconds=1)
    await run_job(bot)
    assert texts_in(server, 8201) == []  # not yet due again
    clock.now += timedelta(seconds=1)
    await run_job(bot)
    assert texts_in(server, 8201) == ["您的案件办理状态已更新为：核实中。"]
    assert stored(bot.services, notice_id) == (2, True, False)


async def test_a_user_who_blocked_the_bot_is_given_up_and_others_still_served(
    bot: Harness, server: FlakyTelegram, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    server.blocked.add(8301)
    blocked = queue(bot.services, 8301, "给拉黑了的用户")
    served = queue(bot.services, 8302, "给正常用户")
    with caplog.at_level(logging.WARNING, logger="cadrebot.bot.telegram.jobs"):
        await run_job(bot)
    assert stored(bot.services, blocked) == (1, False, False)
    assert stored(bot.services, served) == (1, True, False)
    assert texts_in(server, 8302) == ["给正常用户"]
    assert any(f"gave up on notice {blocked}" in r.getMessage() for r in caplog.records)
    assert not any("给拉黑了的用户" in r.getMessage() for r in caplog.records)
    clock.now += timedelta(days=1)
    await run_job(bot)
    assert stored(bot.services, blocked) == (1, False, False)  # not tried again


async def test_an_outage_longer_than_every_retry_is_given_up(
    bot: Harness, server: FlakyTelegram, clock: FixedClock
) -> None:
    notice_id = queue(bot.services, 8401, "一直发不出去")
    server.down = True
    for wait in (*RETRY_AFTER, timedelta(0)):
        await run_job(bot)
        clock.now += wait
    attempts, sent, due = stored(bot.services, notice_id)
    assert (attempts, sent, due) == (len(RETRY_AFTER) + 1, False, False)
    server.down = False
    clock.now += timedelta(days=1)
    await run_job(bot)
    assert texts_in(server, 8401) == []


# ---------------------------------------------------------------------- two workers, PostgreSQL


@pytest.fixture
def second_services(
    bot_dirs: tuple[Path, Path],
    server: FakeTelegram,
    parts: Parts,
    database_url: str,
    clock: FixedClock,
) -> Iterator[TelegramServices]:
    yield from _services(bot_dirs, server, parts, database_url, 3600.0, clock)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_never_send_a_notice_twice(
    server: FlakyTelegram, services: TelegramServices, second_services: TelegramServices
) -> None:
    chats = [8500 + n for n in range(6)]
    expected: dict[int, list[str]] = {chat: [] for chat in chats}
    with services.database.unit_of_work() as uow:
        users = {chat: uow.users.get_or_create("telegram", str(chat), "农户") for chat in chats}
        for n in range(400):
            chat = chats[n % len(chats)]
            text = f"通知 {n:03d}"
            uow.outbox.add(users[chat], text, services.clock())
            expected[chat].append(text)
        uow.commit()
    async with running(server, services) as one, running(server, second_services) as two:
        for _ in range(2):
            await asyncio.gather(run_job(one), run_job(two))
    for chat in chats:
        assert sorted(texts_in(server, chat)) == sorted(expected[chat])
    with services.database.unit_of_work(read_only=True) as uow:
        for chat in chats:
            user = uow.users.find("telegram", str(chat))
            assert user is not None and not uow.outbox.has_pending(user.id)
