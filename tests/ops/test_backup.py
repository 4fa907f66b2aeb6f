"""Backup and restore of the case database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, table
from sqlalchemy.engine import make_url

from cadrebot.bot.cli import main as cli_main
from cadrebot.handlers.ports import CaseQuery
from cadrebot.storage import SqlUnitOfWorkFactory, make_engine, normalize_database_url, upgrade
from cadrebot.storage.backup import (
    BackupError,
    backup_database,
    backup_kind,
    dump_schemas,
    restore_database,
    table_counts,
)
from tests.support.cases import risk_case
from tests.support.clock import SHANGHAI
from tests.support.database import sqlite_file_url

from .fill import DUE, T0, fill, snapshot


def _migrated(url: str) -> SqlUnitOfWorkFactory:
    engine = make_engine(url)
    upgrade(engine)
    return SqlUnitOfWorkFactory(engine, tz=SHANGHAI)


def _factory(url: str) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(make_engine(url), tz=SHANGHAI)


def _dispose(factory: SqlUnitOfWorkFactory) -> None:
    factory._engine.dispose()


@pytest.fixture
def pg_target(pg_url: str) -> Iterator[str]:
    """A fresh database on the same server, its search_path naming ``pg_url``'s schema."""
    url = make_url(pg_url)
    name = f"cadrebot_restore_{uuid.uuid4().hex[:12]}"
    server = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@pytest.fixture
def restore_target(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if make_url(db_url).get_backend_name() == "sqlite":
        return sqlite_file_url(tmp_path / "restored" / "cadrebot.sqlite3")
    target: str = request.getfixturevalue("pg_target")
    return target


def test_restored_database_matches_and_works(
    db_url: str, restore_target: str, tmp_path: Path
) -> None:
    source = _migrated(db_url)
    try:
        fill(source)
        before = snapshot(source)
        backup = backup_database(db_url, tmp_path / "cases.backup")
    finally:
        _dispose(source)
    assert backup.tables["cases"] == 3
    assert backup.tables["case_events"] == 4
    assert backup.revision is not None

    report = restore_database(restore_target, backup.path)
    assert report.tables == backup.tables
    restored = _factory(restore_target)
    try:
        assert snapshot(restored) == before
        # The repositories keep working: numbers and ids continue where the source stopped.
        with restored() as uow:
            farmer = uow.users.find("telegram", "5001")
            assert farmer is not None
            case = uow.cases.create(risk_case(farmer.id, T0 + timedelta(days=3), due_dates=DUE))
            newcomer = uow.users.get_or_create("telegram", "5003", "赵六")
            uow.commit()
        assert case.number == "FX-2026-000003"
        assert newcomer.id > max(u.id for u in before["users"])
    finally:
        _dispose(restored)


def test_restore_refuses_a_database_with_data_unless_replace(db_url: str, tmp_path: Path) -> None:
    factory = _migrated(db_url)
    try:
        fill(factory)
        backup = backup_database(db_url, tmp_path / "cases.backup")
        with factory() as uow:  # written after the backup: a restore must undo it
            farmer = uow.users.find("telegram", "5001")
            assert farmer is not None
            uow.cases.create(risk_case(farmer.id, T0 + timedelta(days=5), due_dates=DUE))
            uow.commit()
        with pytest.raises(BackupError, match="--replace"):
            restore_database(db_url, backup.path)
        assert table_counts(factory._engine)["cases"] == 4  # untouched

        factory._engine.dispose()  # the bot is stopped before a restore
        report = restore_database(db_url, backup.path, replace=True)
        assert report.tables["cases"] == 3
        with factory() as uow:
            assert uow.cases.get("FX-2026-000003") is None
            assert uow.cases.get("FX-2026-000002") is not None
    finally:
        _dispose(factory)


def test_sqlite_backup_while_the_bot_writes(sqlite_url: str, tmp_path: Path) -> None:
    factory = _migrated(sqlite_url)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        with factory() as uow:
            farmer = uow.users.get_or_create("telegram", "9", "张三")
            uow.commit()
        n = 0
        while not stop.is_set() or n < 20:
            with factory() as uow:
                written.append(
                    uow.cases.create(
                        risk_case(farmer.id, T0 + timedelta(minutes=n), due_dates=DUE)
                    ).number
                )
                uow.commit()
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 10:
            stop.wait(0.01)
        backups = [backup_database(sqlite_url, tmp_path / f"b{i}.sqlite3") for i in range(3)]
    finally:
        stop.set()
        thread.join()
        _dispose(factory)
    assert len(written) >= 20
    for backup in backups:
        # A consistent snapshot: every case with its creation event, numbers without holes.
        assert backup.tables["cases"] == backup.tables["case_events"] >= 10
        copy = _factory(sqlite_file_url(backup.path))
        try:
            with copy() as uow:
                numbers = [c.number for c in uow.cases.list_cases(CaseQuery(), limit=1000).items]
            assert sorted(numbers) == written[: len(numbers)]
        finally:
            _dispose(copy)
        assert not Path(f"{backup.path}-wal").exists()  # one self-contained file


def test_backup_kind_and_wrong_files(tmp_path: Path, sqlite_url: str) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("不是备份", encoding="utf-8")
    assert backup_kind(text_file) is None
    with pytest.raises(BackupError, match="不是本系统的备份文件"):
        restore_database(sqlite_url, text_file)
    with pytest.raises(BackupError, match="找不到备份文件"):
        restore_database(sqlite_url, tmp_path / "missing.backup")
    with pytest.raises(BackupError, match="目录"):
        backup_database(sqlite_url, tmp_path)
    with pytest.raises(BackupError, match="找不到数据库文件"):
        backup_database(sqlite_file_url(tmp_path / "none.sqlite3"), tmp_path / "x.backup")


@pytest.mark.postgres
def test_pg_dump_holds_one_schema_and_cannot_go_into_sqlite(
    pg_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    factory = _migrated(pg_url)
    try:
        fill(factory)
    finally:
        _dispose(factory)
    backup = backup_database(pg_url, tmp_path / "cases.dump")
    assert backup_kind(backup.path) == "postgresql"
    schema = dict(normalize_database_url(pg_url).query)["options"].split("=", 1)[1]
    assert dump_schemas(backup.path) == {schema}
    with pytest.raises(BackupError, match="PostgreSQL 备份"):
        restore_database(sqlite_url, backup.path)


@pytest.mark.postgres
def test_pg_restore_needs_the_dumped_schema_on_the_search_path(
    pg_url: str, pg_target: str, tmp_path: Path
) -> None:
    factory = _migrated(pg_url)
    _dispose(factory)
    backup = backup_database(pg_url, tmp_path / "cases.dump")
    elsewhere = make_url(pg_target).update_query_dict({"options": "-csearch_path=other"})
    with pytest.raises(BackupError, match="search_path"):
        restore_database(elsewhere, backup.path)


def test_cli_backup_and_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    factory = _migrated(sqlite_file_url(source_dir / "cadrebot.sqlite3"))
    try:
        fill(factory)
    finally:
        _dispose(factory)
    for name in ("CADREBOT_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    backup = tmp_path / "cases.backup"

    monkeypatch.setenv("CADREBOT_DATA_DIR", str(source_dir))
    assert cli_main(["backup", str(backup)]) == 0
    assert "cases: 3 行" in capsys.readouterr().out

    monkeypatch.setenv("CADREBOT_DATA_DIR", str(target_dir))
    assert cli_main(["restore", str(backup)]) == 0
    assert "已从" in capsys.readouterr().out
    engine = make_engine(sqlite_file_url(target_dir / "cadrebot.sqlite3"))
    try:
        with engine.connect() as connection:
            assert (
                connection.execute(select(func.count()).select_from(table("cases"))).scalar() == 3
            )
    finally:
        engine.dispose()

    assert cli_main(["restore", str(backup)]) == 2
    assert "--replace" in capsys.readouterr().err
    assert cli_main(["restore", str(backup), "--replace"]) == 0
    assert os.path.exists(target_dir / "cadrebot.sqlite3")
