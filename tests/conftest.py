"""Shared database fixtures (the helpers behind them are in :mod:`tests.support.database`).

* ``sqlite_url``: a fresh SQLite file under the test's tmp dir.
* ``pg_url``: a fresh, private schema on the PostgreSQL named by ``TEST_DATABASE_URL``
  (search_path pinned through the URL, so every engine made from it — including Alembic's —
  works inside that schema); the schema is dropped afterwards, so concurrent test runs on
  one shared database never see each other's tables. Skipped when the variable is unset.
* ``db_url``: parametrised over both; the PostgreSQL case carries the ``postgres`` marker.
* ``server``: the fake Telegram Bot API on loopback (the edge of the machine), started for
  the test and stopped after it.

Fixtures hand out URL strings; tests that make engines from them must dispose them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.database import postgres_base_url, private_schema, sqlite_file_url
from tests.support.fake_telegram import FakeTelegram


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return sqlite_file_url(tmp_path / "cadrebot-test.sqlite3")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with private_schema(postgres_base_url(), "cadrebot_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()
