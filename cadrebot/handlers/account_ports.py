"""What the web console's accounts need of storage (implemented in storage/accounts.py).

Kept apart from ``ports.py``: only the accounts desk and the web channel's session check use
these, and a small Protocol next to its one consumer is easier to read than one more page in
the shared ports module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cadrebot.handlers.ports import UnitOfWork, User, UserDirectory


@dataclass(frozen=True)
class WebAccount:
    id: int
    user_id: int
    username: str
    active: bool
    created_at: datetime
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class SessionRecord:
    """A live session with its account and the core user the account acts as."""

    session_id: str  # the stored hash, never the cookie's token
    account: WebAccount
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor_id: int | None
    action: str
    subject: str
    detail: str


class AccountRepository(Protocol):
    def create(self, user_id: int, username: str, password_hash: str, at: datetime) -> WebAccount:
        """Raises :class:`ValueError` if the username (case-folded) is taken."""
        ...

    def by_username(self, username: str) -> WebAccount | None: ...

    def list_accounts(self) -> Sequence[tuple[WebAccount, User]]:
        """Every account with its user, by username."""
        ...

    def set_password(self, account_id: int, password_hash: str, at: datetime) -> None: ...

    def set_active(self, account_id: int, active: bool) -> None: ...

    def open_session(
        self, session_id: str, account_id: int, csrf_token: str, at: datetime, expires_at: datetime
    ) -> None: ...

    def session(self, session_id: str) -> SessionRecord | None: ...

    def touch_session(self, session_id: str, at: datetime, expires_at: datetime) -> None: ...

    def delete_session(self, session_id: str) -> None: ...

    def delete_sessions_of(self, account_id: int) -> int: ...

    def delete_expired_sessions(self, now: datetime) -> int: ...

    def record_failure(self, key: str, at: datetime) -> None: ...

    def failures_since(self, keys: Collection[str], since: datetime) -> Mapping[str, int]: ...

    def clear_failures(self, key: str) -> None: ...

    def delete_failures_before(self, before: datetime) -> int: ...


class AuditLog(Protocol):
    def record(
        self, at: datetime, actor_id: int | None, action: str, subject: str = "", detail: str = ""
    ) -> None: ...

    def recent(
        self, limit: int = 50, *, actions: Collection[str] | None = None
    ) -> Sequence[AuditEvent]: ...


class AccountUnitOfWork(UnitOfWork, Protocol):
    @property
    def users(self) -> UserDirectory: ...

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def audit(self) -> AuditLog: ...


class AccountUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> AccountUnitOfWork: ...
