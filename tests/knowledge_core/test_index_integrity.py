"""A damaged index never takes the bot down: versions are verified, bad ones skipped, repaired.

Every test works on its own copy of a data dir holding two versions of the tiny knowledge
base (``old``: the one document; ``new``: plus a short second one), indexed once per module
by the shared warm embedder. The CLI runs through :func:`cadrebot.bot.cli.main` on that
embedder (``build_knowledge`` is pointed at it: loading the model once per command is slow).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest

from cadrebot.bot import cli
from cadrebot.bot.cli import main
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.indexer import store as store_module
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.store import IndexCorruptError, IndexStore
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.settings import Settings
from tests.support.knowledge import CountingEmbedder, Parts, knowledge_for
from tests.support.paths import TINY_KNOWLEDGE
from tests.support.settings import make_settings

QUESTION = "监测对象识别认定要多少天？"
EXTRA_DOC = "某县雨露计划实施细则\n\n1. 雨露计划。每名学生每学期补助1500元。"


@dataclass(frozen=True)
class Prebuilt:
    data_dir: Path
    knowledge_dir: Path
    old: str  # the first version (tiny knowledge base)
    new: str  # the current version (tiny knowledge base plus EXTRA_DOC)


@dataclass(frozen=True)
class Env:
    data_dir: Path
    knowledge_dir: Path
    old: str
    new: str

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    def settings(self) -> Settings:
        return make_settings(self.data_dir, self.knowledge_dir)


@pytest.fixture(scope="module")
def parts(shared_embedder: CountingEmbedder) -> Parts:
    tokenizer = PolicyTokenizer()
    tokenizer.warm_up()
    return Parts(shared_embedder, tokenizer)


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Prebuilt:
    root = tmp_path_factory.mktemp("integrity")
    knowledge_dir = root / "knowledge"
    shutil.copytree(TINY_KNOWLEDGE, knowledge_dir)
    builder = knowledge_for(make_settings(root / "var", knowledge_dir), parts).builder
    old = builder.build().version
    (knowledge_dir / "extra.txt").write_text(EXTRA_DOC, encoding="utf-8")
    new = builder.build().version
    assert old and new and old != new
    return Prebuilt(root / "var", knowledge_dir, old, new)


@pytest.fixture
def env(
    tmp_path: Path,
    prebuilt: Prebuilt,
    parts: Parts,
    embedder: CountingEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    data_dir = tmp_path / "var"
    knowledge_dir = tmp_path / "knowledge"
    shutil.copytree(prebuilt.data_dir, data_dir)
    shutil.copytree(prebuilt.knowledge_dir, knowledge_dir)
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CADREBOT_KNOWLEDGE_DIR", str(knowledge_dir))
    monkeypatch.delenv("CADREBOT_EMBEDDER", raising=False)
    monkeypatch.delenv("CADREBOT_DATABASE_URL", raising=False)
    monkeypatch.setattr(cli, "build_knowledge", lambda settings: knowledge_for(settings, parts))
    return Env(data_dir, knowledge_dir, prebuilt.old, prebuilt.new)


def truncate(path: Path, keep: int = 100) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: min(keep, len(data) // 2)])


def flip_byte(path: Path) -> None:
    """Same size, one byte different: only a checksum notices."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def warnings_naming(caplog: pytest.LogCaptureFixture, *names: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and all(n in r.getMessage() for n in names)
    ]


def ask(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["ask", QUESTION, "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


# ---------------------------------------------------------------------------- ask / chat


def test_truncated_vectors_ask_answers_from_previous_version(
    env: Env, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    truncate(env.index_dir / env.new / "vectors.faiss")
    data = ask(capsys)
    assert data["found"] is True
    assert "15天" in str(data["answer"])
    assert len(warnings_naming(caplog, env.new, env.old)) == 1


def test_truncated_vectors_without_previous_version_says_to_run_index(
    env: Env, capsys: pytest.CaptureFixture[str]
):
    shutil.rmtree(env.index_dir / env.old)
    truncate(env.index_dir / env.new / "vectors.faiss")
    assert main(["ask", QUESTION]) == 2
    captured = capsys.readouterr()
    assert "cadrebot index" in captured.err
    assert "索引" in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_chat_with_no_usable_index_is_a_clear_error(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    shutil.rmtree(env.index_dir / env.old)
    truncate(env.index_dir / env.new / "manifest.json")
    # The masking filter would stay on the test's log handlers: not what is tested here.
    monkeypatch.setattr(cli, "install_sensitive_data_filter", lambda *args: None)
    assert main(["chat", "--user", "tester"]) == 2
    assert "cadrebot index" in capsys.readouterr().err


def test_same_size_corruption_is_caught_by_checksum(
    env: Env, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    flip_byte(env.index_dir / env.new / "chunks.jsonl")
    assert "15天" in str(ask(capsys)["answer"])
    assert warnings_naming(caplog, env.new, env.old)


def test_tampered_manifest_is_caught(env: Env):
    manifest = env.index_dir / env.new / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["chunk_count"] = 999  # still valid JSON; only its checksum says it changed
    manifest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest"):
        IndexStore(env.index_dir).verify(env.new)


# ---------------------------------------------------------------------------- the searcher


def test_corrupt_newest_version_falls_back_to_previous_good_one(
    env: Env, embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
):
    truncate(env.index_dir / env.new / "vectors.faiss")
    searcher = HybridSearcher(env.settings(), embedder)
    searcher.load()
    assert searcher.loaded_version == env.old
    assert "15天" in searcher.search(QUESTION, top_k=1)[0].chunk.text
    lines = warnings_naming(caplog, env.new, env.old)
    assert len(lines) == 1


def test_running_searcher_keeps_serving_when_a_corrupt_version_is_published(
    env: Env, embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
):
    store = IndexStore(env.index_dir)
    (env.index_dir / "CURRENT").write_text(env.old + "\n", encoding="utf-8")
    searcher = HybridSearcher(env.settings(), embedder)
    searcher.load()
    assert searcher.loaded_version == env.old
    # The newer version is published, but its vectors are damaged.
    truncate(env.index_dir / env.new / "vectors.faiss")
    (env.index_dir / "CURRENT").write_text(env.new + "\n", encoding="utf-8")
    assert store.current_name() == env.new
    assert searcher.reload_if_changed() is False
    assert searcher.loaded_version == env.old
    assert len(warnings_naming(caplog, env.new)) == 1
    # Polling again neither reloads nor logs again.
    assert searcher.reload_if_changed() is False
    assert len(warnings_naming(caplog, env.new)) == 1
    assert "15天" in searcher.search(QUESTION, top_k=1)[0].chunk.text


def test_index_without_checksums_still_loads(env: Env, embedder: CountingEmbedder):
    """Versions written before checksums existed load (the manifest has no file list)."""
    version = env.index_dir / env.new
    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    manifest.pop("files", None)
    manifest["format"] = 1
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    (version / "manifest.sha256").unlink(missing_ok=True)
    searcher = HybridSearcher(env.settings(), embedder)
    searcher.load()
    assert searcher.loaded_version == env.new


def test_old_index_without_checksums_that_fails_to_load_falls_back(
    env: Env, embedder: CountingEmbedder, caplog: pytest.LogCaptureFixture
):
    version = env.index_dir / env.new
    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    manifest.pop("files", None)
    manifest["format"] = 1
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    (version / "manifest.sha256").unlink(missing_ok=True)
    truncate(version / "vectors.faiss")
    searcher = HybridSearcher(env.settings(), embedder)
    searcher.load()
    assert searcher.loaded_version == env.old
    assert warnings_naming(caplog, env.new, env.old)


# ---------------------------------------------------------------------------- cadrebot index


def test_index_repairs_corruption_then_says_up_to_date(
    env: Env, embedder: CountingEmbedder, capsys: pytest.CaptureFixture[str]
):
    assert main(["index"]) == 0
    assert "已是最新" in capsys.readouterr().out
    truncate(env.index_dir / env.new / "vectors.faiss")
    assert main(["index"]) == 0
    out = capsys.readouterr().out
    assert "已是最新" not in out
    assert "修复" in out and env.new in out
    assert embedder.embedded == [], "every vector came from the embedding cache"
    repaired = IndexStore(env.index_dir).current_name()
    assert repaired not in (None, env.new, env.old)
    IndexStore(env.index_dir).verify(str(repaired))
    assert main(["index"]) == 0
    assert "已是最新" in capsys.readouterr().out
    assert "15天" in str(ask(capsys)["answer"])


def test_index_upgrades_an_index_without_checksums(env: Env, capsys: pytest.CaptureFixture[str]):
    version = env.index_dir / env.new
    manifest = json.loads((version / "manifest.json").read_text("utf-8"))
    manifest.pop("files", None)
    manifest["format"] = 1
    (version / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), "utf-8")
    (version / "manifest.sha256").unlink(missing_ok=True)
    assert main(["index"]) == 0
    assert "已是最新" not in capsys.readouterr().out
    current = IndexStore(env.index_dir).current_name()
    assert current is not None and current != env.new
    assert "files" in json.loads((env.index_dir / current / "manifest.json").read_text("utf-8"))


def test_truncated_manifest_rebuild_succeeds(
    env: Env, embedder: CountingEmbedder, capsys: pytest.CaptureFixture[str]
):
    truncate(env.index_dir / env.new / "manifest.json")
    assert main(["index", "--rebuild"]) == 0
    capsys.readouterr()
    assert embedder.embedded == []
    assert "15天" in str(ask(capsys)["answer"])


def test_truncated_manifest_plain_index_repairs(env: Env, capsys: pytest.CaptureFixture[str]):
    truncate(env.index_dir / env.new / "manifest.json")
    assert main(["index"]) == 0
    assert "已是最新" not in capsys.readouterr().out
    assert main(["index"]) == 0
    assert "已是最新" in capsys.readouterr().out


@pytest.mark.parametrize("current", ["missing", "garbage", "dangling"])
def test_rebuild_works_whatever_state_the_old_files_are_in(
    env: Env, capsys: pytest.CaptureFixture[str], current: str
):
    root = env.index_dir
    truncate(root / env.new / "manifest.json")
    (root / env.old / "manifest.sha256").write_bytes(b"\x00\xff garbage")
    (root / env.old / "bm25" / "junk.bin").write_bytes(b"\x00" * 10)
    (root / "v99999999T999999-zzzzzz").mkdir()
    (root / "v99999999T999999-zzzzzz" / "manifest.json").write_bytes(b"\xff\xfe{")
    (root / "vgarbage.txt").write_bytes(b"\x00\x01")
    if current == "missing":
        (root / "CURRENT").unlink()
    elif current == "garbage":
        (root / "CURRENT").write_bytes(b"\xff\x00../../etc\n")
    else:
        (root / "CURRENT").write_text("v20000101T000000000000-abcdef\n", encoding="utf-8")
    assert main(["index", "--rebuild"]) == 0
    capsys.readouterr()
    name = IndexStore(root).current_name()
    assert name is not None
    IndexStore(root).verify(name)
    assert "15天" in str(ask(capsys)["answer"])


def test_rebuild_survives_a_corrupt_embedding_cache(
    env: Env, embedder: CountingEmbedder, capsys: pytest.CaptureFixture[str]
):
    for cache in (env.data_dir / "cache" / "embeddings").glob("*.sqlite3"):
        cache.write_bytes(b"this is not a database" * 100)
    assert main(["index", "--rebuild"]) == 0
    assert embedder.embedded, "a corrupt cache is set aside and the passages embedded again"
    capsys.readouterr()
    embedder.embedded.clear()
    assert main(["index", "--rebuild"]) == 0
    assert embedder.embedded == [], "the fresh cache is used"


def test_version_names_survive_the_log_masking_filter(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """The warning names versions; a name must not read as a mobile or ID number to the
    filter that masks those in the logs of `run`, `serve` and `chat`."""

    class AtTwelvePastEight(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> AtTwelvePastEight:
            return cls(2026, 12, 1, 20, 12, 0, 510011, tzinfo=UTC)

    # A name seen masked: v20261201T201200510011-221591 (stamp and suffix read as an ID).
    monkeypatch.setattr(store_module, "datetime", AtTwelvePastEight)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(hex="221591" + "0" * 26))
    assert main(["index", "--rebuild"]) == 0
    name = IndexStore(env.index_dir).current_name()
    assert name is not None and name.startswith("v20261201T201200")
    assert mask_sensitive(name) == name
