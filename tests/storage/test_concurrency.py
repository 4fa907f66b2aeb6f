"""Concurrent workers: per-conversation serialisation, unique case numbers, lock scope."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.exc import OperationalError

from cadrebot.handlers.ports import (
    ConcurrentUpdateError,
    ConversationKey,
    UnitOfWork,
    UnitOfWorkFactory,
    User,
)
from cadrebot.storage import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.support.cases import risk_case
from tests.support.clock import SHANGHAI, at
from tests.support.database import migrated_engine

from .helpers import KEY, counter_state

THREADS = 8
INCREMENTS = 25


def _increment(uow: UnitOfWork, key: ConversationKey) -> None:
    state = uow.dialogs.load(key) or counter_state(key)
    count = state.answers["count"]
    assert isinstance(count, int)
    uow.dialogs.save(dataclasses.replace(state, answers={**state.answers, "count": count + 1}))


def _run_in_threads(work: Callable[[], None], threads: int = THREADS) -> None:
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        work()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        for future in futures:
            future.result()  # re-raises a worker's exception


def test_concurrent_updates_of_one_conversation_lose_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    def increments() -> None:
        for _ in range(INCREMENTS):
            with uow_factory() as uow, uow.dialogs.locked(KEY):
                _increment(uow, KEY)
                uow.commit()

    _run_in_threads(increments)
    with uow_factory() as uow:
        final = uow.dialogs.load(KEY)
    assert final is not None
    assert final.answers["count"] == THREADS * INCREMENTS
    assert final.version == THREADS * INCREMENTS


def test_concurrent_first_messages_create_one_user(uow_factory: UnitOfWorkFactory) -> None:
    ids: list[int] = []

    def first_message() -> None:
        with uow_factory() as uow:
            ids.append(uow.users.get_or_create("telegram", "555", "新用户").id)
            uow.commit()

    _run_in_threads(first_message)
    assert len(ids) == THREADS
    assert len(set(ids)) == 1


def test_concurrent_filings_get_distinct_consecutive_numbers(
    uow_factory: UnitOfWorkFactory, farmer: User
) -> None:
    numbers: list[str] = []
    lock = threading.Lock()

    def file_cases() -> None:
        for _ in range(10):
            with uow_factory() as uow:
                number = uow.cases.create(risk_case(farmer.id, at(2026, 5, 6))).number
                uow.commit()
            with lock:
                numbers.append(number)

    _run_in_threads(file_cases)
    assert sorted(numbers) == [f"FX-2026-{n:06d}" for n in range(1, THREADS * 10 + 1)]


# --------------------------------------------------------------------------- PostgreSQL locks


@pytest.fixture
def pg_factory(pg_url: str) -> Iterator[SqlUnitOfWorkFactory]:
    with migrated_engine(pg_url) as engine:
        yield SqlUnitOfWorkFactory(engine, tz=SHANGHAI)


def _with_lock_timeout(uow: SqlUnitOfWork, timeout: str) -> SqlUnitOfWork:
    # SET LOCAL: only for the current transaction, so the pooled connection stays clean.
    uow.connection().exec_driver_sql(f"SET LOCAL lock_timeout = '{timeout}'")
    return uow


@pytest.mark.postgres
def test_different_conversations_do_not_block_each_other(
    pg_factory: SqlUnitOfWorkFactory,
) -> None:
    key_a, key_b = ConversationKey("telegram", "A"), ConversationKey("telegram", "B")
    holding, release = threading.Event(), threading.Event()

    def hold_a() -> None:
        with pg_factory() as uow, uow.dialogs.locked(key_a):
            _increment(uow, key_a)
            holding.set()
            release.wait(10)
            uow.commit()

    def update_b() -> None:
        with pg_factory() as uow:
            with _with_lock_timeout(uow, "2s").dialogs.locked(key_b):
                _increment(uow, key_b)
            uow.commit()

    def lock_a_again() -> None:
        with pg_factory() as uow, _with_lock_timeout(uow, "200ms").dialogs.locked(key_a):
            pass

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(hold_a)
        try:
            assert holding.wait(5)
            with ThreadPoolExecutor(1) as other:
                other.submit(update_b).result(timeout=5)  # not blocked by A's lock
                with pytest.raises(OperationalError, match="lock timeout"):
                    other.submit(lock_a_again).result(timeout=5)  # A really is locked
        finally:
            release.set()
        holder.result()

    with pg_factory() as uow:
        state_a, state_b = uow.dialogs.load(key_a), uow.dialogs.load(key_b)
    assert state_a is not None
    assert state_b is not None
    assert (state_a.answers["count"], state_b.answers["count"]) == (1, 1)


@pytest.mark.postgres
def test_lock_is_held_until_the_locked_block_exits_even_across_commits(
    pg_factory: SqlUnitOfWorkFactory,
) -> None:
    with pg_factory() as uow, uow.dialogs.locked(KEY):
        _increment(uow, KEY)
        uow.commit()  # ends the transaction that took the row lock
        with (
            pg_factory() as intruder,
            pytest.raises(OperationalError, match="lock timeout"),
            _with_lock_timeout(intruder, "200ms").dialogs.locked(KEY),
        ):
            pass
    # Once the block is left (and the unit of work closed) the conversation is free.
    with pg_factory() as uow, _with_lock_timeout(uow, "2s").dialogs.locked(KEY):
        _increment(uow, KEY)
        uow.commit()
    with pg_factory() as uow:
        state = uow.dialogs.load(KEY)
    assert state is not None
    assert state.answers["count"] == 2


@pytest.mark.postgres
def test_lock_outlives_its_block_until_the_transaction_ends(
    pg_factory: SqlUnitOfWorkFactory,
) -> None:
    """The conversation service commits right after the locked block: still serialised."""
    with pg_factory() as uow:
        with uow.dialogs.locked(KEY):
            _increment(uow, KEY)
        with (
            pg_factory() as intruder,
            pytest.raises(OperationalError, match="lock timeout"),
            _with_lock_timeout(intruder, "200ms").dialogs.locked(KEY),
        ):
            pass
        uow.commit()
        with pg_factory() as other, _with_lock_timeout(other, "2s").dialogs.locked(KEY):
            _increment(other, KEY)
            other.commit()
    with pg_factory() as uow:
        state = uow.dialogs.load(KEY)
    assert state is not None
    assert state.answers["count"] == 2


@pytest.mark.postgres
def test_without_the_lock_concurrent_saves_are_caught_not_lost(
    pg_factory: SqlUnitOfWorkFactory,
) -> None:
    """The optimistic version check is the second line of defence."""
    with pg_factory() as uow:
        _increment(uow, KEY)
        uow.commit()
    with pg_factory() as first, pg_factory() as second:
        state_1, state_2 = first.dialogs.load(KEY), second.dialogs.load(KEY)
        assert state_1 is not None
        assert state_2 is not None
        first.dialogs.save(dataclasses.replace(state_1, current_field="姓名"))
        first.commit()
        with pytest.raises(ConcurrentUpdateError):
            second.dialogs.save(dataclasses.replace(state_2, current_field="电话"))
