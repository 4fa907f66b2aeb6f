"""Fixtures: a PostgreSQL schema, a data dir with the tiny knowledge base indexed, the fake
Bot API server, and a :class:`Cluster` of real worker processes (stopped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cadrebot.storage import upgrade
from tests.support.database import postgres_base_url, private_schema
from tests.support.knowledge import Parts, build_tiny_index, fresh_dirs

from .cluster import Cluster, FakeServerThread, worker_env


@pytest.fixture(scope="module")
def pg_schema_url() -> Iterator[str]:
    with private_schema(postgres_base_url(), "cadrebot_serve") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def serve_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A data dir with the tiny knowledge base indexed by the real default embedder."""
    root = tmp_path_factory.mktemp("serve")
    prebuilt = build_tiny_index(root / "index", Parts.warm())
    return fresh_dirs(root, prebuilt)


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
