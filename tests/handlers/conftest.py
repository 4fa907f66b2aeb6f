"""Fixtures for the handler tests: the form engine and a real case database (SQLite in the
test's tmp dir, migrated; datetimes handed back in Asia/Shanghai like the service's clock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadrebot.handlers.forms import FormEngine, default_registry
from cadrebot.handlers.ports import UnitOfWorkFactory
from cadrebot.storage import CaseDatabase
from tests.support.clock import IDLE, SHANGHAI
from tests.support.settings import make_settings


@pytest.fixture
def engine() -> FormEngine:
    return FormEngine(default_registry(), idle_timeout=IDLE)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[CaseDatabase]:
    database = CaseDatabase(make_settings(tmp_path), tz=SHANGHAI)
    database.open()
    yield database
    database.close()


@pytest.fixture
def uow_factory(database: CaseDatabase) -> UnitOfWorkFactory:
    return database.unit_of_work
