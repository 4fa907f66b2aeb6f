"""The webhook inbox: Telegram updates stored once, processed once, in order per chat.

Several worker processes share one database. A worker receiving a webhook POST stores the
update with :meth:`SqlInbox.add` (keyed by ``update_id``: a repeated POST is recognised and
dropped) and answers 200 at once. Processing takes a chat's updates one at a time, oldest
first, with :meth:`SqlInbox.claim_next`: the claim is a lease on the chat's *oldest* pending
update, so while one worker holds it nobody else can take that update or any later one of
the same chat (they are not the oldest), and different chats proceed in parallel. The holder
renews the lease while it works (:meth:`SqlInbox.renew`); a worker that dies stops renewing,
the lease expires, and another worker's sweeper (:meth:`SqlInbox.stale_chats`) takes the
update over.

An update is marked done in the same transaction as its effects when a conversation turn
commits: the worker hands the turn an :class:`UpdateReceipt` (through :class:`Receipts`),
which the conversation core completes inside the turn's unit of work, so a worker killed
after the turn committed does not run it again. An update no turn completed (a reply
without database effects, a refused button) is marked done right after processing
(:meth:`SqlInbox.finish`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from cadrebot.handlers.ports import UnitOfWork
from cadrebot.storage.engines import writer_engine
from cadrebot.storage.models import Base, InboundUpdateRow, JobRunRow
from cadrebot.storage.repositories import SqlUnitOfWork

log = logging.getLogger(__name__)

_inbox = Base.metadata.tables[InboundUpdateRow.__tablename__]
_jobs = Base.metadata.tables[JobRunRow.__tablename__]

MAX_ATTEMPTS = 5
"""An update whose processing killed this many workers is given up (marked failed)."""


def _now() -> datetime:
    return datetime.now(UTC)


# The statements of every update's path are built once: building one and computing its cache
# key cost more Python time than executing it (measured under load). Bound parameters are
# named unlike the columns, whose names SQLAlchemy reserves for the SET clause.
def _bound(name: str, column: str) -> Any:
    return bindparam(name, type_=_inbox.c[column].type)


_ADD = insert(_inbox)

_OLDEST_PENDING = (
    select(_inbox.c.update_id)
    .where((_inbox.c.chat_key == _bound("chat", "chat_key")) & (_inbox.c.status == "pending"))
    .order_by(_inbox.c.update_id)
    .limit(1)
    .scalar_subquery()
)

# Conditional on the lease being free: of two workers racing for the chat exactly one
# matches (PostgreSQL re-checks the condition on the row version the other one committed;
# SQLite runs one writer at a time).
_CLAIM = (
    update(_inbox)
    .where(
        (_inbox.c.update_id == _OLDEST_PENDING)
        & (_inbox.c.status == "pending")
        & (_inbox.c.lease_until.is_(None) | (_inbox.c.lease_until <= _bound("now", "lease_until")))
    )
    .values(
        lease_owner=_bound("owner", "lease_owner"),
        lease_until=_bound("until", "lease_until"),
        attempts=_inbox.c.attempts + 1,
    )
    .returning(_inbox.c.update_id, _inbox.c.payload, _inbox.c.attempts)
)

# The update is pending and this worker holds its lease.
_OURS = (
    (_inbox.c.update_id == _bound("id", "update_id"))
    & (_inbox.c.status == "pending")
    & (_inbox.c.lease_owner == _bound("owner", "lease_owner"))
)

_RENEW = update(_inbox).where(_OURS).values(lease_until=_bound("until", "lease_until"))

_FINISH = (
    update(_inbox)
    .where(_OURS)
    .values(
        status=_bound("outcome", "status"),
        payload=None,
        done_at=_bound("at", "done_at"),
        lease_owner=None,
        lease_until=None,
    )
)


def _finish_parameters(update_id: int, owner: str, status: str, at: datetime) -> dict[str, Any]:
    return {"id": update_id, "owner": owner, "outcome": status, "at": at}


@dataclass(frozen=True)
class ClaimedUpdate:
    update_id: int
    chat_key: str
    payload: dict[str, Any]
    attempts: int  # including this one


class SqlInbox:
    """The ``inbound_updates`` table as one worker (``owner``) uses it. Blocking calls."""

    def __init__(
        self,
        engine: Engine,
        *,
        owner: str,
        lease: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        # Every call here is one statement: on PostgreSQL it runs in autocommit (no BEGIN /
        # COMMIT round trips, a third of the inbox's cost); SQLite serialises writers with
        # BEGIN IMMEDIATE instead.
        if engine.dialect.name == "sqlite":
            self._engine = writer_engine(engine)
        else:
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.owner = owner
        self.lease = lease
        self._clock = clock

    def add(self, update_id: int, chat_key: str, payload: dict[str, Any]) -> bool:
        """Store a received update; False if it was stored before (a repeated delivery)."""
        row = {
            "update_id": update_id,
            "chat_key": chat_key,
            "payload": payload,
            "status": "pending",
            "received_at": self._clock(),
            "attempts": 0,
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(_ADD, row)
        except IntegrityError:
            return False
        return True

    def claim_next(self, chat_key: str) -> ClaimedUpdate | None:
        """Lease the chat's oldest pending update, or None when it has none or another
        worker holds the lease on it."""
        while True:
            now = self._clock()
            with self._engine.begin() as connection:
                claimed = connection.execute(
                    _CLAIM,
                    {"chat": chat_key, "now": now, "owner": self.owner, "until": now + self.lease},
                ).first()
                if claimed is None:
                    return None  # nothing pending, or another worker is on this chat
                if claimed.attempts > MAX_ATTEMPTS:
                    # Processing it killed a worker every time: give it up, take the next.
                    log.error(
                        "update %s failed %d times; giving up", claimed.update_id, MAX_ATTEMPTS
                    )
                    connection.execute(
                        _FINISH, _finish_parameters(claimed.update_id, self.owner, "failed", now)
                    )
                    continue
            return ClaimedUpdate(
                claimed.update_id, chat_key, dict(claimed.payload or {}), claimed.attempts
            )

    def renew(self, update_id: int) -> bool:
        """Extend this worker's lease on ``update_id``; False if it is no longer ours."""
        until = self._clock() + self.lease
        with self._engine.begin() as connection:
            result = connection.execute(
                _RENEW, {"id": update_id, "owner": self.owner, "until": until}
            )
        return bool(result.rowcount)

    def finish(self, update_id: int, *, failed: bool = False) -> None:
        """Mark an update this worker processed done (or failed); a no-op if a committed
        conversation turn marked it already."""
        outcome = "failed" if failed else "done"
        with self._engine.begin() as connection:
            connection.execute(
                _FINISH, _finish_parameters(update_id, self.owner, outcome, self._clock())
            )

    def stale_chats(self, *, grace: timedelta, limit: int = 200) -> Sequence[str]:
        """Chats with pending work nobody is on: an expired lease (a dead worker), or no
        lease for longer than ``grace`` (a receiver that died before starting it, or one
        too busy to: any worker may take it)."""
        now = self._clock()
        stale = (_inbox.c.lease_until.is_(None) & (_inbox.c.received_at < now - grace)) | (
            _inbox.c.lease_until < now
        )
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(_inbox.c.chat_key)
                .where((_inbox.c.status == "pending") & stale)
                .group_by(_inbox.c.chat_key)
                .order_by(func.min(_inbox.c.update_id))
                .limit(limit)
            )
            return [row.chat_key for row in rows]

    def take_over_pending(self) -> list[str]:
        """Free every lease another owner holds on a pending update and return the chats with
        pending updates, oldest first.

        Only for the inbox's one user: a long-polling process (Telegram lets one process
        call getUpdates at a time) starting up knows whoever else holds a lease is a process
        that was killed, and need not wait for its leases to expire.
        """
        pending = _inbox.c.status == "pending"
        with self._engine.begin() as connection:
            connection.execute(
                update(_inbox)
                .where(pending & (_inbox.c.lease_owner != self.owner))
                .values(lease_owner=None, lease_until=None)
            )
            rows = connection.execute(
                select(_inbox.c.chat_key)
                .where(pending)
                .group_by(_inbox.c.chat_key)
                .order_by(func.min(_inbox.c.update_id))
            )
            return [row.chat_key for row in rows]

    def pending_count(self) -> int:
        with self._engine.connect() as connection:
            count = connection.execute(
                select(func.count()).select_from(_inbox).where(_inbox.c.status == "pending")
            ).scalar_one()
        return int(count)

    def prune(self, older_than: timedelta) -> int:
        """Forget finished updates older than ``older_than`` (kept to drop repeats)."""
        cutoff = self._clock() - older_than
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(_inbox).where((_inbox.c.status != "pending") & (_inbox.c.done_at < cutoff))
            )
        return int(result.rowcount)

    def claim_job(self, job: str, run_key: str) -> bool:
        """True for exactly one caller per (job, run_key) across all workers."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(_jobs).values(
                        job=job, run_key=run_key, claimed_by=self.owner, claimed_at=self._clock()
                    )
                )
        except IntegrityError:
            return False
        return True


class UpdateReceipt:
    """The inbox row of one update a worker is processing (a conversation core
    ``TurnReceipt``): completed inside the turn's transaction, so the turn's effects and the
    update's completion commit together."""

    def __init__(self, update_id: int, owner: str) -> None:
        self.update_id = update_id
        self.owner = owner
        self.done = False

    def complete_in(self, uow: UnitOfWork) -> None:
        if self.done:
            return
        if not isinstance(uow, SqlUnitOfWork):
            raise TypeError("an inbox receipt completes only in a SQL unit of work")
        uow.connection().execute(
            _FINISH, _finish_parameters(self.update_id, self.owner, "done", _now())
        )

    def committed(self) -> None:
        # Only now is the update done: a turn failing before its commit rolls the
        # completion back with everything else, and the worker finishes the update itself.
        self.done = True


class Receipts:
    """The receipts of the updates this worker is processing, by update id."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._open: dict[int, UpdateReceipt] = {}

    def open(self, update_id: int) -> UpdateReceipt:
        receipt = UpdateReceipt(update_id, self._owner)
        self._open[update_id] = receipt
        return receipt

    def close(self, update_id: int) -> None:
        self._open.pop(update_id, None)

    def get(self, update_id: int) -> UpdateReceipt | None:
        return self._open.get(update_id)
