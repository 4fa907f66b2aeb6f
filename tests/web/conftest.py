"""Fixtures for the web channel: the real app on a real stack (the tiny knowledge base
indexed once per session by the real embedder, the shipped place register, a SQLite
database per test), driven through Starlette's TestClient."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.wiring import ConversationStack, build_conversation_stack
from tests.support.database import sqlite_file_url
from tests.support.knowledge import Parts, build_tiny_index, fresh_dirs, knowledge_for
from tests.support.paths import REPO_KNOWLEDGE
from tests.support.settings import make_settings
from tests.support.web import WebClient, account_maker


@pytest.fixture(scope="session")
def parts() -> Parts:
    return Parts.warm()


@pytest.fixture(scope="session")
def prebuilt_data_dir(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    return build_tiny_index(tmp_path_factory.mktemp("web-index"), parts)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return sqlite_file_url(tmp_path / "web.sqlite3")


@pytest.fixture
def web_stack(
    tmp_path: Path, prebuilt_data_dir: Path, parts: Parts, database_url: str
) -> Iterator[ConversationStack]:
    data_dir, knowledge_dir = fresh_dirs(tmp_path, prebuilt_data_dir)
    # The deployment's place register, so accounts and forms match real townships.
    shutil.copy(REPO_KNOWLEDGE / "places.toml", knowledge_dir / "places.toml")
    settings = make_settings(data_dir, knowledge_dir, database_url=database_url)
    stack = build_conversation_stack(settings, knowledge=knowledge_for(settings, parts))
    with stack:
        yield stack


@pytest.fixture
def web_app(web_stack: ConversationStack) -> FastAPI:
    return create_web_app(web_context_of(web_stack), housekeeping_seconds=None)


@pytest.fixture
def web_client(web_stack: ConversationStack, web_app: FastAPI) -> Callable[..., WebClient]:
    """``web_client(role="cadre", township="潭东镇", village=None, username=None)``: a
    TestClient logged in as a new account of that role (``.csrf`` is its session token,
    ``.submit(url, data)`` posts a form with it)."""
    return account_maker(web_stack, web_app)


@pytest.fixture
def anonymous(web_app: FastAPI) -> WebClient:
    return WebClient(web_app)
