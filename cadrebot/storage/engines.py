"""Engines and schema migrations.

SQLite (the default, a file under the data dir) and PostgreSQL (``DATABASE_URL``, psycopg 3)
are both first-class. Nothing here runs at import time: callers build an engine with
:func:`make_engine` / :func:`engine_from_settings` and bring the schema to the newest
revision with :func:`upgrade` when the application starts.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from cadrebot.settings import Settings
from cadrebot.storage.log_masking import mask_exception_args, mask_records_of

SQLALCHEMY_ENGINE_LOGGER: Final = "sqlalchemy.engine.Engine"

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_S: Final = 30.0
"""How long a SQLite writer waits for the write lock before failing with "database is locked"."""

PING_AFTER_IDLE_S: Final = 1.0
"""A pooled server connection left unused this long is pinged before it is handed out.

A database restart (or a firewall dropping idle connections) kills connections while they
sit in the pool; the ping finds a dead one and the pool replaces it, so no user's turn fails
on it. A restart keeps the server away for longer than this, so every connection that was
pooled across it has been idle at least that long and is pinged. Pinging on *every* checkout
(``pool_pre_ping``) would cost a round trip per transaction: three or four per webhook
update, a fifth of the database work of a busy worker, for connections used milliseconds ago.
"""

SQLITE_BEGIN_OPTION: Final = "cadrebot_sqlite_begin"
"""Execution option naming the ``BEGIN`` flavour SQLite transactions start with.

``IMMEDIATE`` takes the database write lock at the start of the transaction. Units of work use
it: a transaction that reads and later writes would otherwise fail at once with
``SQLITE_BUSY_SNAPSHOT`` whenever another writer committed in between (WAL mode does not
retry that case), and it is what serialises the work on one conversation on SQLite.
"""


def normalize_database_url(url: str | URL) -> URL:
    """Parse a database URL and pin PostgreSQL to the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` (as hosting providers hand them out) would make
    SQLAlchemy look for psycopg2, which is not installed.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, pool_size: int = 5) -> Engine:
    """An engine for ``url`` with the connection settings this project relies on.

    ``pool_size`` (server databases): connections kept open. Above it, up to as many again
    are opened for a burst and closed after, and opening a PostgreSQL connection costs a
    backend process, so a busy worker's pool should cover its usual concurrency.

    SQL parameters are never echoed or put into exception messages (``hide_parameters``):
    case fields contain identity-card numbers, which must not reach logs. Result rows, which
    SQLAlchemy logs if its engine logger is set to DEBUG, go through the masking filter.
    """
    mask_records_of(logging.getLogger(SQLALCHEMY_ENGINE_LOGGER))
    parsed = normalize_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _make_sqlite_engine(parsed)
    else:
        engine = create_engine(
            parsed,
            echo=False,
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=pool_size,
            # The most recently returned connection first: under load the same few stay
            # busy (and skip the ping below); the rest idle.
            pool_use_lifo=True,
            json_serializer=_json_dumps,
        )
        _ping_connections_left_idle(engine)
    event.listen(engine, "handle_error", _mask_database_error)
    return engine


_IDLE_SINCE: Final = "cadrebot_idle_since"


def _ping_connections_left_idle(engine: Engine) -> None:
    """Ping a connection on checkout if it sat in the pool over :data:`PING_AFTER_IDLE_S`."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # None: a new connection
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out another (a few tries).
            raise DisconnectionError("pooled connection is dead") from error


def _mask_database_error(context: ExceptionContext) -> None:
    # Database error messages may quote row data (PostgreSQL: "Failing row contains ...").
    mask_exception_args(context.original_exception)
    if context.sqlalchemy_exception is not None:
        mask_exception_args(context.sqlalchemy_exception)


def _json_dumps(value: Any) -> str:
    # Keep Chinese readable in the database (the default escapes it to \uXXXX).
    return json.dumps(value, ensure_ascii=False)


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(settings.resolved_database_url())


def _make_sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=False,
        hide_parameters=True,
        json_serializer=_json_dumps,
        # Pooled connections move between worker threads; each is used by one at a time.
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module (which would BEGIN lazily
        # and only before DML) so the "begin" hook below decides how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            mode = cursor.execute("PRAGMA journal_mode").fetchone()
            if database not in ("", ":memory:") and mode and str(mode[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL, much faster
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        flavour = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if flavour not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite BEGIN flavour {flavour!r}")
        connection.exec_driver_sql(f"BEGIN {flavour}")

    return engine


def writer_engine(engine: Engine) -> Engine:
    """The same engine (same pool) with SQLite transactions starting ``BEGIN IMMEDIATE``.

    On PostgreSQL the option is ignored. Idempotent: an engine already set up is returned as is.
    """
    if engine.get_execution_options().get(SQLITE_BEGIN_OPTION) == "IMMEDIATE":
        return engine
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def reader_engine(engine: Engine) -> Engine:
    """The same engine (same pool) for reads outside a transaction: PostgreSQL in autocommit,
    SQLite with transactions starting ``BEGIN DEFERRED`` (no write lock). Idempotent."""
    options = engine.get_execution_options()
    if engine.dialect.name == "postgresql":
        if options.get("isolation_level") == "AUTOCOMMIT":
            return engine
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    if options.get(SQLITE_BEGIN_OPTION, "DEFERRED") == "DEFERRED":
        return engine
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


# --------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the migrations shipped inside this package.

    Works from an installed package (no ``alembic.ini`` or repository checkout needed).
    With ``connection`` the migration commands run on it, inside its transaction.
    """
    config = Config()
    # ConfigParser interpolation: a literal "%" in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_with_connection(url: str | URL | Engine, action: Callable[[Config], None]) -> None:
    owned = not isinstance(url, Engine)
    engine = make_engine(url) if not isinstance(url, Engine) else url
    try:
        with engine.begin() as connection:
            action(alembic_config(connection))
    finally:
        if owned:
            engine.dispose()


def upgrade(url: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or behind ``engine``) up to ``revision``.

    Runs in one transaction on both backends (their DDL is transactional), so a failed
    migration leaves the schema as it was.
    """

    def run(config: Config) -> None:
        connection = config.attributes["connection"]
        if connection.dialect.name == "postgresql":
            # Several workers starting at once on a fresh database: one migrates, the others
            # wait here and then find the schema at head (a no-op). Keyed by the schema, so
            # databases in other schemas (tests) do not wait for each other.
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':cadrebot-migrate'))"
            )
        command.upgrade(config, revision)

    _run_with_connection(url, run)


def downgrade(url: str | URL | Engine, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` drops every table this project created)."""
    _run_with_connection(url, lambda config: command.downgrade(config, revision))


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str | URL | Engine) -> str | None:
    """The revision the database is at (``None`` for a database never migrated)."""
    owned = not isinstance(url, Engine)
    engine = make_engine(url) if not isinstance(url, Engine) else url
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()
