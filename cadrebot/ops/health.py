"""Health of one worker: is the database reachable, is an index loaded, which version.

API (the Telegram channel serves it at ``/healthz``)::

    report = check_health(engine, index_version=lambda: searcher_version_or_none)
    status = report.http_status        # 200 when healthy, 503 otherwise
    body = report.to_json()            # {"ok": true, "database": {...}, "index": {...}}

``index_version`` is a callable so health never triggers a load: it must return the name of
the index version the worker answers from, or ``None`` while none is loaded. The database
check runs ``SELECT 1`` and reads the Alembic revision; errors are reported by type only
(database error messages can quote row data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from cadrebot.storage import head_revision


@dataclass(frozen=True)
class DatabaseHealth:
    reachable: bool
    backend: str  # "sqlite", "postgresql"
    revision: str | None = None  # the schema revision the database is at
    schema_current: bool = False  # revision == the newest revision this package ships
    latency_ms: float | None = None
    error: str | None = None  # exception type name when not reachable

    def to_json(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "backend": self.backend,
            "revision": self.revision,
            "schema_current": self.schema_current,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class HealthReport:
    database: DatabaseHealth
    index_version: str | None

    @property
    def index_loaded(self) -> bool:
        return self.index_version is not None

    @property
    def ok(self) -> bool:
        """Ready to serve: database reachable and migrated, an index loaded."""
        return self.database.reachable and self.database.schema_current and self.index_loaded

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "database": self.database.to_json(),
            "index": {"loaded": self.index_loaded, "version": self.index_version},
        }


def check_database(engine: Engine) -> DatabaseHealth:
    """One round trip to the database and its schema revision; never raises."""
    backend = engine.dialect.name
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
            revision = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:
        return DatabaseHealth(reachable=False, backend=backend, error=type(exc).__name__)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    return DatabaseHealth(
        reachable=True,
        backend=backend,
        revision=revision,
        schema_current=revision is not None and revision == head_revision(),
        latency_ms=latency_ms,
    )


def check_health(engine: Engine, index_version: Callable[[], str | None]) -> HealthReport:
    """The health of a worker whose database is ``engine`` and whose searcher reports
    ``index_version()`` (``None`` while no index is loaded)."""
    try:
        version = index_version()
    except Exception:
        version = None
    return HealthReport(database=check_database(engine), index_version=version)
