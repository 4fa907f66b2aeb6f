"""Web console accounts, sessions, login failures and the audit log, in SQL.

Implements :mod:`cadrebot.handlers.account_ports` inside a
:class:`~cadrebot.storage.repositories.SqlUnitOfWork`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cadrebot.handlers.account_ports import AuditEvent, SessionRecord, WebAccount
from cadrebot.handlers.ports import User
from cadrebot.storage.models import (
    AuditEventRow,
    Base,
    LoginFailureRow,
    UserRow,
    WebAccountRow,
    WebSessionRow,
)
from cadrebot.storage.rows import user_of

if TYPE_CHECKING:
    from cadrebot.storage.repositories import SqlUnitOfWork

_accounts = Base.metadata.tables[WebAccountRow.__tablename__]
_sessions = Base.metadata.tables[WebSessionRow.__tablename__]
_failures = Base.metadata.tables[LoginFailureRow.__tablename__]
_audit = Base.metadata.tables[AuditEventRow.__tablename__]
_users = Base.metadata.tables[UserRow.__tablename__]

# One round trip per request: the session, its account and the core user, all at once.
_SESSION_BY_ID = (
    select(
        _sessions.c.id.label("session_id"),
        _sessions.c.csrf_token,
        _sessions.c.created_at,
        _sessions.c.last_seen_at,
        _sessions.c.expires_at,
        *[c.label(f"a_{c.name}") for c in _accounts.c],
        *[c.label(f"u_{c.name}") for c in _users.c],
    )
    .select_from(
        _sessions.join(_accounts, _accounts.c.id == _sessions.c.account_id).join(
            _users, _users.c.id == _accounts.c.user_id
        )
    )
    .where(_sessions.c.id == bindparam("sid"))
)


def _account(row: Any, prefix: str = "") -> WebAccount:
    def get(name: str) -> Any:
        return getattr(row, f"{prefix}{name}")

    return WebAccount(
        id=get("id"),
        user_id=get("user_id"),
        username=get("username"),
        active=bool(get("active")),
        created_at=get("created_at"),
        password_hash=get("password_hash"),
    )


class SqlAccountRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def create(self, user_id: int, username: str, password_hash: str, at: datetime) -> WebAccount:
        connection = self._uow.connection()
        try:
            with connection.begin_nested():
                row = connection.execute(
                    insert(_accounts)
                    .values(
                        user_id=user_id,
                        username=username,
                        password_hash=password_hash,
                        active=True,
                        created_at=at,
                        password_changed_at=at,
                    )
                    .returning(*_accounts.c)
                ).one()
        except IntegrityError as exc:
            raise ValueError(f"username {username!r} is taken") from exc
        return _account(row)

    def by_username(self, username: str) -> WebAccount | None:
        row = (
            self._uow.connection()
            .execute(select(_accounts).where(_accounts.c.username == username))
            .first()
        )
        return _account(row) if row is not None else None

    def list_accounts(self) -> Sequence[tuple[WebAccount, User]]:
        statement = (
            select(
                *[c.label(f"a_{c.name}") for c in _accounts.c],
                *[c.label(f"u_{c.name}") for c in _users.c],
            )
            .select_from(_accounts.join(_users, _users.c.id == _accounts.c.user_id))
            .order_by(_accounts.c.username)
        )
        rows = self._uow.connection().execute(statement)
        return [(_account(row, "a_"), user_of(row, "u_")) for row in rows]

    def set_password(self, account_id: int, password_hash: str, at: datetime) -> None:
        self._uow.connection().execute(
            update(_accounts)
            .where(_accounts.c.id == account_id)
            .values(password_hash=password_hash, password_changed_at=at)
        )

    def set_active(self, account_id: int, active: bool) -> None:
        self._uow.connection().execute(
            update(_accounts).where(_accounts.c.id == account_id).values(active=active)
        )

    def open_session(
        self, session_id: str, account_id: int, csrf_token: str, at: datetime, expires_at: datetime
    ) -> None:
        self._uow.connection().execute(
            insert(_sessions).values(
                id=session_id,
                account_id=account_id,
                csrf_token=csrf_token,
                created_at=at,
                last_seen_at=at,
                expires_at=expires_at,
            )
        )

    def session(self, session_id: str) -> SessionRecord | None:
        row = self._uow.connection().execute(_SESSION_BY_ID, {"sid": session_id}).first()
        if row is None:
            return None
        return SessionRecord(
            session_id=row.session_id,
            account=_account(row, "a_"),
            user=user_of(row, "u_"),
            csrf_token=row.csrf_token,
            created_at=self._uow.aware(row.created_at),
            last_seen_at=self._uow.aware(row.last_seen_at),
            expires_at=self._uow.aware(row.expires_at),
        )

    def touch_session(self, session_id: str, at: datetime, expires_at: datetime) -> None:
        self._uow.connection().execute(
            update(_sessions)
            .where(_sessions.c.id == session_id)
            .values(last_seen_at=at, expires_at=expires_at)
        )

    def delete_session(self, session_id: str) -> None:
        self._uow.connection().execute(delete(_sessions).where(_sessions.c.id == session_id))

    def delete_sessions_of(self, account_id: int) -> int:
        result = self._uow.connection().execute(
            delete(_sessions).where(_sessions.c.account_id == account_id)
        )
        return result.rowcount

    def delete_expired_sessions(self, now: datetime) -> int:
        result = self._uow.connection().execute(
            delete(_sessions).where(_sessions.c.expires_at < now)
        )
        return result.rowcount

    def record_failure(self, key: str, at: datetime) -> None:
        self._uow.connection().execute(insert(_failures).values(key=key, at=at))

    def failures_since(self, keys: Collection[str], since: datetime) -> Mapping[str, int]:
        if not keys:
            return {}
        statement = (
            select(_failures.c.key, func.count())
            .where(_failures.c.key.in_(sorted(keys)), _failures.c.at >= since)
            .group_by(_failures.c.key)
        )
        counts = {key: 0 for key in keys}
        for key, count in self._uow.connection().execute(statement):
            counts[key] = int(count)
        return counts

    def clear_failures(self, key: str) -> None:
        self._uow.connection().execute(delete(_failures).where(_failures.c.key == key))

    def delete_failures_before(self, before: datetime) -> int:
        result = self._uow.connection().execute(delete(_failures).where(_failures.c.at < before))
        return result.rowcount


class SqlAuditLog:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def record(
        self, at: datetime, actor_id: int | None, action: str, subject: str = "", detail: str = ""
    ) -> None:
        self._uow.connection().execute(
            insert(_audit).values(
                at=at, actor_id=actor_id, action=action, subject=subject, detail=detail
            )
        )

    def recent(
        self, limit: int = 50, *, actions: Collection[str] | None = None
    ) -> Sequence[AuditEvent]:
        statement = select(_audit).order_by(_audit.c.at.desc(), _audit.c.id.desc()).limit(limit)
        if actions is not None:
            statement = statement.where(_audit.c.action.in_(sorted(actions)))
        return [_audit_event(row, self._uow) for row in self._uow.connection().execute(statement)]


def _audit_event(row: Row[Any], uow: SqlUnitOfWork) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=uow.aware(row.at),
        actor_id=row.actor_id,
        action=row.action,
        subject=row.subject,
        detail=row.detail,
    )
