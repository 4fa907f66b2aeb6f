"""`cadrebot serve` pieces that need no database server."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cadrebot.bot.telegram.app import ConfigurationError
from cadrebot.bot.telegram.serve import ServeConfig, chat_key_of
from cadrebot.bot.workers import worker_share
from cadrebot.indexer.store import COMPUTE_THREAD_VARIABLES, limit_compute_threads
from cadrebot.settings import Settings
from cadrebot.storage import make_engine, upgrade
from cadrebot.storage.build_lock import IndexBuildLock
from cadrebot.storage.inbox import MAX_ATTEMPTS, SqlInbox
from tests.support.database import sqlite_file_url


def test_chat_key_of_messages_and_button_presses() -> None:
    message = {"update_id": 1, "message": {"chat": {"id": 42}, "from": {"id": 42}}}
    pressed = {
        "update_id": 2,
        "callback_query": {"from": {"id": 42}, "message": {"chat": {"id": 42}}},
    }
    gone = {"update_id": 3, "callback_query": {"from": {"id": 42}}}  # message unavailable
    assert chat_key_of(message) == chat_key_of(pressed) == chat_key_of(gone) == "42"


def test_workers_use_one_math_thread_unless_the_operator_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in COMPUTE_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    limit_compute_threads()
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"


def test_workers_share_the_cores_the_bot_rate_limit_and_an_addresss_chat_allowance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    settings = Settings(
        data_dir=tmp_path,
        telegram_rate_limit=30,
        web_chat_messages_per_minute=20,
        web_chat_messages_per_minute_per_address=120,
    )
    one = worker_share(settings, 1)
    assert one.embedding_concurrency is None  # the embedder's default: every core
    assert one.web_chat_messages_per_minute_per_address == 120
    four = worker_share(settings, 4)
    assert four.embedding_concurrency == 2
    assert four.telegram_rate_limit == pytest.approx(7.5)
    assert four.web_chat_messages_per_minute_per_address == 30
    # a browser's kept-alive connection stays on one worker: its own allowance is whole
    assert four.web_chat_messages_per_minute == 20
    assert worker_share(settings, 16).embedding_concurrency == 1
    # the operator's own figure stands
    chosen = settings.model_copy(update={"embedding_concurrency": 3})
    assert worker_share(chosen, 4).embedding_concurrency == 3


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        telegram_bot_token="1:x",
        telegram_webhook_secret="s3cret",
        database_url=sqlite_file_url(tmp_path / "x.sqlite3"),
    )
    assert ServeConfig.from_settings(settings, workers=1).workers == 1
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        ServeConfig.from_settings(settings, workers=2)
    with pytest.raises(ConfigurationError, match="WEBHOOK_SECRET"):
        ServeConfig.from_settings(settings.model_copy(update={"telegram_webhook_secret": None}))


def test_inbox_order_leases_and_takeover(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    now = [datetime(2026, 11, 22, tzinfo=UTC)]
    try:
        first = SqlInbox(engine, owner="a", lease=timedelta(seconds=30), clock=lambda: now[0])
        second = SqlInbox(engine, owner="b", lease=timedelta(seconds=30), clock=lambda: now[0])
        assert first.add(11, "7", {"n": 1}) and first.add(12, "7", {"n": 2})
        assert not second.add(11, "7", {"n": 1})  # the same update again
        claimed = first.claim_next("7")
        assert claimed is not None and claimed.update_id == 11
        assert second.claim_next("7") is None  # chat 7 is a's until it finishes 11
        now[0] += timedelta(seconds=31)  # a died: its lease ran out
        assert second.stale_chats(grace=timedelta(seconds=2)) == ["7"]
        taken = second.claim_next("7")
        assert taken is not None and (taken.update_id, taken.attempts) == (11, 2)
        first.finish(11)  # a's late finish does not count: the update is b's now
        assert second.claim_next("7") is None
        second.finish(11)
        following = second.claim_next("7")
        assert following is not None and following.update_id == 12
        second.finish(12)
        assert second.claim_next("7") is None and second.pending_count() == 0
        # An update that kills every worker that takes it is given up.
        second.add(13, "8", {})
        for _ in range(MAX_ATTEMPTS):
            assert second.claim_next("8") is not None
            now[0] += timedelta(seconds=31)
        assert second.claim_next("8") is None and second.pending_count() == 0
        assert first.claim_job("daily-reminder", "2026-11-22")
        assert not second.claim_job("daily-reminder", "2026-11-22")
    finally:
        engine.dispose()


def test_one_index_builder_at_a_time(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        mine = IndexBuildLock(lambda: engine, tmp_path / "build.lock")
        theirs = IndexBuildLock(lambda: engine, tmp_path / "build.lock")
        with mine.hold(0) as acquired:
            assert acquired
            with theirs.hold(0.2) as waited:
                assert not waited
        with theirs.hold(0) as acquired_after:
            assert acquired_after
    finally:
        engine.dispose()
