"""Case databases for tests: URLs, migrated engines, private PostgreSQL schemas.

Everything hands out or takes URL strings; whoever makes an engine disposes it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine

from cadrebot.storage import make_engine, normalize_database_url, upgrade

POSTGRES_SKIP_REASON = (
    "PostgreSQL tests need TEST_DATABASE_URL, "
    "e.g. TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def sqlite_file_url(path: Path) -> str:
    """The URL of a SQLite database file (created on first connect)."""
    return f"sqlite:///{path}"


def postgres_base_url() -> str:
    """``TEST_DATABASE_URL``; skips the calling test (or fixture) when it is unset."""
    import pytest  # here: the benches use this module without pytest

    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    return base


@contextmanager
def private_schema(base: str, prefix: str) -> Iterator[str]:
    """A URL into a new schema of the database at ``base``, dropped at the end.

    The search_path is pinned through the URL, so every engine made from it (Alembic's
    too) works inside that schema and concurrent runs on one database never meet.
    """
    base_url = normalize_database_url(base)
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url, pool_pre_ping=True)  # may outlive a server restart
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = base_url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@contextmanager
def migrated_engine(url: str) -> Iterator[Engine]:
    """An engine on ``url`` with the schema at the newest revision, disposed at the end."""
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
