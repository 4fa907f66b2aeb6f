"""Fixtures for the knowledge core: real documents, the real default embedder, real indexes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cadrebot.indexer.structured import Structure, build_structure
from tests.support.chunks import Corpus, seed_corpus
from tests.support.knowledge import CountingEmbedder
from tests.support.paths import REPO_KNOWLEDGE
from tests.support.settings import make_settings


@pytest.fixture(scope="session")
def shared_embedder() -> CountingEmbedder:
    emb = CountingEmbedder()
    emb.warm_up()
    return emb


@pytest.fixture
def embedder(shared_embedder: CountingEmbedder) -> CountingEmbedder:
    shared_embedder.embedded.clear()
    return shared_embedder


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "knowledge"
    shutil.copytree(REPO_KNOWLEDGE, dest)
    return dest


@pytest.fixture(scope="session")
def full_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the whole knowledge base indexed by the real default model, built once."""
    from cadrebot.bot.wiring import build_knowledge

    data_dir = tmp_path_factory.mktemp("full-index")
    settings = make_settings(data_dir, REPO_KNOWLEDGE)
    build_knowledge(settings).builder.build()
    return data_dir


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The seed documents' chunks (real chunker, no embedding)."""
    return seed_corpus()


@pytest.fixture(scope="session")
def structure(corpus: Corpus) -> Structure:
    return build_structure(*corpus)
