"""Ports: the plain data and the small protocols the conversation logic depends on.

Everything here is storage-agnostic: dataclasses and ``typing.Protocol``s only, no SQLAlchemy.
``cadrebot.storage`` implements the protocols (SQLite and PostgreSQL; the handler tests run
on a real temporary SQLite database). All calls are synchronous; channels run
:meth:`ConversationService.turn` in a worker thread.

Transactions
------------
Every repository belongs to one :class:`UnitOfWork`, which is one database transaction::

    with uow_factory() as uow:            # BEGIN
        with uow.dialogs.locked(key):     # serialise this conversation (SELECT ... FOR UPDATE)
            state = uow.dialogs.load(key)
            ...
            case = uow.cases.create(new_case)
            uow.dialogs.delete(key)
        uow.commit()                      # COMMIT: the case is filed AND the dialog cleared
    # leaving the ``with`` without commit() rolls back (also on exceptions)

So "file the case and clear the dialog state" is atomic: nothing half-entered becomes a case
and nothing submitted is lost.

Times
-----
All ``datetime`` values are timezone-aware (the service's clock decides the zone, normally
Asia/Shanghai). Implementations must hand back aware datetimes equal to what they were given
(SQLite: store as ISO text or UTC and convert back). ``date`` values are calendar dates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeAlias

JSONValue: TypeAlias = str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value that survives ``json.dumps``/``json.loads`` unchanged (store as a JSON column)."""


# --------------------------------------------------------------------------- errors


class ConcurrentUpdateError(Exception):
    """An optimistic version / status check failed: someone else changed the row first."""


class NotFoundError(LookupError):
    """The addressed row does not exist."""


# --------------------------------------------------------------------------- users


class Role(StrEnum):
    FARMER = "farmer"  # default for everyone who writes to the bot
    CADRE = "cadre"  # 乡镇/村干部: works the cases of their jurisdiction
    ADMIN = "admin"  # county operator: sees and works every case, unmasked


@dataclass(frozen=True)
class User:
    """One person on one channel. ``(channel, external_id)`` is unique."""

    id: int
    channel: str  # "telegram", "console", ...
    external_id: str  # the channel's user id, as text
    display_name: str
    role: Role = Role.FARMER
    township: str | None = None  # 乡镇 of a cadre's jurisdiction (None: not assigned)
    village: str | None = None  # 村; None for a township-level cadre
    # The jurisdiction as place-register ids (see ``handlers/places.py``); access goes by
    # these. A cadre with a township but no township_id was not matched to the register.
    township_id: str | None = None
    village_id: str | None = None  # None: the village is not registered (or none)


class UserRepository(Protocol):
    def get(self, user_id: int) -> User | None: ...

    def find(self, channel: str, external_id: str) -> User | None: ...

    def get_or_create(self, channel: str, external_id: str, display_name: str) -> User:
        """The user, created as a FARMER if new. Updates ``display_name`` if it changed."""
        ...

    def set_role(
        self,
        user_id: int,
        role: Role,
        township: str | None,
        village: str | None,
        *,
        township_id: str | None = None,
        village_id: str | None = None,
    ) -> User:
        """Assign role and jurisdiction (names and register ids). Raises
        :class:`NotFoundError` for an unknown id."""
        ...


# --------------------------------------------------------------------------- dialogs


@dataclass(frozen=True)
class ConversationKey:
    """One chat on one channel (a Telegram chat id, a console session name)."""

    channel: str
    chat_id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat_id}"


class DialogPhase(StrEnum):
    ASKING = "asking"  # walking through the fields in order
    SUMMARY = "summary"  # showing all answers, waiting for 确认提交 or a field to change
    EDITING = "editing"  # re-asking one field chosen from the summary; back to SUMMARY after


@dataclass(frozen=True)
class DialogState:
    """An intake form in progress for one conversation (at most one per conversation).

    ``answers`` and ``scratch`` are JSON-serialisable; store each as a JSON column.
    ``scratch`` is the form engine's bookkeeping (history of asked fields for 返回, a
    multi-choice selection being toggled, ...): opaque to storage, persist it verbatim.
    """

    key: ConversationKey
    form_name: str
    current_field: str | None
    phase: DialogPhase
    answers: dict[str, JSONValue]
    started_at: datetime
    updated_at: datetime
    scratch: dict[str, JSONValue] = field(default_factory=dict)
    version: int = 0
    """0 for a state never saved; otherwise the version last read from / written to storage."""


class DialogStateRepository(Protocol):
    def load(self, key: ConversationKey) -> DialogState | None: ...

    def save(self, state: DialogState) -> DialogState:
        """Insert or update; return the state with its new version (stored version + 1).

        Optimistic check: ``state.version`` must equal the stored version (0 = no row yet),
        else :class:`ConcurrentUpdateError`. The first save therefore returns version 1.
        """
        ...

    def delete(self, key: ConversationKey) -> None:
        """Remove the conversation's dialog state; no-op if there is none."""
        ...

    def idle_since(self, before: datetime, *, limit: int = 100) -> Sequence[DialogState]:
        """Dialog states last updated before ``before``, oldest first (the clean-up)."""
        ...

    def locked(self, key: ConversationKey) -> AbstractContextManager[None]:
        """Serialise all work on one conversation.

        Must work whether or not a dialog row exists yet (e.g. lock a per-conversation
        row in a lock table with ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
        serialises writers anyway, so ``BEGIN IMMEDIATE`` or a process-local lock will do).
        The lock is held until the ``with`` block exits (a commit inside the block does
        not release it) and past that until the transaction open then ends, as a row lock
        is: so ``commit()`` right after the block still commits under the lock.
        """
        ...


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class NewCase:
    """What the handlers file; the repository assigns ``id`` and ``number``."""

    case_type: str  # "risk_report" | "subsidy"
    number_prefix: str  # "FX" (risk_report) | "JB" (subsidy)
    status: str  # initial status, e.g. "已受理", "已申报", "预登记"
    fields: dict[str, JSONValue]
    submitter_id: int
    township: str
    village: str
    submitted_at: datetime
    due_dates: dict[str, date] = field(default_factory=dict)
    township_id: str | None = None  # place-register ids; None: waits for an admin to assign
    village_id: str | None = None


@dataclass(frozen=True)
class Case:
    id: int
    number: str  # "<prefix>-<year of submitted_at>-<6-digit sequence per prefix+year>"
    case_type: str
    status: str
    fields: dict[str, JSONValue]
    submitter_id: int
    township: str
    village: str
    submitted_at: datetime
    updated_at: datetime
    due_dates: dict[str, date] = field(default_factory=dict)  # e.g. {"识别认定": date(...)}
    township_id: str | None = None  # place-register ids; None: unassigned
    village_id: str | None = None


@dataclass(frozen=True)
class CaseEvent:
    case_id: int
    actor_id: int | None  # None for the system
    at: datetime
    from_status: str | None  # None for the creation event
    to_status: str
    note: str = ""


@dataclass(frozen=True)
class CaseQuery:
    """Filter for case lists. ``None`` means "any". All given conditions must hold."""

    township: str | None = None
    village: str | None = None
    statuses: frozenset[str] | None = None
    case_type: str | None = None
    submitter_id: int | None = None
    township_id: str | None = None  # place-register ids (how access filters)
    village_id: str | None = None
    unassigned: bool = False  # only cases with no township id (the admins' queue)


@dataclass(frozen=True)
class CasePage:
    items: Sequence[Case]  # newest submitted first, ties by id descending
    total: int  # matching cases in all pages


class CaseRepository(Protocol):
    def create(self, new: NewCase) -> Case:
        """Insert the case with a fresh number and append its creation event
        (``from_status=None, to_status=new.status, actor_id=new.submitter_id``).

        Numbers are unique and gap-tolerant: ``FX-2026-000001``, ``FX-2026-000002``, ...
        counted per (prefix, year) and safe under concurrent creates.
        """
        ...

    def get(self, number: str) -> Case | None: ...

    def list_cases(self, query: CaseQuery, *, limit: int = 20, offset: int = 0) -> CasePage: ...

    def transition(
        self,
        number: str,
        *,
        expected_status: str,
        to_status: str,
        actor_id: int | None,
        at: datetime,
        note: str = "",
        due_dates: Mapping[str, date] | None = None,
    ) -> Case:
        """Change the status, merge ``due_dates`` into the case's, append the event: atomic.

        Raises :class:`NotFoundError` for an unknown number and
        :class:`ConcurrentUpdateError` if the current status is not ``expected_status``.
        Legality of the transition is the caller's business (``handlers.cases``).
        """
        ...

    def events(self, number: str) -> Sequence[CaseEvent]:
        """The case's history, oldest first; empty for an unknown number."""
        ...

    def due_before(
        self, query: CaseQuery, before: date, *, due_names: frozenset[str] | None = None
    ) -> Sequence[Case]:
        """Cases matching ``query`` that have a due date (any of ``due_names``, or any at
        all) strictly before ``before``; ordered by their earliest such due date."""
        ...

    def assign(
        self,
        number: str,
        *,
        township: str,
        township_id: str,
        village: str,
        village_id: str | None,
        actor_id: int | None,
        at: datetime,
    ) -> Case:
        """Put the case in a jurisdiction (the admins' unassigned queue) and record it in
        its history; :class:`NotFoundError` for an unknown number."""
        ...


# --------------------------------------------------------------------------- exchange log


class ExchangeKind(StrEnum):
    COMMAND = "command"  # /start, /help, /mycases, ...
    FORM = "form"  # a step of an intake form
    QA = "qa"  # policy question answered from the knowledge base
    FORM_QA = "form_qa"  # policy question asked in the middle of a form
    ERROR = "error"  # we failed; the user got an apology


@dataclass(frozen=True)
class Exchange:
    """One inbound message and what we replied (all reply texts joined by blank lines)."""

    channel: str
    chat_id: str
    user_id: int | None
    at: datetime
    inbound_text: str  # masked with ``masking.mask_sensitive`` before it gets here
    reply_text: str  # likewise masked
    kind: ExchangeKind
    found: bool | None = None  # Q&A only: did the knowledge base have an answer
    chunk_ids: tuple[str, ...] = ()  # Q&A only: the cited chunks
    latency_ms: int = 0
    kb_version: str | None = None  # index build the answer came from, if known


class ExchangeLog(Protocol):
    def record(self, exchange: Exchange) -> int:
        """Log ``exchange``; its id (feedback buttons refer to it)."""
        ...


# --------------------------------------------------------------------------- unit of work


class UnitOfWork(Protocol):
    """One transaction spanning all repositories. Use as a context manager.

    ``__exit__`` rolls back whatever was not committed (always, not only on exceptions).
    ``commit()`` may be called more than once; each call commits the work so far, and
    later work runs in a new transaction.
    """

    # Read-only properties, so implementations may use their concrete repository types.
    @property
    def users(self) -> UserRepository: ...

    @property
    def dialogs(self) -> DialogStateRepository: ...

    @property
    def cases(self) -> CaseRepository: ...

    @property
    def exchanges(self) -> ExchangeLog: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        """A new unit of work. ``read_only``: for reads alone, with no transaction around
        them (each read sees what is committed when it runs; no locks, no commit): cheaper
        on a server database, and on SQLite it does not wait for the write lock."""
        ...


# --------------------------------------------------------------------------- Q&A

NOT_FOUND_TEXT = "知识库中没有找到相关规定。"
""":attr:`PolicyAnswer.answer` when the knowledge base has no answer."""


@dataclass(frozen=True)
class Citation:
    """A passage an answer quotes, with where it stands."""

    doc_title: str
    doc_number: str
    section: str
    text: str
    score: float
    level: str = ""
    region: str = ""
    responsible: str = ""
    chunk_id: str = ""
    # An admin's correction (a curated passage): ``doc_title`` is 县乡村振兴局解答，<date>
    # and ``section`` the source the admin gave.
    curated: bool = False

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "doc_title": self.doc_title,
            "doc_number": self.doc_number,
            "section": self.section,
            "text": self.text,
            "score": round(self.score, 6),
            "level": self.level,
            "region": self.region,
            "responsible": self.responsible,
            "chunk_id": self.chunk_id,
        }

    def label(self) -> str:
        """文件标题（文号）› 章节 › 条目 — the way a cadre quotes it; a correction as
        县乡村振兴局解答，<date>（依据：<source>）."""
        if self.curated:
            return f"{self.doc_title}（依据：{self.section}）" if self.section else self.doc_title
        title = f"《{self.doc_title}》" + (f"（{self.doc_number}）" if self.doc_number else "")
        return f"{title} › {self.section}" if self.section else title


MAX_SUGGESTION_CHARS = 16
"""The longest suggested question: it travels as a button's command (Telegram gives a button
64 bytes of data, ``c:/ask `` and 3 bytes a Chinese character)."""


@dataclass
class PolicyAnswer:
    """What the Q&A module returns: the answer body, whether the knowledge base had an
    answer, and the passages it cites (best first)."""

    question: str
    found: bool
    answer: str  # the answer body: sentences from the documents, or the not-found message
    citations: list[Citation] = field(default_factory=list)
    latency_ms: float = 0.0
    kb_version: str = ""  # the index version that answered
    # Not found, but the documents treat the topic: ``answer`` says what they do not give,
    # then 相关规定：… , and the first citation is where that related passage stands.
    related: bool = False
    # Questions the reader may ask next (found answers only; each at most
    # MAX_SUGGESTION_CHARS long, so it fits a button): the neighbouring items of the cited
    # passage's section.
    suggestions: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The chat reply: the answer with its citations (:func:`handlers.qa.render_answer`)."""
        # Imported here: qa imports this module.
        from cadrebot.handlers.qa import render_answer

        return render_answer(self)

    @property
    def chunk_ids(self) -> list[str]:
        return [c.chunk_id for c in self.citations]

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "found": self.found,
            "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "latency_ms": round(self.latency_ms, 3),
            "related": self.related,
            "suggestions": list(self.suggestions),
        }


class PolicyAnswerer(Protocol):
    def answer(self, question: str) -> PolicyAnswer: ...


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Option:
    """An answer to the question being asked (a form choice). ``payload`` is what comes back
    as the user's text when it is tapped."""

    label: str
    payload: str


class ActionKind(StrEnum):
    FEEDBACK = "feedback"  # rate an answer: channels without buttons may leave it out
    SOURCES = "sources"  # more sources of an answer
    NAVIGATE = "navigate"  # open or page through something (a case, a case list)
    STEP = "step"  # change something (a case's status)
    START = "start"  # start a form or a command (立即申报)


@dataclass(frozen=True)
class Action:
    """Something the user can do about a reply (a button). ``command`` is sent back through
    the conversation core as the user's text, so typing it works the same as tapping."""

    label: str
    command: str
    kind: ActionKind = ActionKind.NAVIGATE


@dataclass(frozen=True)
class Reply:
    """One outgoing message. Channels render ``options`` and ``actions`` their own way
    (Telegram: buttons; console: numbered lines and commands to type); typing works too.

    ``selected``: the options of a multi-choice question chosen so far (marked ✓).
    ``replaces_origin``: when the turn came from a button, this reply is the new content of
    the message that button belongs to (a toggled choice, the next page of a list).
    ``expects_reply``: the next message is the answer to this one (Telegram: ForceReply);
    the channel passes this reply's text back as ``replying_to``.
    """

    text: str
    options: tuple[Option, ...] = ()
    multi_select: bool = False  # options toggle; the user finishes with 完成
    selected: tuple[str, ...] = ()
    actions: tuple[Action, ...] = ()
    replaces_origin: bool = False
    expects_reply: bool = False
    is_answer: bool = False  # a policy answer (it takes 👍/👎 and 更多出处)


# --------------------------------------------------------------------------- back office
# What the admin commands, invites and the cadre desk need beyond the conversation turn.
# A separate, richer unit of work so the conversation logic keeps depending on the small one.


class UserDirectory(UserRepository, Protocol):
    def list_users(self, *, roles: frozenset[Role], channel: str | None = None) -> Sequence[User]:
        """Users with one of ``roles`` (on ``channel`` if given), ordered by id."""
        ...


@dataclass(frozen=True)
class NewInvite:
    code: str
    township: str
    village: str | None
    created_by_id: int | None
    created_at: datetime
    expires_at: datetime | None = None
    role: Role = Role.CADRE
    township_id: str | None = None  # place-register ids of the jurisdiction
    village_id: str | None = None


@dataclass(frozen=True)
class InviteCode:
    code: str
    township: str
    village: str | None
    role: Role
    created_by_id: int | None
    created_at: datetime
    expires_at: datetime | None = None
    used_by_id: int | None = None
    used_at: datetime | None = None
    revoked: bool = False
    township_id: str | None = None
    village_id: str | None = None

    def usable(self, now: datetime) -> bool:
        return (
            not self.revoked
            and self.used_by_id is None
            and (self.expires_at is None or now < self.expires_at)
        )


class InviteRepository(Protocol):
    def create(self, invite: NewInvite) -> InviteCode:
        """Insert a new code; :class:`ConcurrentUpdateError` if the code already exists."""
        ...

    def get(self, code: str) -> InviteCode | None: ...

    def redeem(self, code: str, user_id: int, at: datetime) -> InviteCode:
        """Mark an unused, unrevoked code as used by ``user_id`` (compare-and-set).

        :class:`NotFoundError` for an unknown code, :class:`ConcurrentUpdateError` if it was
        used or revoked in the meantime. Expiry is the caller's check.
        """
        ...

    def revoke(self, code: str) -> InviteCode:
        """Revoke the code (idempotent); :class:`NotFoundError` for an unknown code."""
        ...

    def list_codes(self, *, include_closed: bool = False) -> Sequence[InviteCode]:
        """Newest first; without ``include_closed`` only unused, unrevoked codes."""
        ...


class Feedback(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class LoggedExchange:
    """An exchange as stored, with its id and the user's rating."""

    id: int
    exchange: Exchange
    feedback: Feedback | None = None


@dataclass(frozen=True)
class QuestionStat:
    """One policy question in the log (for /stats)."""

    at: datetime
    found: bool | None
    feedback: Feedback | None


class ExchangeRecords(ExchangeLog, Protocol):
    def latest(self, key: ConversationKey, kinds: frozenset[ExchangeKind]) -> LoggedExchange | None:
        """The conversation's most recent exchange of one of ``kinds``."""
        ...

    def get(self, exchange_id: int) -> LoggedExchange | None: ...

    def set_feedback(self, exchange_id: int, feedback: Feedback) -> None:
        """Rate an exchange (a later rating replaces an earlier one); NotFoundError if unknown."""
        ...

    def questions_since(self, since: datetime) -> Sequence[QuestionStat]:
        """Policy questions (``qa`` and ``form_qa``) at or after ``since``, oldest first."""
        ...

    def top_unanswered(self, since: datetime, limit: int = 5) -> Sequence[tuple[str, int]]:
        """The most frequent questions the knowledge base had no answer to, with counts."""
        ...

    def question_log(
        self, view: QuestionView, *, limit: int = 20, offset: int = 0
    ) -> QuestionLogPage:
        """Policy questions (``qa`` and ``form_qa``) of ``view``, newest first, one page."""
        ...


class QuestionView(StrEnum):
    """Which logged questions the admins' conversation log shows."""

    ALL = "all"
    UNANSWERED = "unanswered"  # the knowledge base had no answer (found is false)
    THUMBS_DOWN = "thumbs_down"  # rated 👎


@dataclass(frozen=True)
class QuestionLogPage:
    items: Sequence[LoggedExchange]  # newest first
    total: int  # matching questions in all pages


@dataclass(frozen=True)
class KbVersion:
    """One published build of the knowledge-base index."""

    version_id: str
    built_at: datetime
    doc_count: int
    chunk_count: int
    status: str = "active"  # "active" (serving) or "superseded"


class KbVersionRepository(Protocol):
    def record(self, version: KbVersion) -> None:
        """Insert or update the build; recording an active one marks all others superseded."""
        ...

    def recent(self, limit: int = 5) -> Sequence[KbVersion]:
        """Newest build first."""
        ...


class OfficeUnitOfWork(UnitOfWork, Protocol):
    """The unit of work of the admin commands, invites and the cadre desk."""

    @property
    def users(self) -> UserDirectory: ...

    @property
    def exchanges(self) -> ExchangeRecords: ...

    @property
    def invites(self) -> InviteRepository: ...

    @property
    def kb_versions(self) -> KbVersionRepository: ...


class OfficeUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> OfficeUnitOfWork:
        """A new unit of work; ``read_only`` as for :class:`UnitOfWorkFactory`."""
        ...


# --------------------------------------------------------------------------- case board
# The web case desk (handlers/case_board.py) filters, counts and pages in the database: with
# 100,000 cases nothing may be loaded whole into Python.


@dataclass(frozen=True)
class OpenDue:
    """A due date that still matters: ``name`` on a case of ``case_type`` in ``status``
    (from the workflows' ``open_dues``)."""

    case_type: str
    status: str
    name: str


@dataclass(frozen=True)
class DueWindow:
    """An open due date (one of ``open_dues``) on or after ``start`` and before ``end``
    (either bound may be None)."""

    open_dues: frozenset[OpenDue]
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class CaseSearch:
    """A case list filter: ``scope`` (access and the simple filters) and all of the rest."""

    scope: CaseQuery
    text: str | None = None  # a substring of the case number or of the applicant's name
    name_fields: tuple[str, ...] = ()  # the case fields that hold the applicant's name
    filed_from: datetime | None = None  # inclusive
    filed_before: datetime | None = None  # exclusive
    due: DueWindow | None = None


@dataclass(frozen=True)
class DueEntry:
    """One open due date of a case, with what a list of them shows of the case."""

    number: str
    case_type: str
    status: str
    township: str
    village: str
    name: str
    due_on: date


class CaseBoardRepository(CaseRepository, Protocol):
    def search(self, search: CaseSearch, *, limit: int, offset: int) -> CasePage:
        """One page of the matching cases (newest submitted first) and their total."""
        ...

    def status_counts(self, search: CaseSearch) -> Sequence[tuple[str, str, int]]:
        """``(case_type, status, count)`` of the matching cases."""
        ...

    def township_counts(self, search: CaseSearch) -> Sequence[tuple[str | None, int]]:
        """``(township_id, count)`` of the matching cases (None: unassigned)."""
        ...

    def due_entries(
        self, search: CaseSearch, window: DueWindow, *, limit: int
    ) -> tuple[Sequence[DueEntry], int]:
        """The first ``limit`` open due dates of matching cases inside ``window`` (soonest
        first, then by case number) and how many there are in all."""
        ...

    def weekly_counts(
        self,
        search: CaseSearch,
        bounds: Sequence[datetime],
        closing: frozenset[tuple[str, str]],
    ) -> tuple[list[int], list[int]]:
        """Per period ``[bounds[i], bounds[i+1])``: matching cases filed, and matching cases
        that entered a closing ``(case_type, status)``."""
        ...


class CaseBoardUnitOfWork(OfficeUnitOfWork, Protocol):
    @property
    def cases(self) -> CaseBoardRepository: ...


# --------------------------------------------------------------------------- knowledge base
# What the knowledge-base administration needs of the index and of the knowledge folder.
# The indexer package implements both (its ``published`` and ``folder`` modules).

BuildProgress: TypeAlias = Callable[[int, int], None]
"""Called with (passages embedded so far, passages to embed) while an index builds."""


class KnowledgeError(Exception):
    """The knowledge folder refuses a document, or the index cannot be built from it.
    ``message`` is Chinese and says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BuildSummary:
    """What an index build did."""

    version: str | None  # the serving version after the build (None: nothing built)
    documents: int = 0
    chunks: int = 0
    embedded: int = 0  # passages embedded by the model in this build
    reused: int = 0  # passages taken from the embedding cache
    seconds: float = 0.0
    up_to_date: bool = False  # nothing had changed: no new version
    added: tuple[str, ...] = ()  # document ids
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexedDocument:
    """One document of the published index."""

    source: str  # its file name in the knowledge folder
    title: str
    doc_number: str
    content_hash: str
    chunks: int


@dataclass(frozen=True)
class IndexOverview:
    """The published index: ``version`` is None when none has been built yet."""

    version: str | None = None
    built_at: datetime | None = None
    chunk_count: int = 0
    documents: tuple[IndexedDocument, ...] = ()


@dataclass(frozen=True)
class IndexHit:
    """One passage a search found, with its scores (for the admin's hit test)."""

    score: float  # fused score, comparable only within one query
    dense: float  # cosine similarity of query and passage
    lexical: float  # BM25 score
    coverage: float  # share of the query's terms present in the passage
    doc_title: str
    section: str  # heading path, "一、… › 1. …"; empty for none
    text: str


class KnowledgeIndex(Protocol):
    """The search index built from the knowledge folder."""

    def build(self, progress: BuildProgress | None = None) -> BuildSummary:
        """Index what changed in the folder and publish it as a new version (the serving
        searcher keeps the old one until :meth:`reload_if_changed`). Raises
        :class:`KnowledgeError` if a document cannot be read."""
        ...

    def reload_if_changed(self) -> bool:
        """Switch the searcher to a newer published version; True when it did."""
        ...

    def overview(self) -> IndexOverview: ...

    def hit_test(self, query: str, top_k: int = 5) -> Sequence[IndexHit]: ...


@dataclass(frozen=True)
class StoredDocument:
    file_name: str
    replaced: bool  # a document of that name was there before
    title: str


class KnowledgeFolder(Protocol):
    """The folder of policy documents the index is built from (and its catalog)."""

    @property
    def max_upload_bytes(self) -> int: ...

    def document_names(self) -> Sequence[str]:
        """The file names of the documents, sorted."""
        ...

    def check_upload(self, file_name: str, size: int | None) -> str:
        """The name an announced upload would be stored under; raises :class:`KnowledgeError`
        if its name, type or size is refused or another document has the same stem."""
        ...

    def store_upload(self, file_name: str, downloaded: Path) -> StoredDocument:
        """Check the downloaded file (as :meth:`check_upload`, and that it has readable text)
        and move it into the folder, adding a catalog entry read from its header unless the
        catalog has one. Raises :class:`KnowledgeError` if refused."""
        ...

    def remove(self, file_name: str) -> None:
        """Delete a document (one of :meth:`document_names`) and its catalog entry."""
        ...


# --------------------------------------------------------------------------- knowledge console
# What the admins' knowledge console (handlers/knowledge_desk.py) reads beyond the
# administration's ports: the loaded index in detail, the corrections and the lexicon file.
# The indexer implements them (inspection.py, corrections.py, lexicon_file.py).

CORRECTIONS_FILE = "corrections.toml"
"""The admins' corrections, kept in the knowledge folder and indexed as a curated document."""
CURATED_LABEL = "县乡村振兴局解答"
"""How an answer cites a correction: 县乡村振兴局解答，<the date it was written>."""
CURATED_DOC_ID = "curated:corrections"
"""The corrections' document id in the index (a colon is never in an uploaded file's name)."""


@dataclass(frozen=True)
class DocumentInfo:
    """One document of the knowledge folder and of the index version answering now."""

    doc_id: str  # the file name without suffix (the curated document: see ``curated``)
    source: str  # file name in the knowledge folder
    title: str
    doc_number: str
    level: str
    region: str
    date: str
    chunks: int  # passages in the loaded index (0: not indexed)
    indexed: bool  # in the loaded index version
    in_folder: bool  # False: deleted from the folder, in the index until the next build
    curated: bool = False  # the admins' corrections


@dataclass(frozen=True)
class IndexDescription:
    version: str | None  # the version answering now (None: no index loaded)
    built_at: datetime | None
    chunk_count: int
    documents: tuple[DocumentInfo, ...]


@dataclass(frozen=True)
class ChunkInfo:
    """A passage as the indexer split it."""

    chunk_id: str
    position: int
    kind: str  # "item", "paragraph", "table_row", "heading"
    section: tuple[str, ...]  # heading path, outermost first
    responsible: str  # 责任单位 the item names
    text: str
    cells: tuple[tuple[str, str], ...] = ()  # a table row: (column header, value) pairs
    part: str = ""  # "2/3": the second of three passages a long item was split into


@dataclass(frozen=True)
class PassageHit:
    """A passage a hit test found, with every score the search computed."""

    doc_id: str
    doc_title: str
    doc_number: str
    section: str
    text: str
    chunk_id: str
    score: float  # the final ranking score: fused rank score + sentence rerank
    dense: float  # cosine of question and passage
    lexical: float  # BM25
    coverage: float  # idf-weighted share of the question's terms the passage carries
    best_sentence: float  # the best single sentence's score (what the answer quotes)
    curated: bool = False


class IndexInspector(Protocol):
    """The index version answering now, as the admins' console shows it."""

    def describe(self) -> IndexDescription: ...

    def chunks(self, doc_id: str) -> Sequence[ChunkInfo] | None:
        """The document's passages in order; None for a document the index does not hold."""
        ...

    def passages(self, query: str, top_k: int = 5) -> Sequence[PassageHit]: ...


@dataclass(frozen=True)
class Correction:
    """An admin's answer to a question the knowledge base answered wrongly or not at all."""

    id: str
    question: str
    answer: str
    source: str  # what the answer rests on, as the admin wrote it (plain text)
    author: str
    written: date  # when it was written or last edited: cited as 县乡村振兴局解答，<date>


class CorrectionStore(Protocol):
    """The corrections file (shared by every process through the knowledge folder)."""

    def list_all(self) -> Sequence[Correction]:
        """Oldest first."""
        ...

    def get(self, correction_id: str) -> Correction | None: ...

    def add(
        self, question: str, answer: str, source: str, author: str, written: date
    ) -> Correction:
        """Store a new correction under a fresh id."""
        ...

    def replace(self, correction: Correction) -> None:
        """Overwrite the correction of that id; :class:`NotFoundError` for an unknown id."""
        ...

    def remove(self, correction_id: str) -> Correction:
        """Delete it and hand it back; :class:`NotFoundError` for an unknown id."""
        ...


@dataclass(frozen=True)
class LexiconEntry:
    """One everyday phrase of the lexicon and the policy terms it stands for."""

    table: str  # "everyday.<area>" or "abbreviations"
    phrase: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class LexiconText:
    """The lexicon file as written, and its entries."""

    text: str
    entries: tuple[LexiconEntry, ...]
    problem: str = ""  # why the file as it is does not validate (Chinese); "" when it does


class LexiconStore(Protocol):
    def read(self) -> LexiconText: ...

    def save(self, text: str) -> LexiconText:
        """Validate and write the file atomically; :class:`KnowledgeError` (Chinese, says
        where) and nothing written when it does not validate."""
        ...
