"""The synthetic corpora the benchmarks grow from the real knowledge base."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench.index_build import real_paragraphs, synthetic_document
from bench.search_scale import percentiles
from bench.synthetic import (
    REGIONS,
    RealChunk,
    RealCorpus,
    plan,
    synthetic_chunks,
    synthetic_meta,
    synthetic_vectors,
)
from cadrebot.indexer.catalog import load_document
from cadrebot.indexer.chunking import chunk_document
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

META = DocumentMeta(doc_id="doc", title="信丰县2024年工作要点", region="赣州市信丰县", level="县")


def _corpus(dim: int = 16) -> RealCorpus:
    rng = np.random.default_rng(0)
    texts = [
        ("监测对象识别认定一般不超过15天。", "年内完成2次集中排查；"),
        ("每村每年投入100万元衔接资金。",),
        ("公益性岗位吸纳16万人就业。", "按月发放补贴。"),
    ]
    chunks = [
        RealChunk(
            meta=META,
            chunk=Chunk(f"c{i}", "doc", i, ChunkKind.ITEM, ("一、重点任务",), "".join(s)),
            text="".join(s),
            sentences=s,
            head_tokens=("信丰县", "工作要点"),
            sentence_tokens=tuple(tuple(split_words(x)) for x in s),
        )
        for i, s in enumerate(texts)
    ]
    vectors = rng.standard_normal((len(chunks), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return RealCorpus(chunks, vectors, ["问题"], vectors[:1], [["问题"]])


def split_words(sentence: str) -> list[str]:
    # Digits as their own tokens, the way jieba cuts "15天" into "15" and "天".
    return re.findall(r"\d+|[^\d。；]+", sentence)


def test_plan_is_deterministic_and_starts_with_the_real_chunks() -> None:
    corpus = _corpus()
    a, b = plan(corpus, 50, seed=3), plan(corpus, 50, seed=3)
    assert np.array_equal(a.base, b.base) and np.array_equal(a.shift, b.shift)
    assert list(a.base[:3]) == [0, 1, 2] and list(a.shift[:3]) == [0, 0, 0]
    assert (a.shift[3:] > 0).all()


def test_synthetic_vectors_stay_near_their_source() -> None:
    corpus = _corpus(dim=384)
    p = plan(corpus, 2000)
    vectors = np.vstack(list(synthetic_vectors(corpus, p, batch=700)))
    assert vectors.shape == (2000, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[:3], corpus.vectors, atol=1e-6)  # the real ones unchanged
    to_source = np.einsum("ij,ij->i", vectors, corpus.vectors[p.base])
    # Closer to the source chunk than to any other real chunk, yet not a copy of it.
    assert to_source[3:].max() < 0.999
    nearest = np.argmax(vectors @ corpus.vectors.T, axis=1)
    assert (nearest == p.base).mean() > 0.95


def test_synthetic_texts_and_tokens_vary_together() -> None:
    corpus = _corpus()
    p = plan(corpus, 40)
    chunks = list(synthetic_chunks(corpus, p))
    assert [c.chunk.text for c in chunks[:3]] == [c.chunk.text for c in corpus.chunks]
    for i, syn in enumerate(chunks[3:], 3):
        shift = int(p.shift[i])
        region = REGIONS[int(p.region[i])]
        assert syn.chunk.section[0].startswith(region)
        assert syn.head_tokens[0] == region
        # The searcher re-splits the text: sentence boundaries and token lists must agree.
        assert len(split_sentences(syn.chunk.text)) == len(syn.sentence_tokens)
        base = corpus.chunks[int(p.base[i])]
        numbers = [t for t in base.sentence_tokens[0] if t.isdigit()]
        shifted = [t for t in syn.sentence_tokens[0] if t.isdigit()]
        assert shifted == [str(int(n) + shift) for n in numbers]
        for n in shifted:
            assert n in syn.chunk.text
        meta = synthetic_meta(corpus, syn.chunk.doc_id)
        assert meta.region == region and meta.title.startswith(region)


def test_percentiles() -> None:
    stats = percentiles([float(x) for x in range(1, 101)])
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p95_ms"] == pytest.approx(95.05)
    assert stats["samples"] == 100


def test_index_build_documents_parse_as_notices(tmp_path: Path) -> None:
    paragraphs = real_paragraphs()
    assert paragraphs and all("|" not in p for p in paragraphs)
    path = tmp_path / "notice-00007.txt"
    path.write_text(synthetic_document(7, paragraphs, np.random.default_rng(1)), encoding="utf-8")
    doc = load_document(path, {})
    assert doc.meta.title.endswith("（第8批）")
    assert doc.meta.region == REGIONS[7]
    chunks = chunk_document(doc)
    assert len(chunks) >= 3
    assert all("|" not in c.text for c in chunks)
