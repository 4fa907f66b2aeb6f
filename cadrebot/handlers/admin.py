"""Knowledge-base administration: list, upload, re-scan, remove, hit test, usage statistics.

An uploaded document is checked (type, size, readable text), stored in the knowledge folder
under its own name with a catalog entry read from its header, and the index is rebuilt
incrementally (only new or changed passages are embedded). The new index version is written
next to the serving one and swapped in atomically, so questions keep being answered from the
old version until the new one is complete. One rebuild runs at a time.

Channel-free and synchronous: a channel runs :meth:`KnowledgeAdmin.rebuild` in a worker thread
and shows the progress callback's reports.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cadrebot.handlers.commands import ADMINS, Command, CommandCall
from cadrebot.handlers.ports import (
    CORRECTIONS_FILE,
    CURATED_DOC_ID,
    BuildProgress,
    BuildSummary,
    Feedback,
    KbVersion,
    KnowledgeError,
    KnowledgeFolder,
    KnowledgeIndex,
    OfficeUnitOfWork,
    OfficeUnitOfWorkFactory,
    Reply,
    StoredDocument,
)
from cadrebot.handlers.turns import ProgressReport, TurnResult

log = logging.getLogger(__name__)

UPLOAD_COMMAND = "upload"
ADMIN_UPLOAD_ONLY = "抱歉，只有管理员可以向知识库上传文件。如需咨询政策，请直接发送文字问题。"
UPLOADS_OFF = "抱歉，这里不能上传文件。如需咨询政策，请直接发送文字问题。"
REBUILD_FAILED = "❌ 索引更新失败，仍在使用原来的索引。请检查文件后重试。"


class AdminError(Exception):
    """A refusal or failure to show the admin; ``message`` is Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RebuildBusy(AdminError):
    def __init__(self) -> None:
        super().__init__("知识库正在更新索引，请等当前更新完成后再操作。")


class BuildLock(Protocol):
    """Excludes other processes' builders (``hold`` yields False after ``timeout`` s)."""

    def hold(self, timeout: float) -> AbstractContextManager[bool]: ...


@dataclass(frozen=True)
class RebuildOutcome:
    report: BuildSummary
    swapped: bool  # the serving index changed

    def summary(self) -> str:
        r = self.report
        if r.up_to_date:
            return f"索引已是最新（版本 {r.version}，{r.documents} 份文件，{r.chunks} 段）。"
        lines = [
            f"索引已更新并切换到新版本 {r.version}：{r.documents} 份文件，{r.chunks} 段；"
            f"新向量化 {r.embedded} 段，复用 {r.reused} 段，用时 {r.seconds:.1f} 秒。"
        ]
        for label, names in (("新增", r.added), ("更新", r.changed), ("移除", r.removed)):
            if names:
                shown = ("管理员更正" if n == CURATED_DOC_ID else n for n in names)
                lines.append(f"{label}：{'、'.join(shown)}")
        return "\n".join(lines)


class KnowledgeAdmin:
    def __init__(
        self,
        folder: KnowledgeFolder,
        index: KnowledgeIndex,
        uow_factory: OfficeUnitOfWorkFactory,
        *,
        clock: Callable[[], datetime],
        build_lock: BuildLock | None = None,
        build_wait_seconds: float = 600.0,
    ) -> None:
        self._folder = folder
        self._index = index
        self._uow_factory = uow_factory
        self._clock = clock
        self._build_lock = threading.Lock()
        self._global_lock = build_lock
        self._build_wait_seconds = build_wait_seconds

    @property
    def max_upload_bytes(self) -> int:
        return self._folder.max_upload_bytes

    @property
    def busy(self) -> bool:
        return self._build_lock.locked()

    # ------------------------------------------------------------------ commands

    def commands(self) -> list[Command]:
        return [
            Command("kb", "知识库文件列表；直接发送文件即可上传", self._list, ADMINS),
            Command("reload", "重新扫描知识库并更新索引", self._reload, ADMINS),
            Command("kbremove", "移除文件", self._remove, ADMINS, usage="文件名"),
            Command("search", "命中测试", self._search, ADMINS, usage="问题"),
            Command("stats", "问答统计", self._stats, ADMINS),
            Command(
                UPLOAD_COMMAND,
                "上传文件：直接发送 .txt/.md/.docx/.pdf 文件",
                self._upload_hint,
                ADMINS,
                listed=False,
                denied=ADMIN_UPLOAD_ONLY,
            ),
        ]

    def _list(self, call: CommandCall) -> None:
        call.out.say(self.list_documents(call.uow))

    def _search(self, call: CommandCall) -> None:
        call.out.say(self.hit_test(call.argument))

    def _stats(self, call: CommandCall) -> None:
        call.out.say(self.stats(call.uow))

    def _reload(self, call: CommandCall) -> None:
        call.out.say("正在重新扫描知识库并更新索引，期间问答照常进行……")
        call.out.tasks.append(RebuildTask(self))

    def _remove(self, call: CommandCall) -> None:
        try:
            removed = self.remove(call.argument)
        except AdminError as refusal:
            call.out.say(refusal.message)
            return
        call.out.say(f"已删除文件“{removed}”，正在更新索引……")
        call.out.tasks.append(RebuildTask(self))

    def _upload_hint(self, call: CommandCall) -> None:
        call.out.say("直接把文件（.txt、.md、.docx、.pdf）发给我，即可加入知识库。")

    def accept_upload(self, name: str, path: Path) -> TurnResult:
        """Store a fetched upload; the result's task re-indexes."""
        try:
            stored = self.store_upload(name, path)
        except AdminError as refusal:
            return TurnResult([Reply(refusal.message)])
        action = "已替换" if stored.replaced else "已加入知识库"
        text = f"《{stored.title}》（{stored.file_name}）{action}，正在更新索引，期间问答照常进行……"
        return TurnResult([Reply(text)], tasks=(RebuildTask(self),))

    def follow_published(self) -> bool:
        """Switch to an index version another process published; not while this process
        builds one (it switches when its build is done)."""
        if self.busy:
            return False
        return self._index.reload_if_changed()

    # ------------------------------------------------------------------ listing

    def list_documents(self, uow: OfficeUnitOfWork) -> str:
        """The documents, their index state and the recent index versions (read in ``uow``)."""
        index = self._index.overview()
        by_source = {doc.source: doc for doc in index.documents}
        files = list(self._folder.document_names())
        built = index.built_at.strftime("%Y-%m-%d %H:%M") if index.built_at else "—"
        lines = [
            f"知识库共 {len(files)} 份文件；索引版本 {index.version or '（未建立）'}，"
            f"共 {index.chunk_count} 段，索引时间 {built}。"
        ]
        for n, name in enumerate(files, 1):
            doc = by_source.get(name)
            if doc is None:
                lines.append(f"{n}. {name}\n   尚未索引（发送 /reload 更新索引）")
                continue
            number = f"（{doc.doc_number}）" if doc.doc_number else ""
            lines.append(
                f"{n}. {doc.title or name}{number}\n"
                f"   文件：{name}  版本：{doc.content_hash[:8]}  "
                f"段数：{doc.chunks}"
            )
        # The corrections are indexed from their own file, which is no document.
        gone = sorted(set(by_source) - set(files) - {CORRECTIONS_FILE})
        for name in gone:
            lines.append(f"· {name}：文件已删除，仍在索引中（发送 /reload 更新索引）")
        history = uow.kb_versions.recent(3)
        if history:
            lines.append("最近的索引版本：")
            lines += [
                f"{v.version_id} {v.built_at:%Y-%m-%d %H:%M} {v.doc_count}份 {v.chunk_count}段"
                f"{'（使用中）' if v.status == 'active' else ''}"
                for v in history
            ]
        lines.append("上传 .txt/.md/.docx/.pdf 文件即可加入知识库；/kbremove 文件名 移除文件。")
        return "\n".join(lines)

    # ------------------------------------------------------------------ upload

    def check_upload(self, file_name: str | None, size: int | None) -> str:
        """The stored name for an announced upload; raises :class:`AdminError` if refused."""
        if not file_name:
            raise AdminError(
                "请以“文件”方式发送文档，并保留文件名和扩展名（.txt/.md/.docx/.pdf）。"
            )
        try:
            return self._folder.check_upload(file_name, size)
        except KnowledgeError as refusal:
            raise AdminError(refusal.message) from None

    def store_upload(self, file_name: str, downloaded: Path) -> StoredDocument:
        """Check the downloaded file's content and move it into the knowledge folder."""
        self.check_upload(file_name, None)
        try:
            return self._folder.store_upload(file_name, downloaded)
        except KnowledgeError as refusal:
            raise AdminError(refusal.message) from None

    # ------------------------------------------------------------------ remove

    def remove(self, argument: str) -> str:
        """Delete a document file (and its catalog entry); the caller then rebuilds."""
        wanted = argument.strip()
        if not wanted:
            raise AdminError(
                "用法：/kbremove 文件名，例如：/kbremove xinfeng-2024-work-points.txt"
                "（/kb 查看文件名）"
            )
        candidates = [
            name for name in self._folder.document_names() if wanted in (name, Path(name).stem)
        ]
        if not candidates:
            raise AdminError(f"知识库中没有名为“{wanted}”的文件。发送 /kb 查看文件列表。")
        if len(candidates) > 1:
            names = "、".join(candidates)
            raise AdminError(f"有多个文件匹配“{wanted}”：{names}。请写完整的文件名。")
        try:
            self._folder.remove(candidates[0])
        except KnowledgeError as refusal:
            raise AdminError(refusal.message) from None
        return candidates[0]

    # ------------------------------------------------------------------ rebuild

    def rebuild(
        self, progress: BuildProgress | None = None, *, wait: bool = False
    ) -> RebuildOutcome:
        """Re-scan the folder, index what changed, swap the new version in. One at a time:
        with ``wait`` after the rebuild running now, else :class:`RebuildBusy`."""
        if not self._build_lock.acquire(blocking=wait):
            raise RebuildBusy()
        try:
            # Several workers share the index store: one builds at a time. A build that
            # waited for another one's usually finds everything indexed already.
            held = (
                self._global_lock.hold(self._build_wait_seconds)
                if self._global_lock is not None
                else nullcontext(True)
            )
            with held as acquired:
                if not acquired:
                    raise RebuildBusy()
                try:
                    report = self._index.build(progress)
                except KnowledgeError as error:
                    raise AdminError(
                        f"索引更新失败：{error.message}。仍在使用原来的索引。"
                    ) from None
                if report.version and not report.up_to_date:
                    # Recorded under the lock: the versions are recorded in build order.
                    with self._uow_factory() as uow:
                        uow.kb_versions.record(
                            KbVersion(
                                version_id=report.version,
                                built_at=self._clock(),
                                doc_count=report.documents,
                                chunk_count=report.chunks,
                            )
                        )
                        uow.commit()
            swapped = self._index.reload_if_changed()
            return RebuildOutcome(report, swapped)
        finally:
            self._build_lock.release()

    # ------------------------------------------------------------------ diagnostics

    def hit_test(self, query: str, top_k: int = 5) -> str:
        query = query.strip()
        if not query:
            return "用法：/search 问题，例如：/search 监测对象识别认定要多少天"
        hits = self._index.hit_test(query, top_k=top_k)
        if not hits:
            return "没有命中任何段落。"
        lines = [f"命中测试：{query}"]
        for n, hit in enumerate(hits, 1):
            where = hit.section
            lines.append(
                f"{n}. 得分 {hit.score:.3f}（向量 {hit.dense:.3f}，词 {hit.lexical:.2f}，"
                f"覆盖 {hit.coverage:.2f}）\n"
                f"《{hit.doc_title}》{' › ' + where if where else ''}\n"
                f"{_clip(hit.text, 90)}"
            )
        return "\n".join(lines)

    def stats(self, uow: OfficeUnitOfWork, days: int = 7) -> str:
        """Question counts and ratings of the last ``days`` days (read in ``uow``)."""
        now = self._clock()
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        questions = uow.exchanges.questions_since(start)
        unanswered = uow.exchanges.top_unanswered(start, limit=5)
        per_day: Counter[str] = Counter()
        found_per_day: Counter[str] = Counter()
        for q in questions:
            day = q.at.astimezone(now.tzinfo).strftime("%m-%d")
            per_day[day] += 1
            if q.found:
                found_per_day[day] += 1
        total = len(questions)
        found = sum(1 for q in questions if q.found)
        up = sum(1 for q in questions if q.feedback is Feedback.UP)
        down = sum(1 for q in questions if q.feedback is Feedback.DOWN)
        lines = [
            f"近{days}天问答统计：共 {total} 个问题，"
            f"找到答案 {found} 个（{_percent(found, total)}）。"
        ]
        lines.append(f"用户评价：👍 {up}  👎 {down}")
        lines.append("每日问题数（找到答案率）：")
        for offset in range(days):
            day = (start + timedelta(days=offset)).strftime("%m-%d")
            lines.append(f"{day}：{per_day[day]}（{_percent(found_per_day[day], per_day[day])}）")
        lines.append("未找到答案最多的问题：")
        lines += [
            f"{n}. {_clip(text, 40)}（{count}次）" for n, (text, count) in enumerate(unanswered, 1)
        ] or ["（无）"]
        return "\n".join(lines)


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 // whole}%" if whole else "—"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RebuildTask:
    """Re-index in the background (a channel runs it in a worker thread), reporting how
    many passages are embedded so far; waits for a rebuild already running to finish."""

    admin: KnowledgeAdmin

    def run(self, progress: ProgressReport) -> str:
        def embedded(done: int, total: int) -> None:
            if total:
                progress(f"正在更新索引：已向量化 {done}/{total} 段……")

        try:
            outcome = self.admin.rebuild(embedded, wait=True)
        except AdminError as refusal:
            return f"❌ {refusal.message}"
        except Exception:
            log.exception("knowledge base rebuild failed")
            return REBUILD_FAILED
        return f"✅ {outcome.summary()}"
