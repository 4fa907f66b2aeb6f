"""Ports: the plain data and the small protocols the conversation logic depends on.

Everything here is storage-agnostic: dataclasses and ``typing.Protocol``s only, no SQLAlchemy.
``cadrebot.storage`` implements the protocols (SQLite and PostgreSQL); the handler tests use
in-memory fakes. All calls are synchronous; the Telegram layer runs
:meth:`ConversationService.handle` in a worker thread.

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

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
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


class UserRepository(Protocol):
    def get(self, user_id: int) -> User | None: ...

    def find(self, channel: str, external_id: str) -> User | None: ...

    def get_or_create(self, channel: str, external_id: str, display_name: str) -> User:
        """The user, created as a FARMER if new. Updates ``display_name`` if it changed."""
        ...

    def set_role(self, user_id: int, role: Role, township: str | None, village: str | None) -> User:
        """Assign role and jurisdiction. Raises :class:`NotFoundError` for an unknown id."""
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


class PolicyAnswer(Protocol):
    """What the Q&A module returns: the reply text (with citations), whether the knowledge
    base had an answer, and the cited chunk ids."""

    @property
    def text(self) -> str: ...

    @property
    def found(self) -> bool: ...

    @property
    def chunk_ids(self) -> Sequence[str]: ...


class PolicyAnswerer(Protocol):
    def answer(self, question: str) -> PolicyAnswer: ...


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Option:
    """A choice the user can tap. ``payload`` is what comes back as the user's text."""

    label: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One outgoing message. Channels render ``options`` their own way (Telegram: buttons;
    console: numbered lines); ``options`` are hints, typing the text always works too."""

    text: str
    options: tuple[Option, ...] = ()
    multi_select: bool = False  # options toggle; the user finishes with 完成


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
    def __call__(self) -> OfficeUnitOfWork: ...
