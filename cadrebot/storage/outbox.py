"""The notice outbox in SQL (implements :class:`cadrebot.handlers.outbox_ports.NoticeOutbox`
inside a :class:`~cadrebot.storage.repositories.SqlUnitOfWork`).

Claiming is one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``:
on PostgreSQL concurrent claimers skip each other's locked rows, and a row another claimer
committed meanwhile is re-checked against the ``WHERE`` (its ``next_attempt_at`` is in the
future by then), so no notice is claimed twice. SQLite has no row locks and needs none: a
unit of work holds the database's write lock from its first statement (``BEGIN
IMMEDIATE``), and ``FOR UPDATE`` is left out of its SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, exists, insert, select, update

from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.outbox_ports import ClaimedNotice, OutboundNotice
from cadrebot.handlers.ports import User
from cadrebot.storage.models import Base, OutboundNoticeRow, UserRow
from cadrebot.storage.rows import user_of

if TYPE_CHECKING:
    from cadrebot.storage.repositories import SqlUnitOfWork

_notices = Base.metadata.tables[OutboundNoticeRow.__tablename__]
_users = Base.metadata.tables[UserRow.__tablename__]


class SqlNoticeOutbox:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def add(self, user: User, text: str, at: datetime) -> int:
        row = (
            self._uow.connection()
            .execute(
                insert(_notices)
                .values(
                    user_id=user.id,
                    channel=user.channel,
                    text=mask_sensitive(text),
                    created_at=at,
                    attempts=0,
                    next_attempt_at=at,
                )
                .returning(_notices.c.id)
            )
            .one()
        )
        return int(row.id)

    def claim(
        self, channel: str, now: datetime, *, until: datetime, limit: int
    ) -> Sequence[ClaimedNotice]:
        connection = self._uow.connection()
        due = (
            select(_notices.c.id)
            .where(
                _notices.c.channel == channel,
                _notices.c.sent_at.is_(None),
                _notices.c.next_attempt_at <= now,
            )
            .order_by(_notices.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = connection.execute(
            update(_notices)
            .where(_notices.c.id.in_(due.scalar_subquery()))
            .values(attempts=_notices.c.attempts + 1, next_attempt_at=until)
            .returning(_notices.c.id, _notices.c.user_id, _notices.c.text, _notices.c.attempts)
        ).all()
        if not claimed:
            return []
        user_ids = sorted({row.user_id for row in claimed})
        users = {
            row.id: user_of(row)
            for row in connection.execute(select(_users).where(_users.c.id.in_(user_ids)))
        }
        return [
            ClaimedNotice(row.id, users[row.user_id], row.text, row.attempts)
            for row in sorted(claimed, key=lambda r: r.id)
        ]

    def mark_sent(self, notice_id: int, at: datetime) -> bool:
        result = self._uow.connection().execute(
            update(_notices)
            .where(_notices.c.id == notice_id, _notices.c.sent_at.is_(None))
            .values(sent_at=at, next_attempt_at=None)
        )
        return result.rowcount == 1

    def retry(self, notice_id: int, at: datetime | None) -> None:
        self._uow.connection().execute(
            update(_notices)
            .where(_notices.c.id == notice_id, _notices.c.sent_at.is_(None))
            .values(next_attempt_at=at)
        )

    def has_pending(self, user_id: int) -> bool:
        waiting = exists().where(_notices.c.user_id == user_id, _notices.c.sent_at.is_(None))
        return bool(self._uow.connection().execute(select(waiting)).scalar())

    def take_for_user(self, user_id: int, at: datetime) -> Sequence[str]:
        # One UPDATE: on PostgreSQL a concurrent take waits for these rows' locks, then
        # finds them sent and leaves them.
        rows = self._uow.connection().execute(
            update(_notices)
            .where(_notices.c.user_id == user_id, _notices.c.sent_at.is_(None))
            .values(sent_at=at, next_attempt_at=None)
            .returning(_notices.c.id, _notices.c.text)
        )
        return [row.text for row in sorted(rows, key=lambda r: r.id)]

    def get(self, notice_id: int) -> OutboundNotice | None:
        row = (
            self._uow.connection()
            .execute(select(_notices).where(_notices.c.id == notice_id))
            .first()
        )
        return self._notice(row) if row is not None else None

    def delete_before(self, before: datetime) -> int:
        result = self._uow.connection().execute(
            delete(_notices).where(_notices.c.created_at < before)
        )
        return result.rowcount

    def _notice(self, row: Row[Any]) -> OutboundNotice:
        aware = self._uow.aware
        return OutboundNotice(
            id=row.id,
            user_id=row.user_id,
            channel=row.channel,
            text=row.text,
            created_at=aware(row.created_at),
            attempts=row.attempts,
            sent_at=aware(row.sent_at) if row.sent_at is not None else None,
            next_attempt_at=aware(row.next_attempt_at) if row.next_attempt_at else None,
        )
