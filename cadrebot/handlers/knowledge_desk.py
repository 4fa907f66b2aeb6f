"""The admins' knowledge console: documents, their passages, hit tests, background builds, the
conversation log, corrections and the everyday-words lexicon.

Channel-free like the rest of the core: every method takes the acting :class:`User`, checks
that it is an admin (:func:`~cadrebot.handlers.access.require_admin`, so a cadre gets
:class:`~cadrebot.handlers.access.PermissionDenied` whatever the channel) and returns
structured results the web pages render. Refusals of the admin's input are
:class:`~cadrebot.handlers.admin.AdminError` with a Chinese message.

**Corrections.** From a logged question an admin writes the right answer and what it rests
on. It is stored as data in the knowledge folder (``corrections.toml``, see
``indexer/corrections.py`` for why there) and indexed as a curated passage, so it survives
rebuilds and restarts and every worker answers from it once it follows the published
index. The answer composer answers that question with it, cited as
``县乡村振兴局解答，<date>（依据：<source>）``. Writing, editing or removing one starts the
incremental build, as an upload does.

**Builds.** An upload, a removal, a correction or a rebuild asks :class:`BuildJobs` for a
build. It runs in one background thread of this process, through
:meth:`KnowledgeAdmin.rebuild` (one build at a time; other processes are excluded by the
database build lock), and reports a stage and a percentage the page polls. A request made
while a build is still waiting to start joins that build instead of queueing another.
Jobs are known to the process that started them only.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from cadrebot.handlers.access import NotFound, require_admin
from cadrebot.handlers.admin import REBUILD_FAILED, AdminError, KnowledgeAdmin
from cadrebot.handlers.commands import ADMINS, DeskPage
from cadrebot.handlers.followups import understood_in
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import (
    ChunkInfo,
    Correction,
    CorrectionStore,
    DocumentInfo,
    ExchangeKind,
    Feedback,
    IndexInspector,
    KnowledgeError,
    LexiconStore,
    LexiconText,
    NotFoundError,
    OfficeUnitOfWorkFactory,
    PassageHit,
    PolicyAnswer,
    PolicyAnswerer,
    QuestionView,
    User,
)

log = logging.getLogger(__name__)

LOG_PAGE_SIZE = 20
MAX_TOP_K = 20
MAX_QUESTION_CHARS = 200
MAX_ANSWER_CHARS = 300  # an answer's body is at most this long (indexer/answers.py)
MAX_SOURCE_CHARS = 200
UNKNOWN_DOCUMENT = "知识库中没有这份文件。"
UNKNOWN_JOB = "没有找到这次索引更新（可能已完成较久，或由另一个服务进程执行）。"
UNKNOWN_EXCHANGE = "没有找到这条问答记录。"
UNKNOWN_CORRECTION = "没有找到这条更正。"
NO_FILE = "请选择要上传的文件（.txt、.md、.docx、.pdf）。"
STOPPED = "服务已停止，本次索引更新未进行；下次更新索引时会一并处理。"
# Bidirectional overrides can make text display other than it reads; never stored.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


# --------------------------------------------------------------------------- builds


class BuildStage(StrEnum):
    WAITING = "waiting"  # queued behind another build
    READING = "reading"  # reading and splitting the documents
    EMBEDDING = "embedding"  # embedding new passages
    PUBLISHING = "publishing"  # writing the version and switching to it
    DONE = "done"
    FAILED = "failed"


STAGE_LABELS = {
    BuildStage.WAITING: "排队等待",
    BuildStage.READING: "读取并切分文件",
    BuildStage.EMBEDDING: "向量化新段落",
    BuildStage.PUBLISHING: "写入并切换索引",
    BuildStage.DONE: "已完成",
    BuildStage.FAILED: "失败",
}


@dataclass(frozen=True)
class BuildStatus:
    job_id: str
    reason: str  # what asked for it: 上传…, 删除…, 更正, 重建索引
    started_by: str
    queued_at: datetime
    stage: BuildStage
    embedded: int = 0  # passages embedded so far
    to_embed: int = 0  # passages this build embeds
    summary: str = ""  # the outcome (Chinese), once finished

    @property
    def finished(self) -> bool:
        return self.stage in (BuildStage.DONE, BuildStage.FAILED)

    @property
    def failed(self) -> bool:
        return self.stage is BuildStage.FAILED

    @property
    def label(self) -> str:
        if self.stage is BuildStage.EMBEDDING and self.to_embed:
            return f"{STAGE_LABELS[self.stage]}：{self.embedded}/{self.to_embed}"
        return STAGE_LABELS[self.stage]

    @property
    def percent(self) -> int:
        if self.stage is BuildStage.EMBEDDING:
            return 10 + (80 * self.embedded // self.to_embed if self.to_embed else 0)
        return {
            BuildStage.WAITING: 0,
            BuildStage.READING: 5,
            BuildStage.PUBLISHING: 92,
        }.get(self.stage, 100)


class BuildJobs:
    """Index builds in the background of this process, one after the other, with progress."""

    def __init__(
        self, admin: KnowledgeAdmin, clock: Callable[[], datetime], *, keep: int = 20
    ) -> None:
        self._admin = admin
        self._clock = clock
        self._keep = keep
        self._jobs: dict[str, BuildStatus] = {}
        self._queue: deque[str] = deque()
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    def start(self, actor: User, reason: str) -> str:
        """Ask for a build; the id of the job that will carry it out."""
        require_admin(actor)
        with self._changed:
            for job_id in self._queue:
                # Not begun yet: it reads the folder when it does, this change included.
                return job_id
            job = BuildStatus(
                job_id=secrets.token_hex(8),
                reason=reason,
                started_by=actor.display_name,
                queued_at=self._clock(),
                stage=BuildStage.WAITING,
            )
            self._jobs[job.job_id] = job
            self._queue.append(job.job_id)
            self._forget_old()
            if self._worker is None:
                # A daemon: a build cut short by the process ending leaves the serving
                # version in place (the index store's builds are atomic).
                self._worker = threading.Thread(
                    target=self._work, name="knowledge-builds", daemon=True
                )
                self._worker.start()
            self._changed.notify_all()
            return job.job_id

    def status(self, job_id: str) -> BuildStatus:
        with self._changed:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(UNKNOWN_JOB)
        return job

    def current(self) -> BuildStatus | None:
        """The build running or waiting now (the latest asked for), if any."""
        with self._changed:
            pending = [j for j in self._jobs.values() if not j.finished]
        return pending[-1] if pending else None

    def wait(self, job_id: str, timeout: float) -> BuildStatus:
        """Block until the job has finished (or ``timeout`` s passed); its status then."""
        with self._changed:
            self._changed.wait_for(
                lambda: job_id not in self._jobs or self._jobs[job_id].finished, timeout
            )
        return self.status(job_id)

    def close(self, timeout: float = 600.0) -> None:
        """Before the process lets go of the database: builds not begun are dropped (the
        folder keeps the change; the next build indexes it), the running one is waited for."""
        with self._changed:
            while self._queue:
                job_id = self._queue.popleft()
                self._jobs[job_id] = replace(
                    self._jobs[job_id], stage=BuildStage.FAILED, summary=STOPPED
                )
            self._changed.notify_all()
            self._changed.wait_for(lambda: all(j.finished for j in self._jobs.values()), timeout)

    def _set(self, job_id: str, **changes: object) -> None:
        with self._changed:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)  # type: ignore[arg-type]
            self._changed.notify_all()

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        for job_id in finished[: max(0, len(self._jobs) - self._keep)]:
            del self._jobs[job_id]

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._queue))
                job_id = self._queue.popleft()
                self._jobs[job_id] = replace(self._jobs[job_id], stage=BuildStage.READING)
                self._changed.notify_all()
            self._run(job_id)

    def _run(self, job_id: str) -> None:
        def progress(done: int, total: int) -> None:
            stage = BuildStage.EMBEDDING if done < total else BuildStage.PUBLISHING
            self._set(job_id, stage=stage, embedded=done, to_embed=total)

        try:
            outcome = self._admin.rebuild(progress, wait=True)
        except AdminError as refusal:
            self._set(job_id, stage=BuildStage.FAILED, summary=refusal.message)
        except Exception:
            log.exception("knowledge base rebuild failed")
            self._set(job_id, stage=BuildStage.FAILED, summary=REBUILD_FAILED)
        else:
            self._set(job_id, stage=BuildStage.DONE, summary=outcome.summary())


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DocumentsView:
    version: str | None  # the index version answering now
    built_at: datetime | None
    chunk_count: int
    documents: tuple[DocumentInfo, ...]
    corrections: int  # how many corrections the folder holds
    build: BuildStatus | None  # the build running or waiting, if any
    max_upload_bytes: int


@dataclass(frozen=True)
class ChunksView:
    document: DocumentInfo
    chunks: tuple[ChunkInfo, ...]


@dataclass(frozen=True)
class HitTest:
    question: str
    passages: tuple[PassageHit, ...]
    answer: PolicyAnswer  # what the bot would reply


@dataclass(frozen=True)
class BuildStarted:
    message: str  # what was done (Chinese)
    job_id: str  # the build that applies it


@dataclass(frozen=True)
class CorrectionSaved:
    correction: Correction
    job_id: str


@dataclass(frozen=True)
class LogEntry:
    exchange_id: int
    at: datetime
    channel: str
    question: str  # as asked (masked), /ask taken off
    reply: str  # the bot's reply (masked)
    found: bool | None
    feedback: Feedback | None
    in_form: bool  # asked in the middle of a form
    understood_as: str = ""  # a follow-up: the question it was answered as


@dataclass(frozen=True)
class LogPage:
    view: QuestionView
    entries: tuple[LogEntry, ...]
    total: int
    page: int  # 1-based
    pages: int


@dataclass(frozen=True)
class UnansweredQuestion:
    question: str
    count: int


@dataclass(frozen=True)
class CorrectionDraft:
    """A correction form filled in from a logged question."""

    exchange_id: int
    question: str
    reply: str  # what the bot answered then


# --------------------------------------------------------------------------- the desk


def _question_of(text: str) -> str:
    text = text.strip()
    if text.startswith("/ask"):
        text = text.removeprefix("/ask").strip()
    return text


def clean_text(value: str, label: str, *, low: int, high: int, multiline: bool = False) -> str:
    """An admin's text as it will be stored, or :class:`AdminError` saying what is wrong:
    lengths, control characters, an ID or mobile number (a correction is read by everyone)."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    allowed = "\n" if multiline else ""
    if any((ord(ch) < 32 and ch not in allowed) or 0x7F <= ord(ch) < 0xA0 for ch in text):
        raise AdminError(f"{label}中含有控制字符{'' if multiline else '或换行'}，请删除后再保存。")
    if any(ch in _BIDI for ch in text):
        raise AdminError(f"{label}中含有改变文字方向的特殊字符，请删除后再保存。")
    if len(text) < low:
        raise AdminError(f"请填写{label}（至少 {low} 个字）。")
    if len(text) > high:
        raise AdminError(f"{label}太长：最多 {high} 个字，现有 {len(text)} 个字。")
    if mask_sensitive(text) != text:
        raise AdminError(f"{label}中不能含有身份证号或手机号。")
    return text


class KnowledgeDesk:
    def __init__(
        self,
        admin: KnowledgeAdmin,
        index: IndexInspector,
        corrections: CorrectionStore,
        lexicon: LexiconStore,
        answerer: PolicyAnswerer,
        uow_factory: OfficeUnitOfWorkFactory,
        *,
        clock: Callable[[], datetime],
        jobs: BuildJobs | None = None,
    ) -> None:
        self._admin = admin
        self._index = index
        self._corrections = corrections
        self._lexicon = lexicon
        self._answerer = answerer
        self._uow_factory = uow_factory
        self._clock = clock
        self.jobs = jobs if jobs is not None else BuildJobs(admin, clock)

    def pages(self) -> list[DeskPage]:
        return [
            DeskPage("knowledge", "知识库", "/knowledge", ADMINS),
            DeskPage("log", "问答记录", "/log", ADMINS),
        ]

    # ------------------------------------------------------------------ documents

    def documents(self, actor: User) -> DocumentsView:
        require_admin(actor)
        described = self._index.describe()
        return DocumentsView(
            version=described.version,
            built_at=described.built_at,
            chunk_count=described.chunk_count,
            documents=described.documents,
            corrections=len(self._corrections.list_all()),
            build=self.jobs.current(),
            max_upload_bytes=self._admin.max_upload_bytes,
        )

    def chunks(self, actor: User, doc_id: str) -> ChunksView:
        """A document's passages as the index holds them; NotFound for one it does not."""
        require_admin(actor)
        document = next((d for d in self._index.describe().documents if d.doc_id == doc_id), None)
        chunks = self._index.chunks(doc_id) if document is not None else None
        if document is None or chunks is None:
            raise NotFound(UNKNOWN_DOCUMENT)
        return ChunksView(document, tuple(chunks))

    def hit_test(self, actor: User, question: str, top_k: int = 5) -> HitTest:
        """The passages a question finds, with their scores, and the answer the bot gives."""
        require_admin(actor)
        question = clean_text(question, "问题", low=1, high=MAX_QUESTION_CHARS)
        top_k = min(max(1, top_k), MAX_TOP_K)
        passages = tuple(self._index.passages(question, top_k))
        return HitTest(question, passages, self._answerer.answer(question))

    # ------------------------------------------------------------------ changes

    def check_upload(self, actor: User, file_name: str | None, size: int | None) -> str:
        """The stored name of an upload announced with ``size`` bytes, or AdminError."""
        require_admin(actor)
        if not file_name:
            raise AdminError(NO_FILE)
        return self._admin.check_upload(file_name, size)

    @property
    def max_upload_bytes(self) -> int:
        return self._admin.max_upload_bytes

    def upload(self, actor: User, file_name: str, path: Path) -> BuildStarted:
        """Check the received file by its content and store it; a build adds it."""
        require_admin(actor)
        stored = self._admin.store_upload(file_name, path)
        action = "已替换" if stored.replaced else "已加入知识库"
        job = self.jobs.start(actor, f"上传 {stored.file_name}")
        return BuildStarted(
            f"《{stored.title}》（{stored.file_name}）{action}，正在更新索引，期间问答照常进行。",
            job,
        )

    def remove(self, actor: User, file_name: str) -> BuildStarted:
        require_admin(actor)
        removed = self._admin.remove(file_name)
        job = self.jobs.start(actor, f"删除 {removed}")
        return BuildStarted(f"已删除文件“{removed}”，正在更新索引。", job)

    def rebuild(self, actor: User) -> BuildStarted:
        require_admin(actor)
        job = self.jobs.start(actor, "重新扫描知识库")
        return BuildStarted("正在重新扫描知识库并更新索引，期间问答照常进行。", job)

    def build_status(self, actor: User, job_id: str) -> BuildStatus:
        require_admin(actor)
        return self.jobs.status(job_id)

    # ------------------------------------------------------------------ conversation log

    def log(self, actor: User, view: QuestionView, page: int = 1) -> LogPage:
        """Questions asked on every channel, newest first (masked), with answer and rating."""
        require_admin(actor)
        page = max(1, page)
        with self._uow_factory(read_only=True) as uow:
            found = uow.exchanges.question_log(
                view, limit=LOG_PAGE_SIZE, offset=(page - 1) * LOG_PAGE_SIZE
            )
        entries = tuple(
            LogEntry(
                exchange_id=item.id,
                at=item.exchange.at,
                channel=item.exchange.channel,
                question=mask_sensitive(_question_of(item.exchange.inbound_text)),
                reply=mask_sensitive(item.exchange.reply_text),
                found=item.exchange.found,
                feedback=item.feedback,
                in_form=item.exchange.kind is ExchangeKind.FORM_QA,
                understood_as=mask_sensitive(understood_in(item.exchange.reply_text) or ""),
            )
            for item in found.items
        )
        pages = max(1, -(-found.total // LOG_PAGE_SIZE))
        return LogPage(view, entries, found.total, page, pages)

    def top_unanswered(
        self, actor: User, days: int = 7, limit: int = 10
    ) -> list[UnansweredQuestion]:
        """The questions most often left unanswered in the last ``days`` days."""
        require_admin(actor)
        now = self._clock()
        since = (now - timedelta(days=max(1, days) - 1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        with self._uow_factory(read_only=True) as uow:
            counted = uow.exchanges.top_unanswered(since, limit=limit)
        return [
            UnansweredQuestion(mask_sensitive(_question_of(text)), count) for text, count in counted
        ]

    # ------------------------------------------------------------------ corrections

    def correction_draft(self, actor: User, exchange_id: int) -> CorrectionDraft:
        """A correction form for a logged question (a follow-up: as it was understood)."""
        require_admin(actor)
        with self._uow_factory(read_only=True) as uow:
            logged = uow.exchanges.get(exchange_id)
        if logged is None or logged.exchange.kind not in (ExchangeKind.QA, ExchangeKind.FORM_QA):
            raise NotFound(UNKNOWN_EXCHANGE)
        exchange = logged.exchange
        question = understood_in(exchange.reply_text) or _question_of(exchange.inbound_text)
        return CorrectionDraft(
            exchange_id, mask_sensitive(question), mask_sensitive(exchange.reply_text)
        )

    def corrections(self, actor: User) -> list[Correction]:
        """Every correction, newest written first."""
        require_admin(actor)
        return sorted(self._corrections.list_all(), key=lambda c: c.written, reverse=True)

    def correction(self, actor: User, correction_id: str) -> Correction:
        require_admin(actor)
        found = self._corrections.get(correction_id)
        if found is None:
            raise NotFound(UNKNOWN_CORRECTION)
        return found

    def add_correction(
        self, actor: User, question: str, answer: str, source: str
    ) -> CorrectionSaved:
        """Store a correction (dated today, by ``actor``) and start the build applying it."""
        require_admin(actor)
        q, a, s = self._cleaned(question, answer, source)
        try:
            added = self._corrections.add(q, a, s, actor.display_name, self._clock().date())
        except KnowledgeError as refusal:
            raise AdminError(refusal.message) from None
        return CorrectionSaved(added, self.jobs.start(actor, "新增更正"))

    def edit_correction(
        self, actor: User, correction_id: str, question: str, answer: str, source: str
    ) -> CorrectionSaved:
        """Rewrite a correction; it is dated anew (the date it is cited with)."""
        current = self.correction(actor, correction_id)
        q, a, s = self._cleaned(question, answer, source)
        edited = replace(
            current,
            question=q,
            answer=a,
            source=s,
            author=actor.display_name,
            written=self._clock().date(),
        )
        try:
            self._corrections.replace(edited)
        except NotFoundError:
            raise NotFound(UNKNOWN_CORRECTION) from None
        return CorrectionSaved(edited, self.jobs.start(actor, "修改更正"))

    def remove_correction(self, actor: User, correction_id: str) -> BuildStarted:
        require_admin(actor)
        try:
            gone = self._corrections.remove(correction_id)
        except NotFoundError:
            raise NotFound(UNKNOWN_CORRECTION) from None
        job = self.jobs.start(actor, "删除更正")
        return BuildStarted(f"已删除对“{gone.question}”的更正，正在更新索引。", job)

    @staticmethod
    def _cleaned(question: str, answer: str, source: str) -> tuple[str, str, str]:
        return (
            clean_text(question, "问题", low=2, high=MAX_QUESTION_CHARS),
            clean_text(answer, "正确答案", low=2, high=MAX_ANSWER_CHARS, multiline=True),
            clean_text(source, "依据", low=2, high=MAX_SOURCE_CHARS),
        )

    # ------------------------------------------------------------------ lexicon

    def lexicon(self, actor: User) -> LexiconText:
        require_admin(actor)
        return self._lexicon.read()

    def save_lexicon(self, actor: User, text: str) -> LexiconText:
        """Validate and write the lexicon (nothing written when it does not validate), then
        apply it here at once; other processes apply it at their next index check."""
        require_admin(actor)
        try:
            saved = self._lexicon.save(text)
        except KnowledgeError as refusal:
            raise AdminError(refusal.message) from None
        log.info("lexicon saved by %s: %d entries", actor.display_name, len(saved.entries))
        self._admin.follow_published()
        return saved
