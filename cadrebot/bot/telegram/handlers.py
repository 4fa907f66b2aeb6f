"""Telegram updates in, ``cadrebot.handlers`` decides, Telegram messages out.

Nothing here keeps conversation state: a form in progress lives in the database (the
conversation service), every button says what it acts on, and the "reason" for a case
decision is asked with a ForceReply prompt that names the case and the new status. So a
restarted process, or a second one, carries on every dialog where it was.

Updates are processed concurrently (``concurrent_updates``), but one chat's updates run one
after another, in order, under a per-chat lock. Blocking work (database, search) runs in
worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram import (
    BotCommand,
    CallbackQuery,
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from cadrebot.bot.telegram import keyboards as kb
from cadrebot.bot.telegram.flood import FLOOD_WARNING, FloodGuard, Verdict
from cadrebot.bot.telegram.rendering import split_text
from cadrebot.bot.telegram.services import CHANNEL, TelegramServices
from cadrebot.handlers.admin import AdminError
from cadrebot.handlers.casework import ExportFile, Notice
from cadrebot.handlers.invites import ADMIN_ONLY, is_staff
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import (
    ConversationKey,
    Exchange,
    ExchangeKind,
    Feedback,
    NotFoundError,
    Reply,
    Role,
    User,
)
from cadrebot.handlers.qa import render_more_sources

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
_COMMAND = re.compile(r"/([A-Za-z_]+)(?:@(\S+))?(?:\s+(.*))?", re.DOTALL)
NOTE_PROMPT = re.compile(r"请填写将案件 (\S+) 改为“(.+?)”的理由")
RETRY = "抱歉，处理您的消息时出了点问题，请稍后再试一次。"
ADMIN_UPLOAD_ONLY = "抱歉，只有管理员可以向知识库上传文件。如需咨询政策，请直接发送文字问题。"
TEXT_ONLY = "我目前只能处理文字消息。请直接输入您的问题，或发送 /help 查看帮助。"
USER_CACHE_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 2.0
QUESTION_KINDS = frozenset({ExchangeKind.QA, ExchangeKind.FORM_QA})

FARMER_COMMANDS = (
    ("start", "开始使用"),
    ("help", "查看帮助"),
    ("ask", "查询政策，如：/ask 监测对象识别认定要多少天"),
    ("report", "防返贫风险自主申报"),
    ("subsidy", "产业奖补申请"),
    ("mycases", "我的申报和办理进度"),
    ("cancel", "放弃正在填写的申报"),
    ("register", "干部登记：/register 邀请码"),
)


def parse_command(text: str, bot_username: str | None) -> tuple[str, str] | None:
    """``("cases", "核实中")`` for "/cases 核实中"; None for plain text or another bot's command."""
    match = _COMMAND.fullmatch(text.strip())
    if match is None:
        return None
    addressed = match.group(2)
    if addressed and bot_username and addressed.lower() != bot_username.lower():
        return None
    return match.group(1).lower(), (match.group(3) or "").strip()


def extra_help(user: User) -> str:
    """The Telegram-only commands, by role (the conversation service lists the others)."""
    lines = ["/ask 问题  查询政策（填写申报时也可以用）"]
    if user.role is Role.FARMER:
        lines.append("/register 邀请码  干部登记")
    if is_staff(user):
        lines += [
            "案件台：",
            "/cases [状态]  辖区案件（可翻页、点按钮办理）",
            "/case 编号  查看案件和可办理的操作",
            "/overdue  即将到期和已逾期事项",
            "/export  导出案件台账（Excel）",
        ]
    if user.role is Role.ADMIN:
        lines += [
            "管理员：",
            "/kb  知识库文件列表；直接发送文件即可上传",
            "/reload  重新扫描知识库并更新索引",
            "/kbremove 文件名  移除文件",
            "/search 问题  命中测试",
            "/stats  问答统计",
            "/invite 乡镇 [村]  生成干部邀请码",
            "/invites  邀请码和干部名单",
            "/revoke 邀请码  作废邀请码",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class _Turn:
    user: User
    replies: list[Reply]
    answer_text: str | None = None  # the policy answer among the replies, if any
    exchange_id: int | None = None


class ChatLocks:
    """One asyncio lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @asynccontextmanager
    async def hold(self, chat_id: int) -> Any:
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


class TelegramBot:
    """The update handlers of one Application."""

    def __init__(self, services: TelegramServices) -> None:
        self._s = services
        settings = services.settings
        self._flood = FloodGuard(settings.flood_max_messages, settings.flood_window_seconds)
        self._chats = ChatLocks()
        self._kb_lock = asyncio.Lock()
        self._known: dict[str, tuple[User, float]] = {}
        self._own: dict[str, Callable[[Message, User, str, Context], Awaitable[None]]] = {
            "ask": self._cmd_ask,
            "register": self._cmd_register,
            "invite": self._cmd_invite,
            "invites": self._cmd_invites,
            "revoke": self._cmd_revoke,
            "kb": self._cmd_kb,
            "reload": self._cmd_reload,
            "kbremove": self._cmd_kbremove,
            "search": self._cmd_search,
            "stats": self._cmd_stats,
            "cases": self._cmd_cases,
            "case": self._cmd_case,
            "setstatus": self._cmd_setstatus,
            "overdue": self._cmd_overdue,
            "export": self._cmd_export,
        }

    # ------------------------------------------------------------------ registration

    def register(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        private = filters.ChatType.PRIVATE
        application.add_handler(MessageHandler(private & filters.Document.ALL, self.on_document))
        application.add_handler(MessageHandler(private & filters.TEXT, self.on_text))
        application.add_handler(CallbackQueryHandler(self.on_callback))
        application.add_handler(
            MessageHandler(
                private & ~filters.TEXT & ~filters.Document.ALL & ~filters.StatusUpdate.ALL,
                self.on_other,
            )
        )
        application.add_error_handler(self.on_error)

    async def post_init(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await application.bot.set_my_commands([BotCommand(c, d) for c, d in FARMER_COMMANDS])
        jobs = application.job_queue
        if jobs is None:
            log.warning("no job queue (python-telegram-bot[job-queue] missing): no reminders")
            return
        settings = self._s.settings
        from zoneinfo import ZoneInfo

        at = settings.reminder_time.replace(tzinfo=ZoneInfo(settings.timezone))
        jobs.run_daily(self.daily_reminder, time=at, name="daily-due-reminder")
        jobs.run_repeating(
            self.follow_index, interval=timedelta(seconds=60), first=60, name="index-follower"
        )

    # ------------------------------------------------------------------ helpers

    def _spawn(
        self, context: Context, coroutine: Coroutine[Any, Any, None], update: object = None
    ) -> None:
        # Application.create_task keeps a reference and awaits the task on shutdown.
        context.application.create_task(coroutine, update=update)

    async def _admit(self, update: Update) -> bool:
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

    def _identify(self, external_id: str, display_name: str) -> User:
        """The user (blocking; call in a worker thread), cached briefly to spare the database."""
        cached = self._known.get(external_id)
        now = time.monotonic()
        if (
            cached is not None
            and now - cached[1] < USER_CACHE_SECONDS
            and cached[0].display_name == display_name
        ):
            return cached[0]
        user = self._s.roles.identify(external_id, display_name)
        if len(self._known) > 50_000:
            self._known.clear()
        self._known[external_id] = (user, now)
        return user

    def _forget_users(self) -> None:
        self._known.clear()

    async def _user(self, update: Update) -> User:
        tg_user = update.effective_user
        assert tg_user is not None
        return await asyncio.to_thread(self._identify, str(tg_user.id), tg_user.full_name)

    async def _send(
        self,
        context: Context,
        chat_id: int,
        text: str,
        markup: InlineKeyboardMarkup | ForceReply | None = None,
    ) -> Message:
        pieces = split_text(text)
        sent: Message | None = None
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            sent = await context.bot.send_message(
                chat_id, piece, reply_markup=markup if last else None
            )
        assert sent is not None
        return sent

    async def _edit(
        self, message: Message, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        try:
            await message.edit_text(split_text(text)[0], reply_markup=markup)
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise

    async def _send_replies(self, context: Context, chat_id: int, turn: _Turn) -> None:
        for reply in turn.replies:
            markup = kb.options_keyboard(reply)
            if (
                markup is None
                and turn.exchange_id is not None
                and turn.answer_text is not None
                and reply.text == turn.answer_text
            ):
                markup = kb.answer_keyboard(turn.exchange_id)
            await self._send(context, chat_id, reply.text, markup)

    async def _notify(self, context: Context, notices: Sequence[Notice]) -> None:
        for notice in notices:
            if notice.user.channel != CHANNEL:
                continue
            try:
                await context.bot.send_message(int(notice.user.external_id), notice.text)
            except (Forbidden, BadRequest, ValueError) as error:
                # The farmer blocked the bot or never started it: nothing more we can do.
                log.info("could not notify user %s: %s", notice.user.id, type(error).__name__)

    # ------------------------------------------------------------------ conversation

    def _converse_blocking(self, external_id: str, name: str, chat_id: int, text: str) -> _Turn:
        user = self._identify(external_id, name)
        result = self._s.conversation.handle_turn(
            CHANNEL, external_id, name, text, chat_id=str(chat_id)
        )
        if result.answer_text is None:
            return _Turn(user, result.replies)
        return _Turn(user, result.replies, result.answer_text, result.exchange_id)

    async def _converse(self, update: Update, context: Context, text: str) -> _Turn:
        tg_user = update.effective_user
        chat = update.effective_chat
        assert tg_user is not None and chat is not None
        turn = await asyncio.to_thread(
            self._converse_blocking, str(tg_user.id), tg_user.full_name, chat.id, text
        )
        await self._send_replies(context, chat.id, turn)
        return turn

    # ------------------------------------------------------------------ update handlers

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or message.text is None or not await self._admit(update):
            return
        async with self._chats.hold(message.chat_id):
            await self._on_text(update, context, message, message.text)

    async def _on_text(self, update: Update, context: Context, message: Message, text: str) -> None:
        prompt = message.reply_to_message
        if prompt is not None and prompt.text and prompt.from_user and prompt.from_user.is_bot:
            target = NOTE_PROMPT.search(prompt.text)
            if target is not None:
                user = await self._user(update)
                await self._move_case(context, message.chat_id, user, target[1], target[2], text)
                return
        command = parse_command(text, context.bot.username)
        if command is not None and command[0] in self._own:
            user = await self._user(update)
            await self._own[command[0]](message, user, command[1], context)
            return
        turn = await self._converse(update, context, text)
        if command is not None and command[0] in ("help", "start"):
            await self._send(context, message.chat_id, extra_help(turn.user))

    async def on_other(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or not await self._admit(update):
            return
        await message.reply_text(TEXT_ONLY)

    async def on_callback(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or not await self._admit(update):
            return
        callback = kb.decode(query.data or "")
        message = query.message
        if callback is None or not isinstance(message, Message):
            await query.answer("这个按钮已失效，请重新发送命令。")
            return
        async with self._chats.hold(message.chat_id):
            await self._on_callback(update, context, query, message, callback)

    async def _on_callback(
        self,
        update: Update,
        context: Context,
        query: CallbackQuery,
        message: Message,
        callback: kb.Callback,
    ) -> None:
        match callback:
            case kb.OptionPayload() | kb.OptionLabel():
                await self._pressed_option(update, context, query, message, callback)
            case kb.Rate(exchange_id, feedback):
                rated = await asyncio.to_thread(
                    self._rate, exchange_id, str(message.chat_id), feedback
                )
                await query.answer("感谢您的反馈！" if rated else "这条回答已无法评价。")
                if rated:
                    await message.edit_reply_markup(kb.answer_keyboard(exchange_id, rated=True))
            case kb.MoreSources(exchange_id):
                await query.answer()
                text = await asyncio.to_thread(
                    self._more_sources, exchange_id, str(message.chat_id)
                )
                await self._send(context, message.chat_id, text)
            case kb.CasePage(offset, status):
                await query.answer()
                user = await self._user(update)
                view = await asyncio.to_thread(self._s.casework.list_cases, user, status, offset)
                await self._edit(message, view.text, kb.case_list_keyboard(view))
            case kb.CaseOpen(number):
                await query.answer()
                user = await self._user(update)
                case_view = await asyncio.to_thread(self._s.casework.show, user, number)
                await self._send(
                    context, message.chat_id, case_view.text, kb.case_keyboard(case_view)
                )
            case kb.CaseMove(number, to_status):
                await query.answer()
                user = await self._user(update)
                casework = self._s.casework
                if await asyncio.to_thread(casework.needs_note, user, number, to_status):
                    await self._send(
                        context,
                        message.chat_id,
                        f"请填写将案件 {number} 改为“{to_status}”的理由（直接回复本消息）：",
                        ForceReply(input_field_placeholder="理由"),
                    )
                    return
                await self._move_case(
                    context, message.chat_id, user, number, to_status, "", message
                )

    async def _pressed_option(
        self,
        update: Update,
        context: Context,
        query: CallbackQuery,
        message: Message,
        callback: kb.OptionPayload | kb.OptionLabel,
    ) -> None:
        if isinstance(callback, kb.OptionPayload):
            payload = callback.payload
        else:
            markup = message.reply_markup
            try:
                button = markup.inline_keyboard[callback.row][callback.column] if markup else None
            except IndexError:
                button = None
            if button is None:
                await query.answer("这个按钮已失效，请直接输入您的选择。")
                return
            payload = kb.label_text(button.text)
        await query.answer()
        toggling = payload.startswith("toggle:")
        if not toggling:
            # The question is answered: take its buttons away so they are not tapped twice.
            with suppress(BadRequest):
                await message.edit_reply_markup(None)
        tg_user = update.effective_user
        assert tg_user is not None
        turn = await asyncio.to_thread(
            self._converse_blocking, str(tg_user.id), tg_user.full_name, message.chat_id, payload
        )
        if toggling and len(turn.replies) == 1 and turn.replies[0].multi_select:
            reply = turn.replies[0]
            # Toggle in place: the same message shows the ✓ marks and the selection so far.
            await self._edit(
                message, f"{_question_part(message.text)}{reply.text}", kb.options_keyboard(reply)
            )
            return
        await self._send_replies(context, message.chat_id, turn)

    def _rate(self, exchange_id: int, chat_id: str, feedback: Feedback) -> bool:
        with self._s.office() as uow:
            logged = uow.exchanges.get(exchange_id)
            if logged is None or logged.exchange.chat_id != chat_id:
                return False
            try:
                uow.exchanges.set_feedback(exchange_id, feedback)
            except NotFoundError:
                return False
            uow.commit()
        return True

    def _more_sources(self, exchange_id: int, chat_id: str) -> str:
        with self._s.office() as uow:
            logged = uow.exchanges.get(exchange_id)
        if logged is None or logged.exchange.chat_id != chat_id:
            return "这条回答的出处已无法查看，请重新提问。"
        answer = self._s.composer.answer(logged.exchange.inbound_text)
        return render_more_sources(answer)

    # ------------------------------------------------------------------ /ask

    async def _cmd_ask(self, message: Message, user: User, argument: str, context: Context) -> None:
        if not argument:
            await message.reply_text(
                "请在 /ask 后面写上您的问题，例如：/ask 监测对象识别认定要多少天？"
            )
            return
        turn = await asyncio.to_thread(self._ask_blocking, user, message.chat_id, argument)
        await self._send_replies(context, message.chat_id, turn)

    def _ask_blocking(self, user: User, chat_id: int, question: str) -> _Turn:
        key = ConversationKey(CHANNEL, str(chat_id))
        with self._s.office() as uow:
            state = uow.dialogs.load(key)
        if state is None:  # no form open: a plain question, logged by the conversation service
            return self._converse_blocking(user.external_id, user.display_name, chat_id, question)
        # In a form, "/ask" must not become the answer to the current field: answer it here,
        # log it as a question asked in the form, and remind where the form stands.
        started = time.perf_counter()
        answer = self._s.composer.answer(question)
        reminder = self._s.conversation.engine.reminder(state)
        replies = [Reply(answer.text), reminder]
        with self._s.office() as uow:
            uow.exchanges.record(
                Exchange(
                    channel=CHANNEL,
                    chat_id=str(chat_id),
                    user_id=user.id,
                    at=self._s.clock(),
                    inbound_text=mask_sensitive(question),
                    reply_text=mask_sensitive("\n\n".join(r.text for r in replies)),
                    kind=ExchangeKind.FORM_QA,
                    found=answer.found,
                    chunk_ids=tuple(answer.chunk_ids),
                    latency_ms=int((time.perf_counter() - started) * 1000),
                    kb_version=answer.kb_version or None,
                )
            )
            uow.commit()
            logged = uow.exchanges.latest(key, QUESTION_KINDS)
        return _Turn(user, replies, answer.text, logged.id if logged else None)

    # ------------------------------------------------------------------ roles and invites

    async def _cmd_register(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        text = await asyncio.to_thread(self._s.invites.register, user, argument)
        self._forget_users()
        await message.reply_text(text)

    async def _cmd_invite(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        await message.reply_text(await asyncio.to_thread(self._s.invites.create, user, argument))

    async def _cmd_invites(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        text = await asyncio.to_thread(self._s.invites.overview, user)
        await self._send(context, message.chat_id, text)

    async def _cmd_revoke(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        text = await asyncio.to_thread(self._s.invites.revoke, user, argument)
        self._forget_users()
        await message.reply_text(text)

    # ------------------------------------------------------------------ knowledge base

    async def _cmd_kb(self, message: Message, user: User, argument: str, context: Context) -> None:
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_ONLY)
            return
        text = await asyncio.to_thread(self._s.admin.list_documents)
        await self._send(context, message.chat_id, text)

    async def _cmd_search(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_ONLY)
            return
        text = await asyncio.to_thread(self._s.admin.hit_test, argument)
        await self._send(context, message.chat_id, text)

    async def _cmd_stats(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_ONLY)
            return
        text = await asyncio.to_thread(self._s.admin.stats)
        await self._send(context, message.chat_id, text)

    async def _cmd_reload(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_ONLY)
            return
        status = await message.reply_text("正在重新扫描知识库并更新索引，期间问答照常进行……")
        self._spawn(context, self._rebuild(context, status))

    async def _cmd_kbremove(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_ONLY)
            return
        try:
            async with self._kb_lock:
                removed = await asyncio.to_thread(self._s.admin.remove, argument)
        except AdminError as refusal:
            await message.reply_text(refusal.message)
            return
        status = await message.reply_text(f"已删除文件“{removed}”，正在更新索引……")
        self._spawn(context, self._rebuild(context, status))

    async def on_document(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or message.document is None or not await self._admit(update):
            return
        user = await self._user(update)
        if user.role is not Role.ADMIN:
            await message.reply_text(ADMIN_UPLOAD_ONLY)
            return
        document = message.document
        admin = self._s.admin
        try:
            name = admin.check_upload(document.file_name, document.file_size)
        except AdminError as refusal:
            await message.reply_text(refusal.message)
            return
        status = await message.reply_text(f"已收到“{name}”，正在下载和检查……")
        with tempfile.TemporaryDirectory(prefix="cadrebot-upload-") as folder:
            downloaded = Path(folder) / "upload"
            try:
                file = await context.bot.get_file(document.file_id)
                await file.download_to_drive(downloaded)
            except TelegramError as error:
                log.warning("upload download failed: %s", type(error).__name__)
                await self._edit(
                    status, "文件下载失败（可能超过了 Telegram 的 20 MB 下载上限），请稍后重试。"
                )
                return
            try:
                async with self._kb_lock:
                    stored = await asyncio.to_thread(admin.store_upload, name, downloaded)
            except AdminError as refusal:
                await self._edit(status, refusal.message)
                return
        action = "已替换" if stored.replaced else "已加入知识库"
        await self._edit(
            status,
            f"《{stored.title}》（{stored.file_name}）{action}，正在更新索引，期间问答照常进行……",
        )
        self._spawn(context, self._rebuild(context, status), update)

    async def _rebuild(self, context: Context, status: Message) -> None:
        """Index in a worker thread, showing progress; the new version is swapped in at the end."""
        loop = asyncio.get_running_loop()
        last_report = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last_report
            now = time.monotonic()
            if total == 0 or (done < total and now - last_report < PROGRESS_EVERY_SECONDS):
                return
            last_report = now
            text = f"正在更新索引：已向量化 {done}/{total} 段……"
            asyncio.run_coroutine_threadsafe(self._quiet_edit(status, text), loop)

        async with self._kb_lock:
            try:
                outcome = await asyncio.to_thread(self._s.admin.rebuild, progress)
            except AdminError as refusal:
                text = f"❌ {refusal.message}"
            except Exception:
                log.exception("knowledge base rebuild failed")
                text = "❌ 索引更新失败，仍在使用原来的索引。请检查文件后重试。"
            else:
                text = f"✅ {outcome.summary()}"
        await self._send(context, status.chat_id, text)

    async def _quiet_edit(self, message: Message, text: str) -> None:
        with suppress(TelegramError):  # a progress line is not worth an error
            await self._edit(message, text)

    # ------------------------------------------------------------------ case desk

    async def _cmd_cases(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        view = await asyncio.to_thread(self._s.casework.list_cases, user, argument, 0)
        await self._send(context, message.chat_id, view.text, kb.case_list_keyboard(view))

    async def _cmd_case(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        view = await asyncio.to_thread(self._s.casework.show, user, argument)
        await self._send(context, message.chat_id, view.text, kb.case_keyboard(view))

    async def _cmd_overdue(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        text = await asyncio.to_thread(self._s.casework.due_digest, user)
        await self._send(context, message.chat_id, text)

    async def _cmd_setstatus(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        parts = argument.split(maxsplit=2)
        if len(parts) < 2:
            await message.reply_text(
                "用法：/setstatus 编号 新状态 [理由]，如：/setstatus FX-2026-000001 核实中"
            )
            return
        note = parts[2] if len(parts) > 2 else ""
        await self._move_case(context, message.chat_id, user, parts[0], parts[1], note)

    async def _move_case(
        self,
        context: Context,
        chat_id: int,
        user: User,
        number: str,
        to_status: str,
        note: str,
        case_message: Message | None = None,
    ) -> None:
        outcome = await asyncio.to_thread(
            self._s.casework.transition, user, number, to_status, note
        )
        if outcome.ok and outcome.view is not None and case_message is not None:
            await self._edit(case_message, outcome.view.text, kb.case_keyboard(outcome.view))
        await self._send(context, chat_id, outcome.text)
        await self._notify(context, outcome.notices)

    async def _cmd_export(
        self, message: Message, user: User, argument: str, context: Context
    ) -> None:
        result = await asyncio.to_thread(self._s.casework.export, user)
        if not isinstance(result, ExportFile):
            await message.reply_text(result)
            return
        await context.bot.send_document(
            message.chat_id,
            document=result.data,
            filename=result.file_name,
            caption=f"案件台账：共 {result.count} 件。"
            + ("" if user.role is Role.ADMIN else "身份证号已脱敏。"),
        )

    # ------------------------------------------------------------------ jobs

    async def daily_reminder(self, context: Context) -> None:
        claim = self._s.claim_job
        if claim is not None:
            today = self._s.clock().date().isoformat()
            if not await asyncio.to_thread(claim, "daily-reminder", today):
                return  # another worker sends today's reminder
        digests = await asyncio.to_thread(self._s.casework.daily_digests, CHANNEL)
        sent = 0
        for digest in digests:
            if not digest.text:
                continue
            try:
                await self._send(context, int(digest.user.external_id), digest.text)
                sent += 1
            except (Forbidden, BadRequest, ValueError) as error:
                log.info("reminder to user %s failed: %s", digest.user.id, type(error).__name__)
        log.info("daily reminder sent to %d of %d staff", sent, len(digests))

    async def follow_index(self, context: Context) -> None:
        """Pick up an index published by another process (``cadrebot index``, another worker)."""
        if self._kb_lock.locked():
            return
        try:
            if await asyncio.to_thread(self._s.knowledge.searcher.reload_if_changed):
                log.info("switched to the newly published index")
        except Exception:
            log.exception("could not load the newly published index; keeping the current one")

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


def _question_part(text: str | None) -> str:
    """The question part of a multi-choice message (everything before its "已选：" line)."""
    if not text:
        return ""
    head = text.split("已选：", 1)[0].rstrip()
    return f"{head}\n" if head else ""
