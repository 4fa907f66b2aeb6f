"""The seed documents chunked by the real chunker (no embedding), for tests of what is read
off their structure."""

from __future__ import annotations

from pathlib import Path

from cadrebot.indexer.catalog import load_document, read_catalog
from cadrebot.indexer.chunking import chunk_document
from cadrebot.indexer.types import Chunk, DocumentMeta

from .paths import REPO_KNOWLEDGE

FULIANG = "fuliang-2023-seven-actions"
RONGJIANG = "rongjiang-2023-work-points"
XINFENG = "xinfeng-2024-work-points"
PROVINCE_POINTS = "jiangxi-2023-work-points"

Corpus = tuple[list[Chunk], dict[str, DocumentMeta]]
"""The chunks of every seed document, and each document's catalog entry by id."""


def seed_corpus(knowledge: Path = REPO_KNOWLEDGE) -> Corpus:
    catalog = read_catalog(knowledge / "catalog.toml")
    chunks: list[Chunk] = []
    metas: dict[str, DocumentMeta] = {}
    for path in sorted(knowledge.glob("*.txt")):
        doc = load_document(path, catalog)
        metas[doc.meta.doc_id] = doc.meta
        chunks += chunk_document(doc)
    return chunks, metas
