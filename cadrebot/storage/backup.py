"""Backup and restore of the case database.

* SQLite: the online backup API (:meth:`sqlite3.Connection.backup`). It copies one consistent
  snapshot while the bot keeps writing (the database runs in WAL mode, so the reading backup
  never blocks a writer). The backup is a single self-contained SQLite file (journal mode
  DELETE), checked with ``PRAGMA integrity_check``. Restore copies it back with the same API,
  through SQLite, so a WAL file next to the target cannot resurrect old pages.
* PostgreSQL: ``pg_dump --format=custom`` of the schema the URL's connections use (its
  ``search_path``), restored with ``pg_restore --single-transaction``: all or nothing. The
  dump keeps the schema name, so it restores into a schema of that name (a new database, or
  the same database after the schema was dropped or emptied). The password travels in
  ``PGPASSWORD``, never on a command line.

Restore refuses a target that already holds the case tables unless ``replace=True``; stop the
bot workers before restoring. Error messages are Chinese (the CLI prints them as they are).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, func, inspect, select, table, text
from sqlalchemy.engine import URL

from cadrebot.storage.engines import make_engine, normalize_database_url
from cadrebot.storage.models import Base

SQLITE_MAGIC: Final = b"SQLite format 3\x00"
PG_DUMP_MAGIC: Final = b"PGDMP"
ALEMBIC_TABLE: Final = "alembic_version"
PG_TIMEOUT_S: Final = 600.0

# One entry of ``pg_restore --list``: "215; 2615 16390 SCHEMA - name owner".
_TOC_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA - (?P<name>\S+) ")
_TOC_OBJECT = re.compile(
    r"^\d+; \d+ \d+ (?:TABLE DATA|SEQUENCE SET|SEQUENCE OWNED BY|FK CONSTRAINT|TABLE|SEQUENCE"
    r"|INDEX|CONSTRAINT|DEFAULT) (?P<schema>\S+) "
)


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why, in Chinese."""


@dataclass(frozen=True)
class BackupReport:
    """What was copied: the backend, the file, and the rows of each case-database table."""

    backend: str  # "sqlite" | "postgresql"
    path: Path
    tables: Mapping[str, int] = field(default_factory=dict)
    revision: str | None = None  # the schema revision the data is at


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows in each table of the case database that exists behind ``engine``."""
    names = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        for name in sorted(names & set(Base.metadata.tables)):
            counts[name] = int(
                connection.execute(select(func.count()).select_from(table(name))).scalar_one()
            )
    return counts


def _revision(engine: Engine) -> str | None:
    if ALEMBIC_TABLE not in inspect(engine).get_table_names():
        return None
    with engine.connect() as connection:
        value = connection.execute(text(f"SELECT version_num FROM {ALEMBIC_TABLE}")).scalar()
    return None if value is None else str(value)


def _report(url: URL, path: Path) -> BackupReport:
    engine = make_engine(url)
    try:
        return BackupReport(url.get_backend_name(), path, table_counts(engine), _revision(engine))
    finally:
        engine.dispose()


def backup_database(url: str | URL, destination: Path) -> BackupReport:
    """Write a backup of the database at ``url`` to ``destination`` (replaced if present).

    The file appears only when complete (written beside it, then renamed). Safe while the
    bot is running. The report counts the rows of the source at the end of the backup.
    """
    parsed = normalize_database_url(url)
    destination = destination.expanduser().resolve()
    if destination.is_dir():
        raise BackupError(f"“{destination}”是一个目录，请给出备份文件的路径。")
    if not destination.parent.is_dir():
        raise BackupError(f"备份文件所在的目录不存在：{destination.parent}")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        _sqlite_backup(_sqlite_path(parsed), destination)
        report = _report(make_sqlite_url(destination), destination)
        return BackupReport("sqlite", destination, report.tables, report.revision)
    if backend == "postgresql":
        _pg_backup(parsed, destination)
        return _report(parsed, destination)
    raise BackupError(f"不支持备份 {backend} 数据库（只支持 SQLite 和 PostgreSQL）。")


def restore_database(url: str | URL, source: Path, *, replace: bool = False) -> BackupReport:
    """Restore the backup file ``source`` into the database at ``url``.

    The target must not hold the case tables yet, unless ``replace`` is true, in which case
    they are replaced. Stop the bot first. The report counts the rows of the restored target.
    """
    parsed = normalize_database_url(url)
    source = source.expanduser().resolve()
    if not source.is_file():
        raise BackupError(f"找不到备份文件：{source}")
    kind = backup_kind(source)
    backend = parsed.get_backend_name()
    if kind is None:
        raise BackupError(
            f"“{source.name}”不是本系统的备份文件（既不是 SQLite 备份，也不是 pg_dump 备份）。"
        )
    if kind != backend:
        raise BackupError(
            f"备份文件是 {_BACKEND_NAMES[kind]} 备份，目标数据库是 "
            f"{_BACKEND_NAMES.get(backend, backend)}，不能直接恢复。"
        )
    if not replace:
        _require_empty(parsed)
    if backend == "sqlite":
        _sqlite_restore(source, _sqlite_path(parsed))
    else:
        _pg_restore(parsed, source, replace=replace)
    return _report(parsed, source)


_BACKEND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def backup_kind(path: Path) -> str | None:
    """``"sqlite"`` or ``"postgresql"`` by the file's magic bytes; ``None`` for anything else."""
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    return None


def make_sqlite_url(path: Path) -> URL:
    return URL.create("sqlite", database=str(path))


def _require_empty(url: URL) -> None:
    engine = make_engine(url)
    try:
        present = set(inspect(engine).get_table_names()) & (
            set(Base.metadata.tables) | {ALEMBIC_TABLE}
        )
    except Exception as exc:
        raise BackupError(f"连接目标数据库失败（{type(exc).__name__}）。") from exc
    finally:
        engine.dispose()
    if present:
        raise BackupError(
            "目标数据库里已经有案件数据表（" + "、".join(sorted(present)) + "）。"
            "为防止误覆盖，恢复只写入空数据库；确认要覆盖时请加 --replace（先停止机器人）。"
        )


# --------------------------------------------------------------------------- SQLite


def _sqlite_path(url: URL) -> Path:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("只能备份或恢复保存在文件里的 SQLite 数据库。")
    return Path(database).expanduser().resolve()


def _sqlite_backup(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise BackupError(f"找不到数据库文件：{source}")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # Read-only: a backup must never create or change the source.
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(tmp)
            try:
                # pages=-1: one step, one read transaction, one consistent snapshot. In WAL
                # mode that reader does not hold writers up.
                src.backup(dst)
                # One self-contained file: no -wal next to the backup.
                dst.execute("PRAGMA journal_mode = DELETE")
                _check_integrity(dst, tmp)
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(tmp, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite 备份失败：{exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _sqlite_restore(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
        try:
            _check_integrity(src, source)
            dst = sqlite3.connect(target, timeout=30)
            try:
                src.backup(dst)
                # The live database runs in WAL mode (make_engine sets it on connect anyway).
                dst.execute("PRAGMA journal_mode = WAL")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"SQLite 恢复失败：{exc}") from exc


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchone()
    if not result or result[0] != "ok":
        raise BackupError(f"SQLite 文件“{path.name}”未通过完整性检查：{result}")


# --------------------------------------------------------------------------- PostgreSQL


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"找不到 {name}。PostgreSQL 的备份与恢复需要它（Debian/Ubuntu：apt-get install "
            "postgresql-client，版本不低于数据库服务器）。"
        )
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for ``url`` without the password, and the environment with it."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    # libpq does not know SQLAlchemy's driver name; it takes the other query options as is.
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _current_schema(url: URL) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar()
    except Exception as exc:
        raise BackupError(f"连接数据库失败（{type(exc).__name__}）。") from exc
    finally:
        engine.dispose()
    if not schema:
        raise BackupError("数据库连接的 search_path 里没有可用的模式（schema）。")
    return str(schema)


def _search_path_schemas(url: URL) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            path = str(connection.execute(text("SHOW search_path")).scalar() or "")
            user = str(connection.execute(text("SELECT current_user")).scalar() or "")
    except Exception as exc:
        raise BackupError(f"连接目标数据库失败（{type(exc).__name__}）。") from exc
    finally:
        engine.dispose()
    names = [p.strip().strip('"') for p in path.split(",") if p.strip()]
    return [user if n == "$user" else n for n in names]


def _run(command: list[str], env: Mapping[str, str], what: str) -> str:
    try:
        done = subprocess.run(
            command,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=PG_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what}超时（{PG_TIMEOUT_S:.0f} 秒）。") from exc
    if done.returncode != 0:
        # pg tools' messages name objects and options, not row data.
        raise BackupError(f"{what}失败：{done.stderr.strip()[-2000:]}")
    return done.stdout


def _pg_backup(url: URL, destination: Path) -> None:
    schema = _current_schema(url)
    conninfo, env = _libpq(url)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _run(
            [
                _tool("pg_dump"),
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                f'--schema="{schema}"',  # quoted: the exact name, not a pattern
                f"--file={tmp}",
                f"--dbname={conninfo}",
            ],
            env,
            "pg_dump 备份",
        )
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def dump_schemas(path: Path) -> set[str]:
    """The schemas a ``pg_dump`` custom-format file holds objects of."""
    listing = _run([_tool("pg_restore"), "--list", str(path)], os.environ, "读取 pg_dump 备份")
    schemas: set[str] = set()
    for line in listing.splitlines():
        match = _TOC_SCHEMA.match(line) or _TOC_OBJECT.match(line)
        if match:
            schemas.add(match.group(1))
    return schemas


def _pg_restore(url: URL, source: Path, *, replace: bool) -> None:
    pg_restore = _tool("pg_restore")
    schemas = dump_schemas(source)
    if len(schemas) != 1:
        raise BackupError(
            f"备份文件应当恰好包含一个模式（schema），实际是：{sorted(schemas) or '无'}"
        )
    (schema,) = schemas
    if schema not in _search_path_schemas(url):
        raise BackupError(
            f"备份来自模式“{schema}”，但目标连接的 search_path 不包含它。"
            f"请在 DATABASE_URL 中加上 options=-csearch_path={schema} 后再恢复。"
        )
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    # The schema exists now; leave its CREATE out of the restore (it would fail on it).
    listing = _run([pg_restore, "--list", str(source)], os.environ, "读取 pg_dump 备份")
    kept = "\n".join(
        ";" + line if _TOC_SCHEMA.match(line) else line for line in listing.splitlines()
    )
    conninfo, env = _libpq(url)
    with tempfile.NamedTemporaryFile("w", suffix=".list", encoding="utf-8", delete=False) as fh:
        fh.write(kept + "\n")
        list_file = Path(fh.name)
    try:
        command = [
            pg_restore,
            "--no-owner",
            "--no-privileges",
            "--single-transaction",  # all or nothing
            "--exit-on-error",
            f"--use-list={list_file}",
            f"--dbname={conninfo}",
        ]
        if replace:
            command[1:1] = ["--clean", "--if-exists"]
        _run([*command, str(source)], env, "pg_restore 恢复")
    finally:
        list_file.unlink(missing_ok=True)
