"""``cadrebot run``: long polling through the inbox, so no message is lost when the process dies.

Telegram forgets an update once a getUpdates call asks for a later offset. PTB's Updater
asks for it as soon as it has handed the updates to the application, so the updates being
processed (and the ones queued behind them) of a killed process were gone. Here every
update a getUpdates call returns is first stored in the inbox (``inbound_updates``, keyed
by ``update_id``: a repeated delivery is dropped), and only the next call, made after that,
confirms it. Processing is the webhook workers' (:class:`InboxDispatcher`): a chat's
updates in order, each exactly once, a turn completing its update in its own transaction.

On start, the updates a killed process left pending are taken over at once (a polling
process is the inbox's only user: Telegram answers one getUpdates caller at a time) and
processed before anything newer of the same chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError, TimedOut

from cadrebot.bot.telegram.app import ALLOWED_UPDATES
from cadrebot.bot.telegram.inbox_dispatch import (
    InboxDispatcher,
    chat_key_of,
    inbox_runtime,
    stop_on_signals,
    update_kind,
)
from cadrebot.bot.wiring import Knowledge
from cadrebot.ops.metrics import BotMetrics
from cadrebot.settings import Settings
from cadrebot.storage.inbox import SqlInbox

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 10
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after a failed poll or store, growing


class InboxPoller:
    """Fetches updates by getUpdates, stores them, and only then confirms them."""

    def __init__(
        self,
        bot: Bot,
        inbox: SqlInbox,
        dispatcher: InboxDispatcher,
        metrics: BotMetrics,
        *,
        timeout: int = POLL_TIMEOUT_SECONDS,
        allowed_updates: Sequence[str] = ALLOWED_UPDATES,
    ) -> None:
        self._bot = bot
        self._inbox = inbox
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._timeout = timeout
        self._allowed_updates = list(allowed_updates)
        self._offset = 0  # 0: whatever Telegram has not had confirmed
        self._failures = 0

    async def recover(self) -> int:
        """Process the updates a killed process left pending; the number of chats."""
        chats = await asyncio.to_thread(self._inbox.take_over_pending)
        if chats:
            log.info("resuming the pending updates of %d chats", len(chats))
        for chat_key in chats:
            self._dispatcher.kick(chat_key)
        return len(chats)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set. Raises :class:`InvalidToken`."""
        # getUpdates is refused while a webhook is set (PTB's Updater deletes it too).
        while not stop.is_set() and not await self._attempt(self._bot.delete_webhook(), stop):
            pass
        while not stop.is_set():
            await self._attempt(self._poll_once(), stop)

    async def _poll_once(self) -> None:
        updates = await self._bot.get_updates(
            offset=self._offset or None,
            timeout=self._timeout,
            allowed_updates=self._allowed_updates,
        )
        if not updates:
            return
        payloads = [update.to_dict() for update in updates]
        # Stored before the next call's offset confirms them to Telegram: a store that fails
        # raises here, the offset stays, and Telegram delivers them again.
        new = await asyncio.to_thread(self._store, payloads)
        self._offset = max(update.update_id for update in updates) + 1
        for payload in payloads:
            if payload["update_id"] in new:
                self._metrics.update_received(update_kind(payload))
        for chat_key in dict.fromkeys(chat_key_of(payload) for payload in payloads):
            self._dispatcher.kick(chat_key)

    def _store(self, payloads: list[dict[str, Any]]) -> set[int]:
        new: set[int] = set()
        for payload in payloads:
            update_id = int(payload["update_id"])
            if self._inbox.add(update_id, chat_key_of(payload), payload):
                new.add(update_id)
        return new

    async def _attempt(self, call: Coroutine[Any, Any, object], stop: asyncio.Event) -> bool:
        """Run ``call`` (a Bot API call) unless ``stop`` comes first; True if it worked.
        A failure is logged and waited out (longer after each one in a row)."""
        task = asyncio.ensure_future(call)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not task.done():
            task.cancel()  # stopping: an unconfirmed update is delivered again next time
            await asyncio.gather(task, return_exceptions=True)
            return False
        try:
            task.result()
        except InvalidToken:
            raise
        except TimedOut:
            return False  # a long poll that outlived its read timeout: poll again
        except RetryAfter as error:
            asked = error.retry_after
            seconds = asked.total_seconds() if isinstance(asked, timedelta) else float(asked)
            log.warning("Telegram asks to wait %ss before polling again", seconds)
            await self._pause(stop, seconds)
            return False
        except Exception as error:
            self._failures += 1
            wait = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1]
            if isinstance(error, Conflict):
                log.error("another process is polling (or a webhook is set); retrying in %ss", wait)
            elif isinstance(error, TelegramError):
                log.warning("polling failed (%s); retrying in %ss", error, wait)
            else:
                log.exception("could not store the polled updates; retrying in %ss", wait)
            self._metrics.error("polling")
            await self._pause(stop, wait)
            return False
        self._failures = 0
        return True

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)


async def run_polling(
    settings: Settings,
    *,
    knowledge: Knowledge | None = None,
    stop: asyncio.Event | None = None,
    poll_seconds: int = POLL_TIMEOUT_SECONDS,
) -> None:
    """Poll and process until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    if stop is None:
        stop = stop_on_signals()
    async with inbox_runtime(settings, knowledge=knowledge) as runtime:
        dispatcher = runtime.dispatcher()
        poller = InboxPoller(
            runtime.application.bot,
            runtime.inbox,
            dispatcher,
            runtime.metrics,
            timeout=poll_seconds,
        )
        dispatcher.start()
        try:
            await poller.recover()
            log.info("long polling for updates (process %s)", runtime.inbox.owner)
            await poller.run(stop)
        finally:
            await dispatcher.stop()
