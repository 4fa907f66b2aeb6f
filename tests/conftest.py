"""Shared database fixtures.

* ``sqlite_url``: a fresh SQLite file under the test's tmp dir.
* ``pg_url``: a fresh, private schema on the PostgreSQL named by ``TEST_DATABASE_URL``
  (search_path pinned through the URL, so every engine made from it — including Alembic's —
  works inside that schema); the schema is dropped afterwards, so concurrent test runs on
  one shared database never see each other's tables. Skipped when the variable is unset.
* ``db_url``: parametrised over both; the PostgreSQL case carries the ``postgres`` marker.

Fixtures hand out URL strings; tests that make engines from them must dispose them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cadrebot.storage.db import normalize_database_url

POSTGRES_SKIP_REASON = (
    "PostgreSQL tests need TEST_DATABASE_URL, "
    "e.g. TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cadrebot-test.sqlite3'}"


@contextmanager
def private_schema(base: str, prefix: str) -> Iterator[str]:
    """A URL into a new schema of the database at ``base``, dropped at the end."""
    base_url = normalize_database_url(base)
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = base_url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    with private_schema(base, "cadrebot_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url
