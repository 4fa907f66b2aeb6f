"""Build the index from the knowledge folder, re-embedding only what changed."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadrebot.handlers.ports import CURATED_DOC_ID
from cadrebot.indexer.catalog import load_document, read_catalog
from cadrebot.indexer.chunking import chunk_document
from cadrebot.indexer.corrections import corrections_document, curated_chunks, is_curated
from cadrebot.indexer.embedders import Embedder, Vectors, cache_key, describe, manifest_matches
from cadrebot.indexer.loaders import SUPPORTED_SUFFIXES
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.store import (
    EmbeddingCache,
    IndexCorruptError,
    IndexStore,
    build_bm25,
    build_faiss_index,
    has_checksums,
)
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.indexer.types import Chunk, Document, DocumentMeta
from cadrebot.settings import Settings

log = logging.getLogger(__name__)
# bm25s logs every index build at DEBUG through its own handler; keep it quiet.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# Bump when chunking or index-text composition changes, so existing indexes get rebuilt.
PIPELINE_VERSION = "4"

ProgressCallback = Callable[[int, int], None]


def index_text(meta: DocumentMeta, chunk: Chunk) -> str:
    """What is embedded and BM25-indexed for a chunk: where it stands, then what it says.

    The title and heading path make "信丰县 …" or "产业帮扶 …" questions match the right
    document and section even when the passage itself never names them.
    """
    return f"{location(meta, chunk)}\n{chunk.text}"


def location(meta: DocumentMeta, chunk: Chunk) -> str:
    """Title › headings; an admin's correction stands under its question, as a passage
    stands under its headings (so the question finds it)."""
    parts = [meta.title, *chunk.section]
    if is_curated(chunk):
        parts.append(chunk.extra.get("question", ""))
    return " › ".join(p for p in parts if p)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class BuildReport:
    version: str | None
    documents: int = 0
    chunks: int = 0
    embedded: int = 0  # passages embedded by the model in this build
    reused: int = 0  # passages taken from the embedding cache
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    up_to_date: bool = False
    # The current version did not verify and this build replaced it: what was wrong.
    repaired: IndexCorruptError | None = None


def discover_documents(knowledge_dir: Path) -> list[Path]:
    if not knowledge_dir.is_dir():
        raise FileNotFoundError(
            f"知识库目录不存在：{knowledge_dir}（请设置 CADREBOT_KNOWLEDGE_DIR）"
        )
    return sorted(
        p
        for p in knowledge_dir.iterdir()
        if p.is_file()
        and p.suffix.lower() in SUPPORTED_SUFFIXES
        and not p.name.startswith(".")
        and p.name.lower() != "readme.md"
    )


class IndexBuilder:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        tokenizer: PolicyTokenizer | None = None,
    ) -> None:
        self._settings = settings
        self._embedder = embedder
        self._tokenizer = tokenizer or PolicyTokenizer()
        self.store = IndexStore(settings.index_dir)

    def load_documents(self) -> list[Document]:
        catalog = read_catalog(self._settings.catalog_path)
        knowledge_dir = self._settings.knowledge_dir
        documents = [load_document(p, catalog) for p in discover_documents(knowledge_dir)]
        # The admins' corrections, a curated document of their own (indexer/corrections.py).
        curated = corrections_document(knowledge_dir)
        return documents if curated is None else [*documents, curated]

    def build(
        self, *, rebuild: bool = False, progress: ProgressCallback | None = None
    ) -> BuildReport:
        started = time.perf_counter()
        documents = self.load_documents()
        previous, damage = self._current_state()
        # For the report only: what a damaged version's manifest still says, if it parses.
        listed = previous if previous is not None else self.store.current_manifest()
        old_docs: dict[str, str] = {}
        try:
            if listed is not None:
                old_docs = {k: str(v["hash"]) for k, v in listed.get("documents", {}).items()}
        except (AttributeError, KeyError, TypeError):
            old_docs = {}
        new_docs = {d.meta.doc_id: d.content_hash for d in documents}
        report = BuildReport(version=None, documents=len(documents), repaired=damage)
        report.added = sorted(set(new_docs) - set(old_docs))
        report.removed = sorted(set(old_docs) - set(new_docs))
        report.changed = sorted(
            k for k in set(new_docs) & set(old_docs) if new_docs[k] != old_docs[k]
        )
        same_pipeline = (
            previous is not None
            and previous.get("pipeline") == PIPELINE_VERSION
            and manifest_matches(previous, self._embedder)
            # A version from before checksums is rebuilt once, to record them.
            and has_checksums(previous)
        )
        if not rebuild and same_pipeline and new_docs == old_docs:
            assert previous is not None
            report.version = previous["version"]
            report.chunks = int(previous.get("chunk_count", 0))
            report.reused = report.chunks
            report.up_to_date = True
            report.seconds = time.perf_counter() - started
            return report

        self._tokenizer.warm_up()
        chunks: list[Chunk] = []
        texts: list[str] = []
        metas = {d.meta.doc_id: d.meta for d in documents}
        for doc in documents:
            split = curated_chunks if doc.meta.doc_id == CURATED_DOC_ID else chunk_document
            for chunk in split(doc):
                chunks.append(chunk)
                texts.append(index_text(doc.meta, chunk))
        vectors, embedded = self._embed_with_cache(texts, progress)
        faiss_index, faiss_kind = build_faiss_index(vectors, self._settings.approx_index_min_chunks)
        bm25 = build_bm25([self._tokenizer.tokens(t) for t in texts])
        tokens = [self.sentence_tokens(metas[c.doc_id], c) for c in chunks]
        manifest = {
            "pipeline": PIPELINE_VERSION,
            "embedder": describe(self._embedder),
            "faiss": faiss_kind,
            "chunk_count": len(chunks),
            "documents": {
                d.meta.doc_id: {
                    "hash": d.content_hash,
                    "meta": asdict(d.meta),
                    "chunks": sum(1 for c in chunks if c.doc_id == d.meta.doc_id),
                }
                for d in documents
            },
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        report.version = self.store.write_version(manifest, chunks, faiss_index, bm25, tokens)
        report.chunks = len(chunks)
        report.embedded = embedded
        report.reused = len(chunks) - embedded
        report.seconds = time.perf_counter() - started
        log.info(
            "index %s built: %d documents, %d chunks, %d embedded, %d reused, %.1fs",
            report.version,
            report.documents,
            report.chunks,
            report.embedded,
            report.reused,
            report.seconds,
        )
        return report

    def _current_state(self) -> tuple[dict[str, Any] | None, IndexCorruptError | None]:
        """(the current version's manifest if it verifies, what is wrong with it if not)."""
        name = self.store.pointed_name()
        if name is None:
            return None, None
        try:
            manifest = self.store.verify(name)
        except IndexCorruptError as error:
            log.warning("%s; rebuilding it from the knowledge folder", error)
            return None, error
        if not has_checksums(manifest):
            log.info("index %s was built before checksums; rebuilding it to record them", name)
        return manifest, None

    def sentence_tokens(self, meta: DocumentMeta, chunk: Chunk) -> tuple[str, list[str]]:
        place = f"{meta.title} {chunk.section_label()}"
        if is_curated(chunk):
            place += " " + chunk.extra.get("question", "")
        where = " ".join(self._tokenizer.tokens(place))
        return where, [" ".join(self._tokenizer.tokens(s)) for s in split_sentences(chunk.text)]

    def _embed_with_cache(
        self, texts: list[str], progress: ProgressCallback | None
    ) -> tuple[Vectors, int]:
        dim = self._embedder.dim
        cache = EmbeddingCache(
            self._settings.embedding_cache_dir / f"{cache_key(self._embedder)}.sqlite3", dim
        )
        try:
            hashes = [text_hash(t) for t in texts]
            try:
                cache.open()
                known = cache.get_many(hashes)
            except sqlite3.DatabaseError as error:
                aside = cache.reset()
                log.warning(
                    "embedding cache %s is unreadable (%s); set aside as %s, embedding anew",
                    cache.path,
                    error,
                    aside.name,
                )
                known = {}
            missing = [i for i, h in enumerate(hashes) if h not in known]
            batch = 16
            done = 0
            if progress:
                progress(0, len(missing))
            for start in range(0, len(missing), batch):
                ids = missing[start : start + batch]
                vecs = self._embedder.embed_passages([texts[i] for i in ids])
                fresh = {hashes[i]: vecs[j] for j, i in enumerate(ids)}
                cache.put_many(fresh)
                known.update(fresh)
                done += len(ids)
                if progress:
                    progress(done, len(missing))
            matrix = (
                np.vstack([known[h] for h in hashes]).astype(np.float32)
                if hashes
                else np.zeros((0, dim), dtype=np.float32)
            )
            return matrix, len(missing)
        finally:
            cache.close()
