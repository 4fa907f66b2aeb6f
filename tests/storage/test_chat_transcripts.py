"""The web chat's transcripts in SQL, on SQLite and PostgreSQL: one row per browser,
replaced on each save (an upsert), not shown once stale, purged by age."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase
from cadrebot.storage.chat_transcripts import SqlChatTranscripts
from tests.support.clock import at

T0 = at(2026, 6, 10, 10, 0)


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[SqlChatTranscripts]:
    database = CaseDatabase(Settings(data_dir=tmp_path, database_url=db_url))
    database.open()
    try:
        yield SqlChatTranscripts(database)
    finally:
        database.close()


def test_saved_replaced_stale_and_purged(store: SqlChatTranscripts) -> None:
    assert store.load("b1", fresh_after=T0 - timedelta(minutes=30)) is None
    store.save("b1", '{"turns": [1]}', at=T0)
    store.save("b1", '{"turns": [1, 2]}', at=T0 + timedelta(minutes=1))
    store.save("b2", '{"turns": []}', at=T0 - timedelta(minutes=40))
    assert store.load("b1", fresh_after=T0 - timedelta(minutes=30)) == '{"turns": [1, 2]}'
    # past its 30 minutes a transcript is not shown, even before the purge removes it
    assert store.load("b2", fresh_after=T0 - timedelta(minutes=30)) is None
    assert store.purge(older_than=T0 - timedelta(minutes=30)) == 1
    assert store.load("b2", fresh_after=T0 - timedelta(hours=2)) is None
    assert store.load("b1", fresh_after=T0 - timedelta(hours=2)) == '{"turns": [1, 2]}'


def test_concurrent_saves_of_one_browser_leave_one_of_them(store: SqlChatTranscripts) -> None:
    states = [f'{{"n": {n}}}' for n in range(16)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: store.save("b3", s, at=T0), states))
    assert store.load("b3", fresh_after=T0 - timedelta(minutes=1)) in states
