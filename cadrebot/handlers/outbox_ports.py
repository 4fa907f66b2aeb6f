"""The notice outbox: notices for users the acting process cannot reach itself, kept in the
database until the channel the user is on delivers them (implemented in storage/outbox.py).

A cadre moving a case in the web console produces a notice for the farmer who filed it, on
Telegram or in the web chat; so does a Telegram cadre's ``/setstatus`` for a web-chat
farmer. The notice is written in the same unit of work as the change that produced it, so
the change and its notice commit together (or neither does), and nothing is lost when a
process dies. Then:

* Telegram: a job of every Telegram process (:mod:`cadrebot.bot.telegram.jobs`) claims the
  pending notices every few seconds, sends them and marks them sent. A claim holds the
  notice for :data:`CLAIM_LEASE`; concurrent workers never claim the same notice. A failed
  send is tried again later (:func:`retry_time`), at most :data:`MAX_ATTEMPTS` times.
* The web chat: a farmer's pending notices are taken (and count as delivered) when they
  next open the chat (:meth:`ConversationService.pending_notices`).

Delivery is at least once: a worker that dies between sending and marking the notice sent
leaves it to be sent again when its claim expires. Rows older than :data:`KEEP_FOR` are
deleted, sent or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cadrebot.handlers.ports import OfficeUnitOfWork, User

MAX_ATTEMPTS = 5
"""Sends of one notice before it is given up."""
RETRY_AFTER = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
"""The wait after the 1st, 2nd, … failed send: a network outage may last a while."""
CLAIM_LEASE = timedelta(minutes=5)
"""How long a claim holds a notice: one send takes seconds, so a notice still claimed after
this belongs to a worker that died, and another may send it."""
CLAIM_BATCH = 50
KEEP_FOR = timedelta(days=30)
"""Notices older than this are deleted (sent or not): the case itself keeps its history."""


@dataclass(frozen=True)
class OutboundNotice:
    """A notice as stored."""

    id: int
    user_id: int
    channel: str  # the user's channel
    text: str  # masked
    created_at: datetime
    attempts: int = 0  # sends started (claims)
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None  # None: no further attempt (sent or given up)


@dataclass(frozen=True)
class ClaimedNotice:
    """A notice claimed for sending, with the user to send it to."""

    id: int
    user: User
    text: str
    attempts: int  # including this one


class NoticeOutbox(Protocol):
    def add(self, user: User, text: str, at: datetime) -> int:
        """Queue ``text`` for ``user`` on the user's channel, due at once; stored masked
        (ID and phone numbers). Its id."""
        ...

    def claim(
        self, channel: str, now: datetime, *, until: datetime, limit: int
    ) -> Sequence[ClaimedNotice]:
        """Up to ``limit`` unsent notices of ``channel`` due by ``now``, oldest first, each
        with one more attempt counted and not due again before ``until``. Concurrent callers
        never get the same notice (PostgreSQL: ``FOR UPDATE SKIP LOCKED``)."""
        ...

    def mark_sent(self, notice_id: int, at: datetime) -> bool:
        """Record the delivery; False if it was recorded already (or the notice is gone)."""
        ...

    def retry(self, notice_id: int, at: datetime | None) -> None:
        """After a failed send: due again at ``at``; None gives the notice up."""
        ...

    def has_pending(self, user_id: int) -> bool:
        """Whether an unsent notice waits for the user."""
        ...

    def take_for_user(self, user_id: int, at: datetime) -> Sequence[str]:
        """The user's unsent notices, oldest first, marked sent at ``at`` (a channel that
        shows them when the user comes back). Two concurrent takes never both get one."""
        ...

    def get(self, notice_id: int) -> OutboundNotice | None: ...

    def delete_before(self, before: datetime) -> int:
        """Delete the notices created before ``before``; how many."""
        ...


class NoticeUnitOfWork(OfficeUnitOfWork, Protocol):
    @property
    def outbox(self) -> NoticeOutbox: ...


class NoticeUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> NoticeUnitOfWork: ...


def retry_time(attempts: int, now: datetime, *, permanent: bool = False) -> datetime | None:
    """When to try a notice again after its ``attempts``-th send failed; None: give it up
    (a permanent failure, such as a user who blocked the bot, or too many attempts)."""
    if permanent or attempts >= MAX_ATTEMPTS:
        return None
    return now + RETRY_AFTER[min(max(attempts, 1), len(RETRY_AFTER)) - 1]
