"""Read-only units of work, and pooled connections that died while idle."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from cadrebot.handlers.ports import UnitOfWorkFactory
from cadrebot.storage import engines as storage_engines
from cadrebot.storage import make_engine, upgrade

from .helpers import KEY, counter_state


def _save_state(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        uow.dialogs.save(counter_state(KEY))
        uow.commit()


def test_read_only_unit_of_work_reads_what_is_committed(uow_factory: UnitOfWorkFactory) -> None:
    _save_state(uow_factory)
    with uow_factory(read_only=True) as reader:
        state = reader.dialogs.load(KEY)
    assert state is not None and state.form_name == "risk_report"


def test_read_only_unit_of_work_takes_no_lock_and_commits_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    with uow_factory(read_only=True) as reader:
        with pytest.raises(RuntimeError, match="read-only"), reader.dialogs.locked(KEY):
            pass
        with pytest.raises(RuntimeError, match="read-only"):
            reader.commit()


def test_a_read_does_not_wait_for_a_conversation_lock(uow_factory: UnitOfWorkFactory) -> None:
    """A writer holds a conversation lock (SQLite: the database write lock; PostgreSQL: a row
    lock) with an uncommitted change; a read-only unit of work reads the committed state at
    once instead of queueing behind it."""
    _save_state(uow_factory)
    finished = threading.Event()
    with uow_factory() as writer, writer.dialogs.locked(KEY):
        state = writer.dialogs.load(KEY)
        assert state is not None
        writer.dialogs.save(dataclasses.replace(state, current_field="联系电话"))

        def read() -> None:
            with uow_factory(read_only=True) as reader:
                seen = reader.dialogs.load(KEY)
            assert seen is not None and seen.current_field == "家庭人口"  # the committed one
            finished.set()

        thread = threading.Thread(target=read)
        thread.start()
        # A reader starting SQLite's BEGIN IMMEDIATE would wait 30 s for the write lock.
        assert finished.wait(timeout=10)
        thread.join()


# --------------------------------------------------------------------------- idle connections


@pytest.fixture
def one_connection_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=1)
    upgrade(engine)
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill_backend(pg_url: str, pid: int) -> None:
    killer = make_engine(pg_url)
    try:
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        killer.dispose()


@pytest.mark.postgres
def test_a_connection_that_died_while_idle_is_replaced_unnoticed(
    one_connection_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a database restart does to the pool: the pooled connection is dead when it is next
    checked out, after an idle spell longer than the threshold; the ping finds out and the
    pool hands out a new one."""
    dead = _backend_pid(one_connection_engine)
    _kill_backend(pg_url, dead)
    monkeypatch.setattr(storage_engines, "PING_AFTER_IDLE_S", 0.0)  # any idle spell counts
    assert _backend_pid(one_connection_engine) != dead


@pytest.mark.postgres
def test_a_connection_returned_moments_ago_is_used_without_a_ping(
    one_connection_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the trade: within the threshold there is no ping (no round trip per
    transaction under load), so a connection killed in that window fails its next statement;
    SQLAlchemy then invalidates the pool and the statement after that succeeds."""
    dead = _backend_pid(one_connection_engine)
    _kill_backend(pg_url, dead)
    monkeypatch.setattr(storage_engines, "PING_AFTER_IDLE_S", 3600.0)
    with pytest.raises(DBAPIError) as raised:
        _backend_pid(one_connection_engine)
    assert raised.value.connection_invalidated
    assert _backend_pid(one_connection_engine) != dead
