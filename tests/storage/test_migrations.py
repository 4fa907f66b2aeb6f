"""Schema migrations: up, down, up again on both backends; models and migrations agree."""

from __future__ import annotations

import sqlite3
from importlib.resources import files
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cadrebot.settings import Settings
from cadrebot.storage import (
    CaseDatabase,
    current_revision,
    downgrade,
    engine_from_settings,
    head_revision,
    make_engine,
    normalize_database_url,
    upgrade,
)
from cadrebot.storage.models import Base

PROJECT_TABLES = {
    "users",
    "exchanges",
    "conversation_locks",
    "dialog_states",
    "case_counters",
    "cases",
    "case_due_dates",
    "case_events",
    "invite_codes",
    "kb_versions",
    "inbound_updates",
    "job_runs",
    "web_accounts",
    "web_sessions",
    "login_failures",
    "audit_events",
    "outbound_notices",
    "web_chat_transcripts",
}
INBOX_TABLES = {"inbound_updates", "job_runs"}
WEB_TABLES = {"web_accounts", "web_sessions", "login_failures", "audit_events"}
OUTBOX_TABLES = {"outbound_notices"}
CHAT_TABLES = {"web_chat_transcripts"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert _tables(db_url) == set()

    upgrade(db_url)
    assert _tables(db_url) == PROJECT_TABLES
    assert current_revision(db_url) == head_revision()

    downgrade(db_url, "base")
    assert _tables(db_url) == set()
    assert current_revision(db_url) is None

    upgrade(db_url)
    assert _tables(db_url) == PROJECT_TABLES
    upgrade(db_url)  # already at head: a no-op, not an error
    assert current_revision(db_url) == head_revision()


def test_inbox_revision_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0001")
    assert (
        _tables(db_url) == PROJECT_TABLES - INBOX_TABLES - WEB_TABLES - OUTBOX_TABLES - CHAT_TABLES
    )
    upgrade(db_url)
    assert _tables(db_url) == PROJECT_TABLES
    assert current_revision(db_url) == head_revision()
    downgrade(db_url, "0001")
    assert (
        _tables(db_url) == PROJECT_TABLES - INBOX_TABLES - WEB_TABLES - OUTBOX_TABLES - CHAT_TABLES
    )
    assert current_revision(db_url) == "0001"
    upgrade(db_url)
    assert _tables(db_url) == PROJECT_TABLES


def test_web_revision_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0003")
    assert _tables(db_url) == PROJECT_TABLES - WEB_TABLES - OUTBOX_TABLES - CHAT_TABLES
    upgrade(db_url, "0004")
    assert _tables(db_url) == PROJECT_TABLES - OUTBOX_TABLES - CHAT_TABLES
    downgrade(db_url, "0003")
    assert _tables(db_url) == PROJECT_TABLES - WEB_TABLES - OUTBOX_TABLES - CHAT_TABLES


def test_outbox_revision_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0005")
    assert _tables(db_url) == PROJECT_TABLES - OUTBOX_TABLES - CHAT_TABLES
    upgrade(db_url, "0006")
    assert _tables(db_url) == PROJECT_TABLES - CHAT_TABLES
    downgrade(db_url, "0005")
    assert _tables(db_url) == PROJECT_TABLES - OUTBOX_TABLES - CHAT_TABLES
    assert current_revision(db_url) == "0005"


def test_chat_transcripts_revision_up_and_down(db_url: str) -> None:
    upgrade(db_url, "0006")
    assert _tables(db_url) == PROJECT_TABLES - CHAT_TABLES
    upgrade(db_url, "0007")
    assert _tables(db_url) == PROJECT_TABLES
    downgrade(db_url, "0006")
    assert _tables(db_url) == PROJECT_TABLES - CHAT_TABLES
    assert current_revision(db_url) == "0006"


def test_models_and_migrations_agree(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_model_metadata_covers_every_migrated_table() -> None:
    assert set(Base.metadata.tables) == PROJECT_TABLES


def test_migrations_ship_inside_the_package() -> None:
    migrations = files("cadrebot.storage") / "migrations"
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    assert (migrations / "alembic.ini").is_file()
    assert any(entry.name.endswith(".py") for entry in (migrations / "versions").iterdir())


def test_upgrade_does_not_depend_on_the_working_directory(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    upgrade(sqlite_url)
    assert _tables(sqlite_url) == PROJECT_TABLES


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    database = sqlite_url.removeprefix("sqlite:///")
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as connection, pytest.raises(Exception, match="FOREIGN KEY"):
            connection.exec_driver_sql(
                "INSERT INTO case_events (case_id, at, to_status, note) "
                "VALUES (999, '2026-01-01 00:00:00', 'x', '')"
            )
    finally:
        engine.dispose()
    assert sqlite3.connect(database).execute("SELECT count(*) FROM case_events").fetchone() == (0,)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db.example:5432/cadre", "postgresql+psycopg"),
        ("postgres://u:p@db.example/cadre", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/cadre", "postgresql+psycopg"),
        ("sqlite:////var/lib/cadrebot/cadrebot.sqlite3", "sqlite"),
    ],
)
def test_normalize_database_url_pins_psycopg(given: str, driver: str) -> None:
    url = normalize_database_url(given)
    assert url.drivername == driver
    assert url.database == normalize_database_url(given).database


def test_settings_default_is_a_sqlite_file_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "not-yet-created", database_url=None)
    engine = engine_from_settings(settings)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    assert (tmp_path / "not-yet-created" / "cadrebot.sqlite3").is_file()


def test_case_database_opens_migrated_and_closes(tmp_path: Path) -> None:
    database = CaseDatabase(Settings(data_dir=tmp_path, database_url=None))
    with pytest.raises(RuntimeError, match="open"):
        database.unit_of_work()
    database.open()
    try:
        assert current_revision(database.engine) == head_revision()
        with database.unit_of_work() as uow:
            user = uow.users.get_or_create("console", "local", "测试")
            uow.commit()
        with database.unit_of_work() as uow:
            assert uow.users.get(user.id) == user
    finally:
        database.close()
    with pytest.raises(RuntimeError, match="open"):
        _ = database.engine
