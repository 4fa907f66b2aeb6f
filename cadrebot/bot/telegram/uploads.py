"""Documents sent to the bot: the core says whether this user may upload this file, the
channel fetches it from Telegram, the core stores it and hands back the re-indexing task."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import MessageHandler, filters

from cadrebot.bot.telegram.rendering import edit
from cadrebot.bot.telegram.routing import AnyApplication, Context, TelegramRouter, inbound_of
from cadrebot.handlers.conversation import ConversationService

log = logging.getLogger(__name__)

DOWNLOAD_FAILED = "文件下载失败（可能超过了 Telegram 的 20 MB 下载上限），请稍后重试。"


class UploadHandler:
    def __init__(self, core: ConversationService, router: TelegramRouter) -> None:
        self._core = core
        self._router = router

    def register(self, application: AnyApplication) -> None:
        private = filters.ChatType.PRIVATE
        application.add_handler(MessageHandler(private & filters.Document.ALL, self.on_document))

    async def on_document(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or message.document is None or not await self._router.admit(update):
            return
        document = message.document
        inbound = inbound_of(update, "")
        check = await asyncio.to_thread(
            self._core.check_upload, inbound, document.file_name, document.file_size
        )
        status = await message.reply_text(check.reply)
        if check.name is None:
            return
        with tempfile.TemporaryDirectory(prefix="cadrebot-upload-") as folder:
            downloaded = Path(folder) / "upload"
            try:
                file = await context.bot.get_file(document.file_id)
                await file.download_to_drive(downloaded)
            except TelegramError as error:
                log.warning("upload download failed: %s", type(error).__name__)
                await edit(status, DOWNLOAD_FAILED)
                return
            result = await asyncio.to_thread(
                self._core.store_upload, inbound, check.name, downloaded
            )
        [reply] = result.replies
        await edit(status, reply.text)
        self._router.renderer(context).start(result.tasks, message.chat_id, status)
