"""A turn's result as Telegram messages: texts split for a phone, options and actions as
buttons, notices to other users, files, and background work reporting its progress.

The one place that turns :class:`~cadrebot.handlers.turns.TurnResult` into Bot API calls;
it decides nothing about the conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from typing import Any

from telegram import Bot, ForceReply, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, TelegramError

from cadrebot.bot.telegram import keyboards as kb
from cadrebot.handlers.turns import BackgroundTask, Notice, TurnResult

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TELEGRAM_TEXT_LIMIT = 4096
MESSAGE_CHARS = 3500  # well under the limit: a long wall of text is unreadable on a phone
PROGRESS_EVERY_SECONDS = 2.0

Markup = InlineKeyboardMarkup | ForceReply | None
Spawn = Callable[[Coroutine[Any, Any, None]], None]


def split_text(text: str, limit: int = MESSAGE_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a blank line, else at a line
    end, else at a sentence end (。；), else hard. Never returns an empty list."""
    text = text.strip() or "（空）"
    pieces: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = -1
        for separator in ("\n\n", "\n", "。", "；", "，"):
            position = window.rfind(separator)
            if position >= limit // 3:
                cut = position + len(separator)
                break
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


async def send(bot: Bot, chat_id: int, text: str, markup: Markup = None) -> Message:
    """Send ``text`` (in pieces if long); the markup goes under the last piece."""
    pieces = split_text(text)
    sent: Message | None = None
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        sent = await bot.send_message(chat_id, piece, reply_markup=markup if last else None)
    assert sent is not None
    return sent


async def edit(message: Message, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    try:
        await message.edit_text(split_text(text)[0], reply_markup=markup)
    except BadRequest as error:
        if "not modified" not in str(error).lower():
            raise


async def notify(bot: Bot, notices: Sequence[Notice]) -> None:
    """Send the notices meant for users of this channel; other channels' stay."""
    for notice in notices:
        if notice.user.channel != CHANNEL:
            continue
        try:
            await bot.send_message(int(notice.user.external_id), notice.text)
        except (Forbidden, BadRequest, ValueError) as error:
            # The user blocked the bot or never started it: nothing more we can do.
            log.info("could not notify user %s: %s", notice.user.id, type(error).__name__)


class Renderer:
    """Delivers turn results to one bot; background tasks are started with ``spawn``."""

    def __init__(self, bot: Bot, spawn: Spawn) -> None:
        self._bot = bot
        self._spawn = spawn

    async def deliver(
        self, chat_id: int, result: TurnResult, *, origin: Message | None = None
    ) -> None:
        """Everything ``result`` says, for a message in ``chat_id``. ``origin``: the message
        whose button was tapped, updated in place where the result says so."""
        last: Message | None = None
        for reply in result.replies:
            if origin is not None and reply.replaces_origin:
                markup = kb.reply_markup(reply)
                inline = markup if isinstance(markup, InlineKeyboardMarkup) else None
                await edit(origin, reply.text, inline)
                last = origin
            else:
                last = await send(self._bot, chat_id, reply.text, kb.reply_markup(reply))
        if origin is not None and result.origin_actions is not None:
            with suppress(BadRequest):
                await origin.edit_reply_markup(kb.actions_keyboard(result.origin_actions))
        if result.toast and origin is None and not result.replies:
            last = await send(self._bot, chat_id, result.toast)
        for file in result.files:
            await self._bot.send_document(
                chat_id, document=file.data, filename=file.file_name, caption=file.caption or None
            )
        await self.notify(result.notices)
        self.start(result.tasks, chat_id, last)

    def start(self, tasks: Sequence[BackgroundTask], chat_id: int, status: Message | None) -> None:
        """Run ``tasks`` in the background; their progress replaces ``status``'s text."""
        for task in tasks:
            self._spawn(self._run(task, chat_id, status))

    async def notify(self, notices: Sequence[Notice]) -> None:
        await notify(self._bot, notices)

    async def _run(self, task: BackgroundTask, chat_id: int, status: Message | None) -> None:
        """Run ``task`` in a worker thread, showing its progress in ``status``."""
        loop = asyncio.get_running_loop()
        last_report = 0.0

        def progress(text: str) -> None:
            nonlocal last_report
            now = time.monotonic()
            if status is None or now - last_report < PROGRESS_EVERY_SECONDS:
                return
            last_report = now
            asyncio.run_coroutine_threadsafe(self._quiet_edit(status, text), loop)

        outcome = await asyncio.to_thread(task.run, progress)
        await send(self._bot, chat_id, outcome)

    @staticmethod
    async def _quiet_edit(message: Message, text: str) -> None:
        with suppress(TelegramError):  # a progress line is not worth an error
            await edit(message, text)
