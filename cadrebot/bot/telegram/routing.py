"""Telegram updates in, the conversation core decides, the renderer sends.

Nothing here keeps conversation state or decides anything about it: a typed message, a
tapped option and a tapped action all become one :class:`~cadrebot.handlers.turns.Inbound`
for the core, and its :class:`~cadrebot.handlers.turns.TurnResult` is rendered as it says.
Every button carries the text or command it stands for, and a reply to a prompt carries the
prompt's text, so a restarted process, or a second one, carries on every dialog.

Updates are processed concurrently (``concurrent_updates``), but one chat's updates run one
after another, in order, under a per-chat lock. The core is blocking (database, search), so
it runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from telegram import CallbackQuery, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from cadrebot.bot.telegram import keyboards as kb
from cadrebot.bot.telegram.flood import FLOOD_WARNING, FloodGuard, Verdict
from cadrebot.bot.telegram.rendering import CHANNEL, Renderer
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.turns import Inbound, TurnReceipt, TurnResult
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
Receipts = Callable[[int], TurnReceipt | None]
"""The delivery record of an update being processed, by update id (a webhook inbox row)."""

RETRY = "抱歉，处理您的消息时出了点问题，请稍后再试一次。"
TEXT_ONLY = "我目前只能处理文字消息。请直接输入您的问题，或发送 /help 查看帮助。"
STALE_BUTTON = "这个按钮已失效，请重新发送命令。"
STALE_OPTION = "这个按钮已失效，请直接输入您的选择。"


def _no_receipts(update_id: int) -> TurnReceipt | None:
    return None


class ChatLocks:
    """One asyncio lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        self._users[chat_id] = self._users.get(chat_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[chat_id] -= 1
            if self._users[chat_id] == 0:
                del self._users[chat_id]
                del self._locks[chat_id]


def inbound_of(update: Update, text: str, *, via_button: bool = False) -> Inbound:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    replying_to: str | None = None
    message = update.message
    prompt = message.reply_to_message if message is not None else None
    if prompt is not None and prompt.text and prompt.from_user and prompt.from_user.is_bot:
        replying_to = prompt.text
    return Inbound(
        CHANNEL,
        str(user.id),
        user.full_name,
        text,
        chat_id=str(chat.id),
        replying_to=replying_to,
        via_button=via_button,
    )


class TelegramRouter:
    """The update handlers of one Application."""

    def __init__(
        self, core: ConversationService, settings: Settings, *, receipts: Receipts = _no_receipts
    ) -> None:
        self._core = core
        self._receipts = receipts
        self._flood = FloodGuard(settings.flood_max_messages, settings.flood_window_seconds)
        self._chats = ChatLocks()

    def register(self, application: AnyApplication) -> None:
        private = filters.ChatType.PRIVATE
        application.add_handler(MessageHandler(private & filters.TEXT, self.on_text))
        application.add_handler(CallbackQueryHandler(self.on_callback))
        application.add_handler(
            MessageHandler(
                private & ~filters.TEXT & ~filters.Document.ALL & ~filters.StatusUpdate.ALL,
                self.on_other,
            )
        )
        application.add_error_handler(self.on_error)

    async def admit(self, update: Update) -> bool:
        """The per-user flood guard: False (and a polite word once) when over the limit."""
        user = update.effective_user
        if user is None:
            return False
        verdict = self._flood.check(user.id)
        if verdict is Verdict.ALLOW:
            return True
        if verdict is Verdict.WARN:
            log.info("flood guard: user %s over the limit", user.id)
            if update.callback_query is not None:
                await update.callback_query.answer(FLOOD_WARNING, show_alert=True)
            elif update.effective_message is not None:
                await update.effective_message.reply_text(FLOOD_WARNING)
        elif update.callback_query is not None:
            await update.callback_query.answer()
        return False

    async def _turn(self, update: Update, inbound: Inbound) -> TurnResult:
        receipt = self._receipts(update.update_id)
        return await asyncio.to_thread(self._core.turn, inbound, receipt=receipt)

    @staticmethod
    def renderer(context: Context) -> Renderer:
        application = context.application

        def spawn(coroutine: Any) -> None:
            # Application.create_task keeps a reference and awaits the task on shutdown.
            application.create_task(coroutine)

        return Renderer(context.bot, spawn)

    # ------------------------------------------------------------------ update handlers

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or not await self.admit(update):
            return
        async with self._chats.hold(message.chat_id):
            result = await self._turn(update, inbound_of(update, message.text))
            await self.renderer(context).deliver(message.chat_id, result)

    async def on_other(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or not await self.admit(update):
            return
        await message.reply_text(TEXT_ONLY)

    async def on_callback(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or not await self.admit(update):
            return
        callback = kb.decode(query.data or "")
        message = query.message
        if callback is None or not isinstance(message, Message):
            await query.answer(STALE_BUTTON)
            return
        async with self._chats.hold(message.chat_id):
            await self._pressed(update, context, query, message, callback)

    async def _pressed(
        self,
        update: Update,
        context: Context,
        query: CallbackQuery,
        message: Message,
        callback: kb.Callback,
    ) -> None:
        match callback:
            case kb.OptionPayload(payload):
                text = payload
            case kb.OptionLabel(row, column):
                markup = message.reply_markup
                try:
                    button = markup.inline_keyboard[row][column] if markup else None
                except IndexError:
                    button = None
                if button is None:
                    await query.answer(STALE_OPTION)
                    return
                text = kb.label_text(button.text)
            case kb.ActionCommand(command):
                text = command
        result = await self._turn(update, inbound_of(update, text, via_button=True))
        await query.answer(result.toast)
        option = not isinstance(callback, kb.ActionCommand)
        if option and not any(r.replaces_origin for r in result.replies):
            # The question is answered: take its buttons away so they are not tapped twice.
            with suppress(BadRequest):
                await message.edit_reply_markup(None)
        await self.renderer(context).deliver(message.chat_id, result, origin=message)

    # ------------------------------------------------------------------ errors

    async def on_error(self, update: object, context: Context) -> None:
        error = context.error
        update_id = update.update_id if isinstance(update, Update) else None
        if error is None:
            return
        if update_id is None and isinstance(error, TelegramError):
            # Polling hiccups (network, server restarts) are retried by the updater.
            log.warning("telegram API error outside an update: %s", type(error).__name__)
            return
        trace = "".join(traceback.format_exception(error))
        # Masked here, not only by the log filter: the trace may quote user input.
        log.error("update %s failed:\n%s", update_id, mask_sensitive(trace))
        if isinstance(update, Update):
            if update.callback_query is not None:
                with suppress(TelegramError):
                    await update.callback_query.answer(RETRY)
            chat = update.effective_chat
            if chat is not None and chat.type == ChatType.PRIVATE:
                try:
                    await context.bot.send_message(chat.id, RETRY)
                except TelegramError:
                    log.warning("could not tell chat about the failed update %s", update_id)
