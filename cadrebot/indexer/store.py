"""The on-disk index: versioned directories, swapped in atomically.

Layout under ``<data dir>/index``::

    CURRENT                 name of the version readers use (replaced atomically)
    v20261122T073000-ab12/  one complete, immutable index version
        manifest.json       embedder, documents (hash + metadata), chunk count, FAISS kind
        chunks.jsonl        one chunk a line, in vector order
        vectors.faiss       FAISS index over the chunk vectors (inner product)
        bm25/               bm25s index over the jieba tokens of the same chunks

A build writes a hidden ``.building-*`` directory, renames it into place and only then points
``CURRENT`` at it, so a reader never sees a half-written index and an interrupted build leaves
the previous version serving.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from cadrebot.indexer.embedders import Vectors
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
CURRENT_FILE = "CURRENT"


def set_faiss_threads(count: int) -> None:
    """How many OpenMP threads FAISS uses for one search (its default: one per core)."""
    faiss.omp_set_num_threads(max(1, count))


class IndexNotFoundError(RuntimeError):
    """No index has been built in this data dir yet."""


class IndexMismatchError(RuntimeError):
    """The index was built with another embedder than the one configured now."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    data = asdict(chunk)
    data["section"] = list(chunk.section)
    data["kind"] = str(chunk.kind)
    return data


def chunk_from_json(data: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=data["chunk_id"],
        doc_id=data["doc_id"],
        position=int(data["position"]),
        kind=ChunkKind(data["kind"]),
        section=tuple(data["section"]),
        text=data["text"],
        responsible=data.get("responsible", ""),
        extra=dict(data.get("extra", {})),
    )


@dataclass
class IndexVersion:
    """One loaded, read-only index version."""

    name: str
    path: Path
    manifest: dict[str, Any]
    documents: dict[str, DocumentMeta]
    chunks: list[Chunk]
    vectors: faiss.Index
    bm25: bm25s.BM25
    # Per chunk: (tokens of its title and heading path, tokens of each sentence), each a
    # space-joined string. Segmenting at build time keeps jieba off the query path.
    tokens: list[tuple[str, list[str]]]

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)


def ivf_params(n: int) -> tuple[int, int]:
    """(lists, lists probed per query) for an IVF index over ``n`` vectors.

    About 4·√n lists and 1/16 of them probed: at 100k synthetic chunks that measured
    recall@10 0.985 against exact search at p95 5 ms (bench/search_scale.py). HNSW with
    M=32 reached only 0.53–0.59 there, because policy texts come in near-copies (county
    notices repeat provincial ones) and its greedy graph walk stops among them.
    """
    lists = max(1, min(n // 39, 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))))
    return lists, max(1, min(lists, max(16, lists // 16)))


def build_faiss_index(vectors: Vectors, approx_min_chunks: int) -> tuple[faiss.Index, str]:
    """Exact inner product for small stores; IVF (approximate) from ``approx_min_chunks`` on."""
    n, dim = vectors.shape if vectors.size else (0, vectors.shape[-1])
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    index: faiss.Index
    if n and n >= approx_min_chunks:
        lists, probe = ivf_params(n)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
        # k-means on a fixed-seed sample: same input, same index.
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, 64 * lists), replace=False))
        index.train(data[sample])
        index.nprobe = probe
        index.make_direct_map()  # lets reconstruct() score BM25-only candidates
        kind = "ivf"
    else:
        index = faiss.IndexFlatIP(dim)
        kind = "flat"
    if n:
        index.add(data)
    return index, kind


def build_bm25(token_lists: Sequence[list[str]]) -> bm25s.BM25:
    bm25 = bm25s.BM25()
    # An empty document would make bm25s drop the row and shift ids; keep one placeholder token.
    corpus = [tokens or ["∅"] for tokens in token_lists]
    bm25.index(corpus, show_progress=False)
    return bm25


class IndexStore:
    """Reads and writes index versions under one directory."""

    def __init__(self, root: Path, keep_versions: int = 3) -> None:
        self.root = root
        self.keep_versions = keep_versions

    def current_name(self) -> str | None:
        current = self.root / CURRENT_FILE
        if not current.exists():
            return None
        name = current.read_text(encoding="utf-8").strip()
        return name if name and (self.root / name / "manifest.json").exists() else None

    def current_manifest(self) -> dict[str, Any] | None:
        name = self.current_name()
        if name is None:
            return None
        data: dict[str, Any] = json.loads((self.root / name / "manifest.json").read_text("utf-8"))
        return data

    def write_version(
        self,
        manifest: dict[str, Any],
        chunks: Sequence[Chunk],
        vectors: faiss.Index,
        bm25: bm25s.BM25,
        tokens: Sequence[tuple[str, list[str]]],
    ) -> str:
        """Write a complete version, then make it current. Returns its name."""
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"v{stamp}-{uuid.uuid4().hex[:6]}"
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=self.root))
        try:
            with (building / "chunks.jsonl").open("w", encoding="utf-8") as fh:
                for chunk, (where, sentences) in zip(chunks, tokens, strict=True):
                    data = chunk_to_json(chunk)
                    data["tokens"] = {"where": where, "sentences": sentences}
                    fh.write(json.dumps(data, ensure_ascii=False) + "\n")
            faiss.write_index(vectors, str(building / "vectors.faiss"))
            bm25.save(str(building / "bm25"), show_progress=False)
            manifest = {**manifest, "version": name, "format": INDEX_FORMAT}
            (building / "manifest.json").write_text(
                json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
            )
            for file in building.rglob("*"):
                if file.is_file():
                    with file.open("rb") as fh:
                        os.fsync(fh.fileno())
            os.rename(building, self.root / name)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        _write_file_atomic(self.root / CURRENT_FILE, name + "\n")
        self.prune()
        return name

    def load(self, name: str | None = None) -> IndexVersion:
        name = name or self.current_name()
        if name is None:
            raise IndexNotFoundError(f"No index in {self.root}. Build it with: cadrebot index")
        path = self.root / name
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text("utf-8"))
        chunks: list[Chunk] = []
        tokens: list[tuple[str, list[str]]] = []
        with (path / "chunks.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                data = json.loads(line)
                chunks.append(chunk_from_json(data))
                tok = data.get("tokens", {})
                tokens.append((tok.get("where", ""), list(tok.get("sentences", []))))
        documents = {
            doc_id: DocumentMeta(**entry["meta"]) for doc_id, entry in manifest["documents"].items()
        }
        vectors = faiss.read_index(str(path / "vectors.faiss"))
        if manifest.get("faiss") == "ivf":
            ivf = faiss.extract_index_ivf(vectors)
            ivf.nprobe = ivf_params(ivf.ntotal)[1]
            ivf.make_direct_map()
        bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False, verbosity=0)
        return IndexVersion(name, path, manifest, documents, chunks, vectors, bm25, tokens)

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith("v"))

    def prune(self) -> None:
        """Drop old versions (never the current one) and leftovers of interrupted builds."""
        current = self.current_name()
        old = [v for v in self.versions() if v != current]
        for name in old[: max(0, len(old) - (self.keep_versions - 1))]:
            shutil.rmtree(self.root / name, ignore_errors=True)
        for leftover in self.root.glob(".building-*"):
            # Another process may be building right now; only sweep directories an hour old.
            age = datetime.now(UTC).timestamp() - leftover.stat().st_mtime
            if age > 3600:
                shutil.rmtree(leftover, ignore_errors=True)


class EmbeddingCache:
    """Passage vectors keyed by the hash of the exact text embedded, one file per model.

    Rebuilding with nothing changed embeds nothing; a changed document costs its new chunks.
    """

    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self.dim = dim
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS vec (hash TEXT PRIMARY KEY, v BLOB)")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def get_many(self, hashes: Iterable[str]) -> dict[str, Vectors]:
        assert self._conn is not None, "call open() first"
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, Vectors] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT hash, v FROM vec WHERE hash IN ({marks})", part)
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == self.dim:
                    found[key] = vec
        return found

    def put_many(self, items: dict[str, Vectors]) -> None:
        assert self._conn is not None, "call open() first"
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vec (hash, v) VALUES (?, ?)",
                [(k, np.asarray(v, np.float32).tobytes()) for k, v in items.items()],
            )
