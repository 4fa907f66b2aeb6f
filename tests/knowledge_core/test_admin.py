"""Knowledge-base administration on its ports: the real knowledge folder, a scripted index,
and a unit of work handed in by the caller."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cadrebot.handlers.admin import AdminError, KnowledgeAdmin, RebuildBusy
from cadrebot.handlers.ports import (
    BuildProgress,
    BuildSummary,
    Feedback,
    IndexedDocument,
    IndexHit,
    IndexOverview,
    KbVersion,
    KnowledgeError,
    QuestionStat,
)
from cadrebot.indexer.folder import DocumentFolder, safe_file_name
from cadrebot.indexer.published import overview_of

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=ZONE)
NOTICE = """安远县乡村振兴局文件

安远县2025年脐橙产业奖补实施办法

一、奖补对象
全县脱贫户和监测户发展脐橙产业的，可以申请奖补。
"""


@dataclass
class ScriptedIndex:
    overview_: IndexOverview = field(default_factory=IndexOverview)
    summary: BuildSummary = field(default_factory=lambda: BuildSummary("v2", 2, 10, 3, 7))
    hits: list[IndexHit] = field(default_factory=list)
    failure: str | None = None
    gate: threading.Event | None = None
    builds: int = 0

    def build(self, progress: BuildProgress | None = None) -> BuildSummary:
        self.builds += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.failure:
            raise KnowledgeError(self.failure)
        if progress:
            progress(3, 3)
        return self.summary

    def reload_if_changed(self) -> bool:
        return True

    def overview(self) -> IndexOverview:
        return self.overview_

    def hit_test(self, query: str, top_k: int = 5) -> Sequence[IndexHit]:
        return self.hits[:top_k]


@dataclass
class Versions:
    recorded: list[KbVersion] = field(default_factory=list)

    def record(self, version: KbVersion) -> None:
        self.recorded.append(version)

    def recent(self, limit: int = 5) -> Sequence[KbVersion]:
        return list(reversed(self.recorded))[:limit]


@dataclass
class Exchanges:
    questions: list[QuestionStat] = field(default_factory=list)
    unanswered: list[tuple[str, int]] = field(default_factory=list)

    def questions_since(self, since: datetime) -> Sequence[QuestionStat]:
        return [q for q in self.questions if q.at >= since]

    def top_unanswered(self, since: datetime, limit: int = 5) -> Sequence[tuple[str, int]]:
        return self.unanswered[:limit]


@dataclass
class Office:
    kb_versions: Versions = field(default_factory=Versions)
    exchanges: Exchanges = field(default_factory=Exchanges)
    commits: int = 0

    def __enter__(self) -> Office:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1


class Lock:
    def __init__(self, free: bool) -> None:
        self.free = free
        self.waited: list[float] = []

    @contextmanager
    def hold(self, timeout: float) -> Iterator[bool]:
        self.waited.append(timeout)
        yield self.free


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "catalog.toml").write_text('["a.txt"]\ntitle = "甲文件"\n', "utf-8")
    (knowledge / "a.txt").write_text("甲" * 30, "utf-8")
    (knowledge / "README.md").write_text("说明", "utf-8")
    return knowledge


def make_admin(
    folder: Path, index: ScriptedIndex, office: Office | None = None, **kw: Any
) -> KnowledgeAdmin:
    def factory() -> Office:
        if office is None:
            raise AssertionError("the admin opened a unit of work of its own")
        return office

    return KnowledgeAdmin(
        DocumentFolder(folder, max_upload_bytes=1000),
        index,
        factory,  # type: ignore[arg-type]
        clock=lambda: NOW,
        **kw,
    )


def test_listing_reads_in_the_callers_unit_of_work(folder: Path) -> None:
    (folder / "b.txt").write_text("乙" * 30, "utf-8")
    index = ScriptedIndex(
        IndexOverview(
            "v1",
            datetime(2026, 3, 9, 8, 5, tzinfo=ZONE),
            12,
            (
                IndexedDocument("a.txt", "甲文件", "赣字〔2024〕1号", "0123456789abcdef", 7),
                IndexedDocument("gone.txt", "", "", "ff", 5),
            ),
        )
    )
    office = Office()
    office.kb_versions.record(KbVersion("v1", NOW - timedelta(days=1), 2, 12))
    text = make_admin(folder, index).list_documents(office)  # type: ignore[arg-type]
    assert text.startswith(
        "知识库共 2 份文件；索引版本 v1，共 12 段，索引时间 2026-03-09 08:05。\n"
        "1. 甲文件（赣字〔2024〕1号）\n   文件：a.txt  版本：01234567  段数：7\n"
        "2. b.txt\n   尚未索引（发送 /reload 更新索引）\n"
        "· gone.txt：文件已删除，仍在索引中（发送 /reload 更新索引）\n"
        "最近的索引版本：\nv1 2026-03-09 15:30 2份 12段（使用中）\n"
    )


def test_listing_without_an_index(folder: Path) -> None:
    text = make_admin(folder, ScriptedIndex()).list_documents(Office())  # type: ignore[arg-type]
    assert text.startswith("知识库共 1 份文件；索引版本 （未建立），共 0 段，索引时间 —。")


def test_stats_read_in_the_callers_unit_of_work(folder: Path) -> None:
    office = Office()
    office.exchanges.questions = [
        QuestionStat(NOW - timedelta(hours=1), True, Feedback.UP),
        QuestionStat(NOW - timedelta(hours=2), False, None),
        QuestionStat(NOW - timedelta(days=1), False, Feedback.DOWN),
    ]
    office.exchanges.unanswered = [("养老金每年涨多少？", 2)]
    text = make_admin(folder, ScriptedIndex()).stats(office, days=2)  # type: ignore[arg-type]
    assert text == (
        "近2天问答统计：共 3 个问题，找到答案 1 个（33%）。\n"
        "用户评价：👍 1  👎 1\n每日问题数（找到答案率）：\n03-09：1（0%）\n03-10：2（50%）\n"
        "未找到答案最多的问题：\n1. 养老金每年涨多少？（2次）"
    )


def test_upload_refusals_keep_their_wording(folder: Path, tmp_path: Path) -> None:
    admin = make_admin(folder, ScriptedIndex())
    with pytest.raises(AdminError, match="请以“文件”方式发送文档"):
        admin.check_upload(None, 10)
    with pytest.raises(AdminError, match=r"不支持“\.exe”类型的文件"):
        admin.check_upload("setup.exe", 10)
    with pytest.raises(AdminError, match="系统保留的文件名"):
        admin.check_upload("catalog.toml", 10)
    with pytest.raises(AdminError, match=r"文件太大（0\.0 MB），上限为 0\.0 MB"):
        admin.check_upload("big.txt", 2000)
    with pytest.raises(AdminError, match=r"已有同名文件“a\.txt”.*/kbremove a\.txt"):
        admin.check_upload("a.docx", 10)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", "utf-8")
    with pytest.raises(AdminError, match="几乎没有文字"):
        admin.store_upload("empty.txt", empty)
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(AdminError, match=r"无法读取文件“broken\.docx”"):
        admin.store_upload("broken.docx", broken)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "a.txt", "catalog.toml"]
    assert admin.max_upload_bytes == 1000


def test_upload_adds_a_catalog_entry_and_remove_takes_it_out(folder: Path, tmp_path: Path) -> None:
    admin = make_admin(folder, ScriptedIndex())
    download = tmp_path / "download.bin"
    download.write_text(NOTICE, "utf-8")
    stored = admin.store_upload("anyuan.txt", download)
    assert (stored.file_name, stored.replaced) == ("anyuan.txt", False)
    assert stored.title == "安远县2025年脐橙产业奖补实施办法"
    catalog = tomllib.loads((folder / "catalog.toml").read_text("utf-8"))
    assert catalog["a.txt"]["title"] == "甲文件"
    assert catalog["anyuan.txt"]["title"] == stored.title
    assert admin.store_upload("anyuan.txt", download).replaced

    with pytest.raises(AdminError, match="用法：/kbremove"):
        admin.remove("  ")
    with pytest.raises(AdminError, match="没有名为“README”的文件"):
        admin.remove("README")
    assert admin.remove("anyuan") == "anyuan.txt"
    assert not (folder / "anyuan.txt").exists()
    catalog = tomllib.loads((folder / "catalog.toml").read_text("utf-8"))
    assert list(catalog) == ["a.txt"]


def test_remove_refuses_an_ambiguous_stem(folder: Path) -> None:
    (folder / "a.md").write_text("甲" * 30, "utf-8")
    with pytest.raises(AdminError, match=r"有多个文件匹配“a”：a\.md、a\.txt"):
        make_admin(folder, ScriptedIndex()).remove("a")


def test_rebuild_records_the_version_in_its_own_unit_of_work(folder: Path) -> None:
    office = Office()
    lock = Lock(free=True)
    admin = make_admin(folder, ScriptedIndex(), office, build_lock=lock, build_wait_seconds=5)
    seen: list[tuple[int, int]] = []
    outcome = admin.rebuild(lambda done, total: seen.append((done, total)))
    assert seen == [(3, 3)] and lock.waited == [5]
    assert outcome.swapped
    assert [
        (v.version_id, v.built_at, v.doc_count, v.chunk_count) for v in office.kb_versions.recorded
    ] == [("v2", NOW, 2, 10)]
    assert office.commits == 1
    assert outcome.summary().startswith("索引已更新并切换到新版本 v2：2 份文件，10 段；")


def test_rebuild_refusals(folder: Path) -> None:
    with pytest.raises(RebuildBusy):
        make_admin(folder, ScriptedIndex(), Office(), build_lock=Lock(free=False)).rebuild()
    failing = ScriptedIndex(failure="无法读取文件“x.pdf”：PDF 文件已损坏或设置了密码保护。")
    with pytest.raises(AdminError, match=r"索引更新失败：无法读取文件“x\.pdf”.*仍在使用原来的索引"):
        make_admin(folder, failing, Office()).rebuild()
    gated = ScriptedIndex(gate=threading.Event())
    admin = make_admin(folder, gated, Office())
    worker = threading.Thread(target=admin.rebuild)
    worker.start()
    try:
        while gated.builds == 0:
            threading.Event().wait(0.01)
        assert admin.busy
        with pytest.raises(RebuildBusy):
            admin.rebuild()
    finally:
        assert gated.gate is not None
        gated.gate.set()
        worker.join()
    assert not admin.busy


def test_up_to_date_summary_and_hit_test(folder: Path) -> None:
    index = ScriptedIndex(
        summary=BuildSummary("v1", 1, 7, up_to_date=True),
        hits=[IndexHit(0.91234, 0.88, 3.456, 0.5, "甲文件", "一、总体 › 1. 目标", "甲 " * 60)],
    )
    admin = make_admin(folder, index, Office())
    assert admin.rebuild().summary() == "索引已是最新（版本 v1，1 份文件，7 段）。"
    text = admin.hit_test(" 目标 ")
    assert text.startswith(
        "命中测试：目标\n1. 得分 0.912（向量 0.880，词 3.46，覆盖 0.50）\n《甲文件》 › 一、总体 › 1. 目标\n"
    )
    assert text.endswith("…")
    assert admin.hit_test("").startswith("用法：/search")


def test_overview_of_a_manifest() -> None:
    overview = overview_of(
        {
            "version": "v9",
            "built_at": "2026-03-09T08:05:00+0800",
            "chunk_count": 3,
            "documents": {
                "a": {"hash": "abc", "chunks": 3, "meta": {"source": "a.txt", "title": "甲"}}
            },
        }
    )
    assert overview.version == "v9" and overview.chunk_count == 3
    assert overview.built_at == datetime(2026, 3, 9, 8, 5, tzinfo=ZONE)
    assert overview.documents == (IndexedDocument("a.txt", "甲", "", "abc", 3),)
    assert overview_of(None) == IndexOverview()


def test_upload_names_are_checked() -> None:
    assert safe_file_name("信丰县2025年办法.docx") == "信丰县2025年办法.docx"
    for bad in ("../x.txt", "a/b.txt", ".hidden.txt", "catalog.toml", "run.sh", "noext"):
        with pytest.raises(KnowledgeError):
            safe_file_name(bad)
