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

import json
import logging
import os
import re
import shutil
import threading
import tomllib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cadrebot.handlers.ports import (
    Feedback,
    KbVersion,
    OfficeUnitOfWorkFactory,
)
from cadrebot.indexer.builder import BuildReport, ProgressCallback
from cadrebot.indexer.catalog import metadata_from_header
from cadrebot.indexer.loaders import SUPPORTED_SUFFIXES, DocumentLoadError, load_text
from cadrebot.indexer.search import SearchHit

log = logging.getLogger(__name__)

SUPPORTED_LABEL = "、".join(sorted(SUPPORTED_SUFFIXES))
RESERVED_NAMES = frozenset({"catalog.toml", "readme.md"})
_SAFE_NAME = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]+$")
_CATALOG_FIELDS = ("title", "issuer", "doc_number", "date", "level", "region")


class AdminError(Exception):
    """A refusal or failure to show the admin; ``message`` is Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RebuildBusy(AdminError):
    def __init__(self) -> None:
        super().__init__("知识库正在更新索引，请等当前更新完成后再操作。")


class ManifestReader(Protocol):
    def current_name(self) -> str | None: ...

    def current_manifest(self) -> dict[str, Any] | None: ...


class IndexBuilding(Protocol):
    @property
    def store(self) -> ManifestReader: ...

    def build(
        self, *, rebuild: bool = False, progress: ProgressCallback | None = None
    ) -> BuildReport: ...


class BuildLock(Protocol):
    """Excludes other processes' builders (``hold`` yields False after ``timeout`` s)."""

    def hold(self, timeout: float) -> AbstractContextManager[bool]: ...


class IndexServing(Protocol):
    def reload_if_changed(self) -> bool: ...

    def search(self, query: str, top_k: int = 5) -> Sequence[SearchHit]: ...


@dataclass(frozen=True)
class StoredDocument:
    file_name: str
    replaced: bool  # a document of that name was there before
    title: str


@dataclass(frozen=True)
class RebuildOutcome:
    report: BuildReport
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
                lines.append(f"{label}：{'、'.join(names)}")
        return "\n".join(lines)


def safe_file_name(name: str) -> str:
    """The upload's name if it may be stored as is; raises :class:`AdminError` otherwise."""
    name = name.strip()
    base = Path(name).name
    suffix = Path(base).suffix.lower()
    if not base or base != name or not _SAFE_NAME.match(base) or base.startswith("."):
        raise AdminError(
            "文件名不合法，请改用普通的中文或英文文件名（不含 / \\ : * ? 等符号）后重新上传。"
        )
    if base.lower() in RESERVED_NAMES:
        raise AdminError(f"“{base}”是系统保留的文件名，请改名后重新上传。")
    if suffix not in SUPPORTED_SUFFIXES:
        raise AdminError(
            f"不支持“{suffix or '无扩展名'}”类型的文件。目前只支持 {SUPPORTED_LABEL} 文件。"
        )
    if len(base.encode("utf-8")) > 200:
        raise AdminError("文件名太长，请缩短后重新上传。")
    return base


def _toml_string(value: str) -> str:
    # JSON string escapes (\", \\, \n, \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False)


def catalog_entry(file_name: str, values: dict[str, str]) -> str:
    lines = [f"[{_toml_string(file_name)}]"]
    lines += [f"{key} = {_toml_string(values.get(key, ''))}" for key in _CATALOG_FIELDS]
    return "\n".join(lines) + "\n"


def without_catalog_entry(text: str, file_name: str) -> str:
    """The catalog text with the table for ``file_name`` (header to next header) removed."""
    header = f"[{_toml_string(file_name)}]"
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == header
        if not skipping:
            kept.append(line)
    return "".join(kept)


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


class KnowledgeAdmin:
    def __init__(
        self,
        knowledge_dir: Path,
        builder: IndexBuilding,
        searcher: IndexServing,
        uow_factory: OfficeUnitOfWorkFactory,
        *,
        clock: Callable[[], datetime],
        max_upload_bytes: int,
        build_lock: BuildLock | None = None,
        build_wait_seconds: float = 600.0,
    ) -> None:
        self._dir = knowledge_dir
        self._builder = builder
        self._searcher = searcher
        self._uow_factory = uow_factory
        self._clock = clock
        self.max_upload_bytes = max_upload_bytes
        self._build_lock = threading.Lock()
        self._files_lock = threading.Lock()
        self._global_lock = build_lock
        self._build_wait_seconds = build_wait_seconds

    @property
    def catalog_path(self) -> Path:
        return self._dir / "catalog.toml"

    @property
    def busy(self) -> bool:
        return self._build_lock.locked()

    # ------------------------------------------------------------------ listing

    def list_documents(self) -> str:
        manifest = self._builder.store.current_manifest() or {}
        indexed: dict[str, Any] = manifest.get("documents", {})
        by_source = {
            entry["meta"].get("source", doc_id): entry for doc_id, entry in indexed.items()
        }
        files = sorted(
            p.name
            for p in self._dir.iterdir()
            if p.is_file()
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and not p.name.startswith(".")
            and p.name.lower() not in RESERVED_NAMES
        )
        built = manifest.get("built_at", "")
        lines = [
            f"知识库共 {len(files)} 份文件；索引版本 {manifest.get('version', '（未建立）')}，"
            f"共 {manifest.get('chunk_count', 0)} 段，索引时间 {_short_time(built)}。"
        ]
        for n, name in enumerate(files, 1):
            entry = by_source.get(name)
            if entry is None:
                lines.append(f"{n}. {name}\n   尚未索引（发送 /reload 更新索引）")
                continue
            meta = entry.get("meta", {})
            number = f"（{meta['doc_number']}）" if meta.get("doc_number") else ""
            lines.append(
                f"{n}. {meta.get('title') or name}{number}\n"
                f"   文件：{name}  版本：{str(entry.get('hash', ''))[:8]}  "
                f"段数：{entry.get('chunks', 0)}"
            )
        gone = sorted(set(by_source) - set(files))
        for name in gone:
            lines.append(f"· {name}：文件已删除，仍在索引中（发送 /reload 更新索引）")
        with self._uow_factory() as uow:
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
        name = safe_file_name(file_name)
        if size is not None and size > self.max_upload_bytes:
            raise AdminError(
                f"文件太大（{_megabytes(size)}），上限为 {_megabytes(self.max_upload_bytes)}。"
                "请压缩图片或拆分文件后重新上传。"
            )
        stem = Path(name).stem
        clash = [
            p.name
            for p in self._dir.glob(f"{glob_escape(stem)}.*")
            if p.suffix.lower() in SUPPORTED_SUFFIXES and p.name != name
        ]
        if clash:
            raise AdminError(
                f"知识库中已有同名文件“{clash[0]}”。如要替换，请先发送 /kbremove {clash[0]}，"
                "或把新文件改名后上传。"
            )
        return name

    def store_upload(self, file_name: str, downloaded: Path) -> StoredDocument:
        """Check the downloaded file's content and move it into the knowledge folder."""
        name = self.check_upload(file_name, downloaded.stat().st_size)
        staged = self._dir / f".upload-{uuid.uuid4().hex}{Path(name).suffix.lower()}"
        shutil.copyfile(downloaded, staged)
        try:
            text = load_text(staged)
        except DocumentLoadError as error:
            staged.unlink(missing_ok=True)
            raise AdminError(error.args[0].replace(staged.name, name)) from None
        if len(text.strip()) < 20:
            staged.unlink(missing_ok=True)
            raise AdminError(f"文件“{name}”中几乎没有文字内容，请检查后重新上传。")
        meta = metadata_from_header(text, name)
        target = self._dir / name
        with self._files_lock:
            replaced = target.exists()
            os.replace(staged, target)
            self._add_catalog_entry(name, {k: getattr(meta, k) for k in _CATALOG_FIELDS})
        log.info("knowledge document stored: %s (replaced=%s)", name, replaced)
        return StoredDocument(name, replaced, meta.title)

    def _add_catalog_entry(self, name: str, values: dict[str, str]) -> None:
        current = self.catalog_path.read_text("utf-8") if self.catalog_path.exists() else ""
        try:
            existing = tomllib.loads(current) if current else {}
        except tomllib.TOMLDecodeError:
            log.warning("catalog.toml does not parse; not adding an entry for %s", name)
            return
        if name in existing:
            return  # an operator's entry wins over what the header says
        separator = "" if not current or current.endswith("\n\n") else "\n"
        if current and not current.endswith("\n"):
            separator = "\n\n"
        updated = current + separator + catalog_entry(name, values)
        tomllib.loads(updated)  # never write a catalog the indexer cannot read
        _write_atomic(self.catalog_path, updated)

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
            p
            for p in self._dir.iterdir()
            if p.is_file()
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and p.name.lower() not in RESERVED_NAMES
            and wanted in (p.name, p.stem)
        ]
        if not candidates:
            raise AdminError(f"知识库中没有名为“{wanted}”的文件。发送 /kb 查看文件列表。")
        if len(candidates) > 1:
            names = "、".join(p.name for p in candidates)
            raise AdminError(f"有多个文件匹配“{wanted}”：{names}。请写完整的文件名。")
        path = candidates[0]
        with self._files_lock:
            path.unlink()
            if self.catalog_path.exists():
                current = self.catalog_path.read_text("utf-8")
                updated = without_catalog_entry(current, path.name)
                if updated != current:
                    _write_atomic(self.catalog_path, updated)
        log.info("knowledge document removed: %s", path.name)
        return path.name

    # ------------------------------------------------------------------ rebuild

    def rebuild(self, progress: ProgressCallback | None = None) -> RebuildOutcome:
        """Re-scan the folder, index what changed, swap the new version in. One at a time."""
        if not self._build_lock.acquire(blocking=False):
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
                    report = self._builder.build(progress=progress)
                except DocumentLoadError as error:
                    raise AdminError(
                        f"索引更新失败：{error.args[0]}。仍在使用原来的索引。"
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
            swapped = self._searcher.reload_if_changed()
            return RebuildOutcome(report, swapped)
        finally:
            self._build_lock.release()

    # ------------------------------------------------------------------ diagnostics

    def hit_test(self, query: str, top_k: int = 5) -> str:
        query = query.strip()
        if not query:
            return "用法：/search 问题，例如：/search 监测对象识别认定要多少天"
        hits = self._searcher.search(query, top_k=top_k)
        if not hits:
            return "没有命中任何段落。"
        lines = [f"命中测试：{query}"]
        for n, hit in enumerate(hits, 1):
            where = hit.chunk.section_label()
            lines.append(
                f"{n}. 得分 {hit.score:.3f}（向量 {hit.dense:.3f}，词 {hit.lexical:.2f}，"
                f"覆盖 {hit.coverage:.2f}）\n"
                f"《{hit.meta.title}》{' › ' + where if where else ''}\n"
                f"{_clip(hit.chunk.text, 90)}"
            )
        return "\n".join(lines)

    def stats(self, days: int = 7) -> str:
        now = self._clock()
        start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._uow_factory() as uow:
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


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 // whole}%" if whole else "—"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short_time(stamp: str) -> str:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp or "—"
