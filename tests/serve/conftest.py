"""Fixtures: a PostgreSQL schema, a data dir with the tiny knowledge base indexed (and the
warm embedder and tokenizer that indexed it), the fake Bot API server, and a
:class:`Cluster` of real worker processes (stopped afterwards)."""

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
def parts() -> Parts:
    return Parts.warm()


@pytest.fixture(scope="module")
def prebuilt_data_dir(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    """A data dir holding the tiny knowledge base's index and embedding cache."""
    return build_tiny_index(tmp_path_factory.mktemp("serve-index"), parts)


@pytest.fixture(scope="module")
def serve_dirs(
    tmp_path_factory: pytest.TempPathFactory, prebuilt_data_dir: Path
) -> tuple[Path, Path]:
    """A data dir with the tiny knowledge base indexed by the real default embedder."""
    return fresh_dirs(tmp_path_factory.mktemp("serve"), prebuilt_data_dir)


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
