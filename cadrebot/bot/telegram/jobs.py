"""Scheduled work of a Telegram process: the cadres' daily due-date reminder, the clean-up of
abandoned forms (their users told), the delivery of the notices waiting in the outbox (a
farmer told of a status change made in the web console), and the one index follower of the
process (it switches to an index version another process published)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from telegram import Bot
from telegram.error import BadRequest, Forbidden, TelegramError

from cadrebot.bot.telegram.rendering import CHANNEL, notify, send
from cadrebot.bot.telegram.routing import AnyApplication, Context
from cadrebot.handlers.admin import KnowledgeAdmin
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.outbox_ports import CLAIM_BATCH, ClaimedNotice
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

CLEAN_UP_EVERY = timedelta(minutes=10)
PURGE_EVERY = timedelta(hours=1)

ClaimJob = Callable[[str, str], bool]
"""True for exactly one caller per (job, run key) across all processes."""


class TelegramJobs:
    def __init__(
        self,
        core: ConversationService,
        knowledge: KnowledgeAdmin,
        settings: Settings,
        *,
        clock: Callable[[], datetime],
        loaded_version: Callable[[], str | None],
        claim_job: ClaimJob | None = None,
        on_index_loaded: Callable[[str], None] | None = None,
    ) -> None:
        self._core = core
        self._knowledge = knowledge
        self._settings = settings
        self._clock = clock
        self._claim_job = claim_job
        self._on_index_loaded = on_index_loaded
        self._loaded_version = loaded_version

    def schedule(self, application: AnyApplication) -> None:
        jobs = application.job_queue
        if jobs is None:
            log.warning("no job queue (python-telegram-bot[job-queue] missing): no reminders")
            return
        settings = self._settings
        at = settings.reminder_time.replace(tzinfo=ZoneInfo(settings.timezone))
        jobs.run_daily(self.daily_reminder, time=at, name="daily-due-reminder")
        every = timedelta(seconds=settings.index_poll_seconds)
        jobs.run_repeating(self.follow_index, interval=every, first=every, name="index-follower")
        jobs.run_repeating(
            self.clean_up_forms, interval=CLEAN_UP_EVERY, first=CLEAN_UP_EVERY, name="form-clean-up"
        )
        poll = timedelta(seconds=settings.notice_poll_seconds)
        jobs.run_repeating(self.deliver_notices, interval=poll, first=poll, name="notice-outbox")
        jobs.run_repeating(
            self.purge_notices, interval=PURGE_EVERY, first=PURGE_EVERY, name="notice-purge"
        )

    async def daily_reminder(self, context: Context) -> None:
        if self._claim_job is not None:
            today = self._clock().date().isoformat()
            if not await asyncio.to_thread(self._claim_job, "daily-reminder", today):
                return  # another worker sends today's reminder
        digests = await asyncio.to_thread(self._core.daily_digests, CHANNEL)
        sent = 0
        for digest in digests:
            if not digest.text:
                continue
            try:
                await send(context.bot, int(digest.user.external_id), digest.text)
                sent += 1
            except (Forbidden, BadRequest, ValueError) as error:
                log.info("reminder to user %s failed: %s", digest.user.id, type(error).__name__)
        log.info("daily reminder sent to %d of %d staff", sent, len(digests))

    async def clean_up_forms(self, context: Context) -> None:
        """Delete the forms abandoned past the retention time and tell their users. Every
        worker may run it: the core deletes each form once, under its conversation lock."""
        # This process sends Telegram users' notices; the others wait in the outbox.
        notices = await asyncio.to_thread(self._core.clean_up_forms, deliver={"telegram"})
        await notify(context.bot, notices)
        if notices:
            log.info("deleted %d abandoned forms", len(notices))

    async def deliver_notices(self, context: Context) -> None:
        """Send the notices waiting in the outbox for Telegram users. Every worker runs it:
        each notice is claimed by one of them (see handlers/outbox_ports.py)."""
        while True:
            claimed = await asyncio.to_thread(self._core.claim_notices, CHANNEL, CLAIM_BATCH)
            for notice in claimed:
                await self._deliver(context.bot, notice)
            if len(claimed) < CLAIM_BATCH:
                return

    async def _deliver(self, bot: Bot, notice: ClaimedNotice) -> None:
        try:
            await send(bot, int(notice.user.external_id), notice.text)
        except (Forbidden, BadRequest, ValueError) as error:
            # Blocked the bot, never started it, not a chat id: trying again will not help.
            await asyncio.to_thread(self._core.notice_failed, notice, permanent=True)
            log.warning(
                "gave up on notice %s to user %s: %s",
                notice.id,
                notice.user.id,
                type(error).__name__,
            )
        except TelegramError as error:  # the network, Telegram's servers: try again later
            gave_up = await asyncio.to_thread(self._core.notice_failed, notice)
            if gave_up:
                log.warning(
                    "gave up on notice %s to user %s after %d attempts: %s",
                    notice.id,
                    notice.user.id,
                    notice.attempts,
                    type(error).__name__,
                )
            else:
                log.info(
                    "notice %s to user %s failed (attempt %d), will try again: %s",
                    notice.id,
                    notice.user.id,
                    notice.attempts,
                    type(error).__name__,
                )
        else:
            await asyncio.to_thread(self._core.notice_sent, notice.id)

    async def purge_notices(self, context: Context) -> None:
        """Delete the notices older than the outbox keeps them (every worker may: a delete)."""
        deleted = await asyncio.to_thread(self._core.purge_notices)
        if deleted:
            log.info("deleted %d old notices", deleted)

    async def follow_index(self, context: Context | None = None) -> None:
        """Pick up an index published by another process (``cadrebot index``, another worker)."""
        try:
            switched = await asyncio.to_thread(self._knowledge.follow_published)
        except Exception:
            log.exception("could not load the newly published index; keeping the current one")
            return
        version = self._loaded_version()
        if switched and version is not None:
            log.info("switched to index version %s", version)
            if self._on_index_loaded is not None:
                self._on_index_loaded(version)
