"""Fixtures for the Telegram channel: a fake Bot API server and the real PTB application.

A tiny knowledge base (the opening items of 赣党农字〔2023〕2号) is indexed once per session
with the real default embedder; every test gets its own copy of that index, its own
knowledge folder and its own database, so tests never see each other's state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cadrebot.bot.telegram import build_services
from cadrebot.bot.telegram.services import TelegramServices
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import FakeTelegram
from tests.support.knowledge import Parts, build_tiny_index, fresh_dirs, knowledge_for
from tests.support.settings import make_settings
from tests.support.telegram import Harness, running


@pytest.fixture(scope="session")
def parts() -> Parts:
    return Parts.warm()


@pytest.fixture(scope="session")
def prebuilt_data_dir(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    """A data dir holding the tiny knowledge base's index and embedding cache."""
    return build_tiny_index(tmp_path_factory.mktemp("telegram-index"), parts)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return sqlite_file_url(tmp_path / "bot.sqlite3")


@pytest.fixture
def bot_dirs(tmp_path: Path, prebuilt_data_dir: Path) -> tuple[Path, Path]:
    return fresh_dirs(tmp_path, prebuilt_data_dir)


@pytest.fixture
def services(
    bot_dirs: tuple[Path, Path], server: FakeTelegram, parts: Parts, database_url: str
) -> Iterator[TelegramServices]:
    data_dir, knowledge_dir = bot_dirs
    settings = make_settings(
        data_dir,
        knowledge_dir,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        database_url=database_url,
    )
    built = build_services(settings, knowledge=knowledge_for(settings, parts))
    with built:
        yield built


@pytest.fixture
async def bot(server: FakeTelegram, services: TelegramServices) -> AsyncIterator[Harness]:
    async with running(server, services) as harness:
        yield harness
