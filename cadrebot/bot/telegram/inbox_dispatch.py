"""Processing the inbox: what ``cadrebot serve`` (webhook) and ``cadrebot run`` (long
polling) share once an update is stored.

However an update arrives (a webhook POST, a getUpdates answer), it is first stored in the
inbox (:class:`~cadrebot.storage.inbox.SqlInbox`, keyed by ``update_id``) and only then
confirmed to Telegram. :class:`InboxDispatcher` then processes it: a chat's updates one at a
time, oldest first, under a lease on the chat's oldest pending update, through the
python-telegram-bot Application (``process_update``); different chats in parallel, up to
``telegram_concurrent_updates``. A sweeper takes over updates nobody is on (a dead
process's, once its lease expires, or a busy one's backlog). A turn completes its update's
inbox row in its own transaction through the receipt the dispatcher opens for it.

:func:`inbox_runtime` builds what both channels run on: the database, the inbox and its
receipts, the conversation services with their hooks, and the started PTB Application.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Update

from cadrebot.bot.telegram.app import build_application
from cadrebot.bot.telegram.routing import AnyApplication
from cadrebot.bot.telegram.services import ServiceHooks, TelegramServices, build_services
from cadrebot.bot.wiring import Knowledge
from cadrebot.handlers.ports import PolicyAnswer
from cadrebot.ops.metrics import BotMetrics
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase
from cadrebot.storage.inbox import ClaimedUpdate, Receipts, SqlInbox

log = logging.getLogger(__name__)

STALE_GRACE = timedelta(seconds=2)
PRUNE_EVERY_SECONDS = 600.0
KEEP_DONE = timedelta(days=2)  # Telegram gives up redelivering long before that
_CHAT_CARRIERS = (
    "message",
    "edited_message",
    "callback_query",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
    "chat_member",
)


def chat_key_of(update: dict[str, Any]) -> str:
    """The chat an update belongs to (what its order is kept within).

    A private chat's id is its user's id, so a button press whose message is no longer
    available (keyed by the user) stays in order with that chat's messages.
    """
    for name in _CHAT_CARRIERS:
        carrier = update.get(name)
        if not isinstance(carrier, dict):
            continue
        message = carrier.get("message") if name == "callback_query" else carrier
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return str(chat["id"])
        sender = carrier.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return str(sender["id"])
    return "-"


def update_kind(update: dict[str, Any]) -> str:
    return next((name for name in _CHAT_CARRIERS if name in update), "other")


def worker_owner() -> str:
    """A name for this process, unique across restarts and machines."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class InboxDispatcher:
    """Works through the inbox's pending updates, per chat in order, exactly once."""

    def __init__(
        self,
        application: AnyApplication,
        settings: Settings,
        *,
        inbox: SqlInbox,
        receipts: Receipts,
        metrics: BotMetrics,
    ) -> None:
        self.application = application
        self.inbox = inbox
        self.metrics = metrics
        self._receipts = receipts
        self._lease_seconds = settings.serve_lease_seconds
        self._sweep_seconds = settings.serve_sweep_seconds
        self._slots = asyncio.Semaphore(settings.telegram_concurrent_updates)
        self._draining: set[str] = set()
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the sweeper and the pruning of old finished updates."""
        self._loops = [
            asyncio.create_task(self._every(self._sweep_seconds, self._sweep)),
            asyncio.create_task(self._every(PRUNE_EVERY_SECONDS, self._prune)),
        ]

    async def stop(self, grace: float = 20.0) -> None:
        """Take no more updates, let the ones in process finish (their chats' remaining
        updates stay pending), stop the loops."""
        self._stopping = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    # ------------------------------------------------------------------ processing

    def kick(self, chat_key: str) -> None:
        """Make sure this process works through ``chat_key``'s pending updates."""
        if self._stopping:
            return
        if chat_key in self._draining:
            self._dirty.add(chat_key)  # the running drain looks once more before it ends
            return
        self._draining.add(chat_key)
        task = asyncio.create_task(self._drain(chat_key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, chat_key: str) -> None:
        try:
            async with self._slots:
                while not self._stopping:
                    self._dirty.discard(chat_key)
                    claimed = await asyncio.to_thread(self.inbox.claim_next, chat_key)
                    if claimed is None:
                        if chat_key in self._dirty:
                            continue
                        break
                    await self._process(claimed)
        except Exception:
            log.exception("dispatching chat %s failed", chat_key)
            self.metrics.error("dispatch")
        finally:
            self._draining.discard(chat_key)
            self._dirty.discard(chat_key)

    async def _process(self, claimed: ClaimedUpdate) -> None:
        receipt = self._receipts.open(claimed.update_id)
        heartbeat = asyncio.create_task(self._renew(claimed.update_id))
        failed = False
        try:
            update = Update.de_json(claimed.payload, self.application.bot)
            await self.application.process_update(update)
        except Exception:
            failed = True
            log.exception("update %s could not be processed", claimed.update_id)
            self.metrics.error("dispatch")
        finally:
            heartbeat.cancel()
            self._receipts.close(claimed.update_id)
        if not receipt.done:
            await asyncio.to_thread(self.inbox.finish, claimed.update_id, failed=failed)

    async def _renew(self, update_id: int) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                if not await asyncio.to_thread(self.inbox.renew, update_id):
                    log.warning("lost the lease on update %s", update_id)
                    return
            except Exception:
                log.exception("could not renew the lease on update %s", update_id)

    # ------------------------------------------------------------------ periodic work

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception:
                log.exception("periodic %s failed", getattr(action, "__name__", action))
                self.metrics.error("periodic")

    async def _sweep(self) -> None:
        for chat_key in await asyncio.to_thread(self.inbox.stale_chats, grace=STALE_GRACE):
            self.kick(chat_key)

    async def _prune(self) -> None:
        removed = await asyncio.to_thread(self.inbox.prune, KEEP_DONE)
        if removed:
            log.info("forgot %d finished updates", removed)


# ---------------------------------------------------------------------- the runtime


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (a graceful stop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


@dataclass(frozen=True)
class InboxRuntime:
    """One process's inbox channel: its services, started application, inbox, receipts."""

    services: TelegramServices
    application: AnyApplication
    inbox: SqlInbox
    receipts: Receipts
    metrics: BotMetrics

    def dispatcher(self) -> InboxDispatcher:
        return InboxDispatcher(
            self.application,
            self.services.settings,
            inbox=self.inbox,
            receipts=self.receipts,
            metrics=self.metrics,
        )


@asynccontextmanager
async def inbox_runtime(
    settings: Settings, *, knowledge: Knowledge | None = None
) -> AsyncIterator[InboxRuntime]:
    """Open the database, the inbox and the services, initialise and start the application
    (its post_init sets the command menu and schedules the jobs); all undone on exit."""
    loop = asyncio.get_running_loop()
    # Blocking work (database, search) runs in threads: enough for the concurrent chats.
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.telegram_concurrent_updates + 4,
            thread_name_prefix="cadrebot",
        )
    )
    metrics = BotMetrics()
    database = CaseDatabase(settings, tz=ZoneInfo(settings.timezone))
    await asyncio.to_thread(database.open)
    inbox = SqlInbox(
        database.engine, owner=worker_owner(), lease=timedelta(seconds=settings.serve_lease_seconds)
    )
    receipts = Receipts(inbox.owner)

    def answered(seconds: float, answer: PolicyAnswer) -> None:
        metrics.answered(seconds, found=answer.found)

    hooks = ServiceHooks(
        on_answer=answered,
        on_case_filed=metrics.case_filed,
        on_index_loaded=metrics.index_loaded,
        claim_job=inbox.claim_job,
        receipts=receipts.get,
    )
    services = build_services(settings, knowledge=knowledge, database=database, hooks=hooks)
    await asyncio.to_thread(services.open)
    try:
        application = build_application(services)
        await application.initialize()
        try:
            if application.post_init is not None:
                await application.post_init(application)
            await application.start()
            try:
                yield InboxRuntime(services, application, inbox, receipts, metrics)
            finally:
                await application.stop()
        finally:
            await application.shutdown()
    finally:
        await asyncio.to_thread(services.close)
