"""Long polling through the inbox: an update is stored before Telegram is told it arrived, so
a bot process killed (SIGKILL) while it works through its messages loses none of them."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cadrebot.storage import make_engine, upgrade
from cadrebot.storage.inbox import SqlInbox
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import FakeTelegram
from tests.telegram.test_restart import _log_text, start_bot, wait_polling

QUESTIONS = (
    "监测对象识别认定一般不超过多少天？",
    "防止返贫动态监测的对象是哪些人？",
    "北京市的公积金贷款利率是多少？",
)
LATE = "风险消除后还会继续监测吗？"  # sent while no bot runs
CHATS = (7101, 7102, 7103)


def _stored_ids(database_url: str) -> set[int]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT update_id FROM inbound_updates"))
            return {int(row.update_id) for row in rows}
    finally:
        engine.dispose()


def _exchanges(database_url: str) -> Counter[tuple[str, str]]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT chat_id, inbound_text FROM exchanges"))
            return Counter((str(row.chat_id), str(row.inbound_text)) for row in rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_killed_while_processing_loses_and_doubles_nothing(
    server: FakeTelegram,
    bot_dirs: tuple[Path, Path],
    database_url: str,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "postgres":
        database_url = request.getfixturevalue("pg_url")
    data_dir, knowledge_dir = bot_dirs
    log = tmp_path / "bot.log"
    confirmed_unstored: list[int] = []

    def check_stored(offset: int) -> None:
        # Telegram forgets every update below the offset: the bot must hold them by now.
        confirmed = [u for u in server.delivered if u < offset]
        if confirmed:
            stored = _stored_ids(database_url)
            confirmed_unstored.extend(u for u in confirmed if u not in stored)

    server.on_get_updates = check_stored
    users = [server.user(chat, f"农户{chat}") for chat in CHATS]
    first = start_bot(server, data_dir, knowledge_dir, database_url, log)
    try:
        await wait_polling(server, first, log)
        # Every chat's first answer is sent but the send never returns: the bot is stuck
        # mid-update with the chats' other questions received behind it.
        server.hold_replies()
        last = max(user.say(question) for question in QUESTIONS for user in users)
        await server.wait_until(
            lambda: server.acked_offset > last and all(len(user.messages()) == 1 for user in users),
            60,
        )
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 30)
    assert first.returncode == -signal.SIGKILL
    assert not confirmed_unstored, f"confirmed before stored: {confirmed_unstored}"
    assert all(len(user.messages()) == 1 for user in users)
    server.release_replies()
    late = users[0].say(LATE)

    second = start_bot(server, data_dir, knowledge_dir, database_url, log)
    try:
        await wait_polling(server, second, log)
        await server.wait_until(
            lambda: (
                server.acked_offset > late
                and len(users[0].messages()) > len(QUESTIONS)
                and all(len(user.messages()) >= len(QUESTIONS) for user in users)
            ),
            60,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)
    assert second.returncode == 0, _log_text(log)

    # One answer per question, in the order asked (a chat's updates are processed in order;
    # what the killed process left comes before what arrived while it was down).
    for user in users:
        texts = [m["text"] for m in user.messages()]
        assert len(texts) == len(QUESTIONS) + (user is users[0]), texts
        assert "15天" in texts[0]
        assert "没有找到" in texts[2]
    asked = [(str(chat), question) for chat in CHATS for question in QUESTIONS]
    assert _exchanges(database_url) == Counter([*asked, (str(CHATS[0]), LATE)])
    assert not confirmed_unstored
    assert server.acked_offset > late  # the second process confirmed what it fetched


def test_starting_poller_takes_over_updates_a_killed_process_held(tmp_path: Path) -> None:
    """Only one process polls: what another owner still holds was left by a killed one."""
    url = sqlite_file_url(tmp_path / "inbox.sqlite3")
    upgrade(url)
    engine = make_engine(url)
    try:
        now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        dead = SqlInbox(engine, owner="dead", lease=timedelta(seconds=30), clock=lambda: now)
        assert dead.add(1, "42", {"update_id": 1})
        assert dead.add(2, "42", {"update_id": 2})
        claimed = dead.claim_next("42")
        assert claimed is not None and claimed.update_id == 1

        alive = SqlInbox(engine, owner="alive", lease=timedelta(seconds=30), clock=lambda: now)
        assert alive.claim_next("42") is None  # the dead process's lease is still running
        assert alive.take_over_pending() == ["42"]
        again = alive.claim_next("42")
        assert again is not None and again.update_id == 1 and again.attempts == 2
        alive.finish(1)
        assert not dead.renew(1)
        following = alive.claim_next("42")
        assert following is not None and following.update_id == 2
    finally:
        engine.dispose()
