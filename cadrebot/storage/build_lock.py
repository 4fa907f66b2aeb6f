"""One knowledge-base index builder at a time, across all worker processes.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the length of
the build (released on exit, and by the server if the holder dies). Keyed by the schema, so
two deployments in one database (or concurrent test runs) do not block each other.
SQLite (a single host): an exclusive ``flock`` on a file next to the index versions.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

_PG_KEY = "hashtext(current_schema() || ':cadrebot-kb-build')"
POLL_SECONDS = 0.5


class IndexBuildLock:
    """``with lock.hold(timeout) as acquired:`` — ``acquired`` is False after ``timeout``."""

    def __init__(self, engine: Callable[[], Engine], lock_file: Path) -> None:
        self._engine_of = engine  # a callable: the database is opened after construction
        self._lock_file = lock_file

    @property
    def _engine(self) -> Engine:
        return self._engine_of()

    @contextmanager
    def hold(self, timeout: float) -> Iterator[bool]:
        if self._engine.dialect.name == "postgresql":
            with self._hold_advisory(timeout) as acquired:
                yield acquired
        else:
            with self._hold_file(timeout) as acquired:
                yield acquired

    @contextmanager
    def _hold_advisory(self, timeout: float) -> Iterator[bool]:
        with self._engine.connect() as connection:
            # Autocommit: the lock belongs to the session, not to a transaction left open.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")

            def attempt() -> bool:
                sql = f"SELECT pg_try_advisory_lock({_PG_KEY})"
                return bool(connection.exec_driver_sql(sql).scalar())

            got = _keep_trying(attempt, timeout)
            try:
                yield got
            finally:
                if got:
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_KEY})")

    @contextmanager
    def _hold_file(self, timeout: float) -> Iterator[bool]:
        self._lock_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("a") as handle:

            def attempt() -> bool:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            got = _keep_trying(attempt, timeout)
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _keep_trying(attempt: Callable[[], bool], timeout: float) -> bool:
    """Call ``attempt`` every :data:`POLL_SECONDS` until it succeeds or ``timeout`` passed
    (at least once)."""
    deadline = time.monotonic() + timeout
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
