"""The cadrebot command: JSON shapes other tools rely on, settings honoured, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadrebot.bot.cli import main
from tests.support.paths import DEV_SET, REPO_KNOWLEDGE

CITATION_KEYS = {"doc_title", "doc_number", "section", "text", "score"}


@pytest.fixture
def cli_env(full_index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(full_index_dir))
    monkeypatch.setenv("CADREBOT_KNOWLEDGE_DIR", str(REPO_KNOWLEDGE))
    monkeypatch.delenv("CADREBOT_EMBEDDER", raising=False)
    return full_index_dir


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_ask_json_shape(cli_env: Path, capsys: pytest.CaptureFixture[str]):
    data = run_json(capsys, "ask", "监测对象识别认定要多少天？", "--json")
    assert isinstance(data, dict)
    assert {"found", "answer", "citations", "latency_ms"} <= set(data)
    assert data["found"] is True
    assert "15天" in data["answer"]
    assert isinstance(data["latency_ms"], float)
    assert data["citations"], "a found answer cites its source"
    for c in data["citations"]:
        assert set(c) >= CITATION_KEYS
        assert isinstance(c["score"], float)
    assert data["citations"][0]["doc_number"] == "赣党农字〔2023〕2号"


@pytest.mark.slow
def test_ask_json_not_found(cli_env: Path, capsys: pytest.CaptureFixture[str]):
    data = run_json(capsys, "ask", "北京低保标准是多少？", "--json")
    assert isinstance(data, dict)
    assert data["found"] is False
    assert "没有找到" in data["answer"]


@pytest.mark.slow
def test_search_json_shape(cli_env: Path, capsys: pytest.CaptureFixture[str]):
    data = run_json(capsys, "search", "公益性岗位", "--top-k", "3", "--json")
    assert isinstance(data, list) and len(data) == 3
    for hit in data:
        assert set(hit) == CITATION_KEYS
    scores = [h["score"] for h in data]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_eval_json_shape(cli_env: Path, capsys: pytest.CaptureFixture[str]):
    data = run_json(capsys, "eval", str(DEV_SET), "--json")
    assert isinstance(data, dict)
    assert set(data) == {
        "n", "recall@1", "recall@3", "recall@5", "mrr", "answer_accuracy",
        "found_rate", "negative_rejection", "p50_ms", "p95_ms",
    }  # fmt: skip
    assert data["n"] == 28


@pytest.mark.slow
def test_index_reports_up_to_date(cli_env: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["index"]) == 0
    assert "已是最新" in capsys.readouterr().out


def test_two_data_dirs_never_interfere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "only.txt").write_text("某县工作要点\n\n1. 雨露计划每生补助1500元。", encoding="utf-8")
    monkeypatch.setenv("CADREBOT_KNOWLEDGE_DIR", str(kb))
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path / "one"))
    assert main(["index"]) == 0
    assert "1 份文件" in capsys.readouterr().out
    assert (tmp_path / "one" / "index" / "CURRENT").exists()
    assert not (tmp_path / "two").exists()
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path / "two"))
    data = run_json(capsys, "search", "雨露计划", "--json")
    assert isinstance(data, list) and "1500元" in data[0]["text"]
    assert (tmp_path / "two" / "index" / "CURRENT").exists()


def test_bad_embedder_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CADREBOT_EMBEDDER", "sentence-transformers:/nonexistent/model")
    assert main(["ask", "测试"]) == 2
    assert "CADREBOT_EMBEDDER" in capsys.readouterr().err


def test_eval_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["eval", str(tmp_path / "missing.jsonl")]) == 2
    assert "找不到" in capsys.readouterr().err
