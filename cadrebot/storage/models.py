"""ORM models of the case database (SQLAlchemy 2.x typed declarative mapping).

The schema is owned by the Alembic migrations in ``cadrebot/storage/migrations``; these models
must stay in step with them (a test runs autogenerate's ``compare_metadata`` to check).
Enumerated values are plain strings guarded by CHECK constraints rather than native
PostgreSQL enums, so adding a value later is a one-line migration on both backends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

# Deterministic constraint names: Alembic needs them to drop/alter constraints, and both
# backends then agree on the names the migration created.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("farmer", "cadre", "admin")
CASE_TYPES = ("risk_report", "subsidy")
FEEDBACK_VALUES = ("up", "down")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends.

    SQLite has no timezone-aware type and hands back naive datetimes; this type stores UTC
    and always returns aware UTC values, so comparisons never mix naive and aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        CheckConstraint(_in("role", ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))  # "telegram", "console", …
    external_id: Mapped[str] = mapped_column(String(128))  # the channel's own user id
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="farmer")
    # Jurisdiction of a cadre: a township (乡镇) and optionally one village (村) in it.
    township: Mapped[str | None] = mapped_column(String(100))
    village: Mapped[str | None] = mapped_column(String(100))
    # The same as place-register ids (handlers/places.py); access goes by these.
    township_id: Mapped[str | None] = mapped_column(String(64))
    village_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExchangeRow(Base):
    """One inbound message and the reply to it (the Q&A log, later rated 👍/👎)."""

    __tablename__ = "exchanges"
    __table_args__ = (
        CheckConstraint(f"feedback IS NULL OR {_in('feedback', FEEDBACK_VALUES)}", name="feedback"),
        Index(None, "channel", "chat_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The conversation key: one chat on one channel.
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # "command", "form", "qa", "form_qa", "error"
    inbound_text: Mapped[str] = mapped_column(Text)
    reply_text: Mapped[str] = mapped_column(Text)
    found: Mapped[bool | None] = mapped_column(Boolean)
    cited_chunk_ids: Mapped[list[str]] = mapped_column(default=list)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    kb_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    feedback: Mapped[str | None] = mapped_column(String(8))  # "up" / "down", rated later


class ConversationLockRow(Base):
    """One row per conversation ever seen, never deleted: the target of the per-conversation
    ``SELECT ... FOR UPDATE`` (the dialog row itself can't be: it comes and goes)."""

    __tablename__ = "conversation_locks"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class DialogStateRow(Base):
    """The intake dialog in progress in one conversation (at most one row per conversation)."""

    __tablename__ = "dialog_states"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    form_name: Mapped[str] = mapped_column(String(64))
    current_field: Mapped[str | None] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(16))  # "asking", "summary", "editing"
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scratch: Mapped[dict[str, Any]] = mapped_column(default=dict)  # form engine bookkeeping
    started_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    # Optimistic locking: every save must name the version it read (checked in the UPDATE).
    version: Mapped[int] = mapped_column(Integer)


class CaseCounterRow(Base):
    """Last sequence number handed out per case-number prefix and year.

    Bumped with one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, which row-locks the
    counter until commit, so two workers never get the same number.
    """

    __tablename__ = "case_counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)  # "FX", "JB"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("number"),
        CheckConstraint(_in("case_type", CASE_TYPES), name="case_type"),
        Index(None, "township", "village", "status"),
        Index(None, "township_id", "village_id", "status"),
        Index(None, "submitter_id"),
        Index(None, "submitted_at"),
        Index(None, "status", "case_type"),  # counts by status, open due dates (case board)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_type: Mapped[str] = mapped_column(String(32))
    number: Mapped[str] = mapped_column(String(32))  # FX-2026-000123, JB-2026-000045
    status: Mapped[str] = mapped_column(String(32))
    # Form answers, stored whole (identity-card numbers included; never logged).
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    township: Mapped[str] = mapped_column(String(100))
    village: Mapped[str] = mapped_column(String(100))
    # Place-register ids; a NULL township_id is the admins' unassigned queue.
    township_id: Mapped[str | None] = mapped_column(String(64))
    village_id: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()

    due_dates: Mapped[list[CaseDueDateRow]] = relationship(
        back_populates="case",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CaseDueDateRow.name",
    )


class CaseDueDateRow(Base):
    """A named deadline of a case (e.g. 识别认定 by 2026-05-30); queried by date."""

    __tablename__ = "case_due_dates"
    __table_args__ = (Index(None, "due_on"),)

    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    due_on: Mapped[date] = mapped_column(Date)

    case: Mapped[CaseRow] = relationship(back_populates="due_dates")


class CaseEventRow(Base):
    """Append-only history of a case; rows are never updated (enforced by a mapper hook)."""

    __tablename__ = "case_events"
    __table_args__ = (
        Index(None, "case_id", "at"),
        # Cases closed per week (the case board), read from the index alone.
        Index(None, "to_status", "at", "case_id", "from_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")


class InviteCodeRow(Base):
    """Codes a cadre gives out to register others for a township/village (Telegram later)."""

    __tablename__ = "invite_codes"
    __table_args__ = (UniqueConstraint("code"), CheckConstraint(_in("role", ROLES), name="role"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    township: Mapped[str | None] = mapped_column(String(100))
    village: Mapped[str | None] = mapped_column(String(100))
    township_id: Mapped[str | None] = mapped_column(String(64))
    village_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="cadre")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    used_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class KbVersionRow(Base):
    """One build of the knowledge-base index."""

    __tablename__ = "kb_versions"

    version_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    doc_count: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="building")


INBOX_STATUSES = ("pending", "done", "failed")


class InboundUpdateRow(Base):
    """A Telegram update received by a webhook worker, kept until processed (the inbox).

    Keyed by Telegram's ``update_id``, so a repeated POST of the same update is recognised
    and dropped. A worker processing the oldest pending update of a chat holds a lease on it
    (``lease_owner``/``lease_until``) and renews it while working; a lease left to expire by
    a dead worker lets another one take the update over. ``payload`` is cleared once the
    update is done (it may quote identity-card numbers); the row stays a while for
    deduplication.
    """

    __tablename__ = "inbound_updates"
    __table_args__ = (
        CheckConstraint(_in("status", INBOX_STATUSES), name="status"),
        Index(None, "chat_key", "status", "update_id"),
        Index(None, "status", "received_at"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    received_at: Mapped[datetime] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column()


class JobRunRow(Base):
    """A scheduled job's run, claimed by the first worker to insert it (e.g. the daily
    reminder of one day), so N workers run it once."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column()


class WebAccountRow(Base):
    """A login of the web console: a cadre or admin, tied to its ``users`` row (which holds
    the role and jurisdiction the core checks). The same person may also be on Telegram,
    as a second ``users`` row."""

    __tablename__ = "web_accounts"
    __table_args__ = (UniqueConstraint("username"), UniqueConstraint("user_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))  # stored case-folded
    password_hash: Mapped[str] = mapped_column(String(256))  # argon2id, encoded with its salt
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSessionRow(Base):
    """A server-side login session. The cookie carries a random token; only its SHA-256 is
    stored, so a database dump opens no session. Logout, a password reset and deactivation
    delete the rows, which ends the session at its next request."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "account_id"), Index(None, "expires_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token), hex
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class LoginFailureRow(Base):
    """A failed login, by key (``user:<name>`` or ``ip:<address>``), for throttling."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column()


class AuditEventRow(Base):
    """Who did what that must be answerable later: an admin revealing an ID number, logins,
    accounts created, reset or disabled. ``detail`` never holds personal data."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "at"), Index(None, "actor_id", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboundNoticeRow(Base):
    """A notice for a user that the process producing it could not deliver (a farmer told
    of a status change made in the web console), until their channel delivers it
    (handlers/outbox_ports.py). ``text`` is stored masked. ``next_attempt_at`` is when it is
    due (a claim or a failed send moves it on); NULL once sent or given up."""

    __tablename__ = "outbound_notices"
    __table_args__ = (
        Index(None, "channel", "next_attempt_at"),
        Index(None, "user_id", "sent_at"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()


class ChatTranscriptRow(Base):
    """What the web chat showed a browser lately (its latest exchanges as rendered, and a
    reply it expects), so that any worker, or a restarted one, shows the same page. Keyed
    by the SHA-256 of the browser's cookie; the user's words in it are masked; deleted 30
    minutes after its last change."""

    __tablename__ = "web_chat_transcripts"
    __table_args__ = (Index(None, "updated_at"),)

    browser: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column()


@event.listens_for(CaseEventRow, "before_update")
def _case_events_are_append_only(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    raise RuntimeError("case_events is append-only; add a new event instead")
