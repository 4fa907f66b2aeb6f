"""Storage fixtures: a migrated engine on each backend and unit-of-work factories on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from cadrebot.handlers.ports import UnitOfWorkFactory, User
from cadrebot.storage import SqlUnitOfWorkFactory
from tests.support.clock import SHANGHAI
from tests.support.database import migrated_engine


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    with migrated_engine(db_url) as engine:
        yield engine


@pytest.fixture
def uow_factory(engine: Engine) -> UnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, tz=SHANGHAI)


@pytest.fixture
def farmer(uow_factory: UnitOfWorkFactory) -> User:
    with uow_factory() as uow:
        user = uow.users.get_or_create("telegram", "1001", "张三")
        uow.commit()
    return user
