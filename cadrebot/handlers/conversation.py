"""The conversation service: one entry point for every channel.

``handle(channel, external_id, display_name, text)`` runs one turn inside one unit of work,
under the conversation's lock: load the dialog state, run the command / form step / policy
question, save or delete the state, file the case if the form was confirmed, log the
exchange, commit. All state lives in the repositories, so a service rebuilt from them (a
restart, another worker) resumes exactly where the user was.

Policy questions are answered *before* that unit of work, with no transaction open: on
SQLite a unit of work holds the database-wide write lock, and a Q&A answer takes far longer
than any form step, so computing it under the lock would serialise every chat on the slowest
thing the bot does. A short read peeks at the dialog state to tell whether the message will
be answered as a question (outside any form, or a question typed in the middle of one); if
so the answer is computed first and the locked turn uses it. The locked turn decides
everything afresh from the state it reads under the lock, so a form started meanwhile by a
concurrent message is honoured (the message becomes that form's input, or the question is
answered under the lock); the peek can only ever save time, never change a decision.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cadrebot.handlers.cases import CaseDesk, CaseError
from cadrebot.handlers.forms import default_registry
from cadrebot.handlers.forms.engine import FormEngine, FormRegistry, StepOutcome
from cadrebot.handlers.forms.policy import HOTLINE
from cadrebot.handlers.forms.validators import normalize
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import (
    ConcurrentUpdateError,
    ConversationKey,
    DialogState,
    Exchange,
    ExchangeKind,
    PolicyAnswer,
    PolicyAnswerer,
    Reply,
    Role,
    UnitOfWork,
    UnitOfWorkFactory,
    User,
)
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

_QUESTION_MARKERS = ("吗", "多少", "怎么", "什么", "哪", "如何")
_COMMAND = re.compile(r"/([A-Za-z_]+)(?:@\S+)?(?:\s+(.*))?", re.DOTALL)
# C0/C1 control characters except tab and newline, and lone UTF-16 surrogates (what a terminal
# with the wrong encoding or a JSON "\ud800" escape yields). PostgreSQL rejects NUL in text
# and no database driver can encode a lone surrogate, so both would fail the whole turn.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

MAX_MESSAGE_CHARS = 2000
"""Longer messages are refused politely (the longest form answer allows 500 characters)."""

APOLOGY = f"抱歉，系统暂时出了点问题，请稍后再发一次。如有急事请拨打{HOTLINE}热线。"
CONFLICT = "您的上一条消息还在处理中，请稍等片刻再发送。"


def looks_like_question(text: str) -> bool:
    """A policy question typed in the middle of a form (only asked of rejected answers)."""
    value = normalize(text)
    return value.endswith(("？", "?")) or any(marker in value for marker in _QUESTION_MARKERS)


def storable_text(text: str) -> str:
    """``text`` without the characters no database can store (control chars, lone surrogates)."""
    return _UNSTORABLE.sub("", text)


@dataclass(frozen=True)
class _PreparedAnswer:
    """A Q&A answer computed before the locked part of the turn, for exactly ``question``."""

    question: str
    answer: PolicyAnswer


@dataclass
class _Turn:
    """What one inbound message produced, for the reply and the exchange log."""

    prepared: _PreparedAnswer | None = None
    replies: list[Reply] = field(default_factory=list)
    kind: ExchangeKind = ExchangeKind.COMMAND
    found: bool | None = None
    chunk_ids: tuple[str, ...] = ()
    kb_version: str | None = None
    filed: str | None = None  # the case type, when this turn filed a case
    answer_text: str | None = None  # the policy answer this turn gave, when it asked one

    def say(self, *replies: Reply | str) -> None:
        self.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)


@dataclass(frozen=True)
class TurnResult:
    """The replies to one inbound message and the id of the exchange that logged it."""

    replies: list[Reply]
    exchange_id: int | None  # None when even logging the (failed) turn failed
    answer_text: str | None  # the policy answer among the replies (it takes 👍/👎), if any


class ConversationService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        answerer: PolicyAnswerer,
        *,
        forms: FormRegistry | None = None,
        clock: Callable[[], datetime] | None = None,
        idle_timeout: timedelta = timedelta(minutes=120),
        due_soon_days: int = 3,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self._uow_factory = uow_factory
        self._answerer = answerer
        self._forms = forms or default_registry()
        self._engine = FormEngine(self._forms, idle_timeout=idle_timeout)
        zone = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(zone))
        self._due_soon_days = due_soon_days
        # Called with the case type after a turn that filed a case committed (metrics).
        self.on_case_filed: Callable[[str], None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        uow_factory: UnitOfWorkFactory,
        answerer: PolicyAnswerer,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> ConversationService:
        return cls(
            uow_factory,
            answerer,
            clock=clock,
            idle_timeout=timedelta(minutes=settings.form_idle_minutes),
            due_soon_days=settings.due_soon_days,
            timezone=settings.timezone,
        )

    @property
    def engine(self) -> FormEngine:
        return self._engine

    # ------------------------------------------------------------------ entry point

    def handle(
        self,
        channel: str,
        external_id: str,
        display_name: str,
        text: str,
        *,
        chat_id: str | None = None,
    ) -> list[Reply]:
        """Process one inbound message; returns the replies to send, in order.

        ``chat_id`` defaults to ``external_id`` (a private chat). Blocking: call it from a
        worker thread in async code.
        """
        return self.handle_turn(channel, external_id, display_name, text, chat_id=chat_id).replies

    def handle_turn(
        self,
        channel: str,
        external_id: str,
        display_name: str,
        text: str,
        *,
        chat_id: str | None = None,
    ) -> TurnResult:
        """:meth:`handle`, also telling which exchange logged the turn."""
        started = time.perf_counter()
        now = self._clock()
        key = ConversationKey(channel, chat_id or external_id)
        text = storable_text(text)
        try:
            prepared = self._prepare_answer(key, text, now)
            with self._uow_factory() as uow:
                with uow.dialogs.locked(key):
                    user = uow.users.get_or_create(channel, external_id, display_name)
                    turn = self._dispatch(uow, user, key, text, now, prepared)
                    exchange_id = uow.exchanges.record(
                        self._exchange(key, user.id, now, text, turn, started)
                    )
                # Still under the lock (it lasts the transaction); committing after the
                # block spares taking it again for a statement-less rest of the block.
                uow.commit()
        except Exception as error:  # the user always gets an answer; the log gets the trace
            log.exception("conversation turn failed for %s", key)
            message = CONFLICT if isinstance(error, ConcurrentUpdateError) else APOLOGY
            failed = _Turn(replies=[Reply(message)], kind=ExchangeKind.ERROR)
            failed_id = self._record_failure(
                key, (channel, external_id), now, text, failed, started
            )
            return TurnResult(failed.replies, failed_id, answer_text=None)
        if turn.filed is not None and self.on_case_filed is not None:
            self.on_case_filed(turn.filed)
        return TurnResult(turn.replies, exchange_id, turn.answer_text)

    # ------------------------------------------------------------------ Q&A outside the lock

    def _prepare_answer(
        self, key: ConversationKey, text: str, now: datetime
    ) -> _PreparedAnswer | None:
        """The Q&A answer to ``text`` if, going by the dialog state now, it is a question.

        Runs the answerer with no transaction open (see the module docstring). ``None`` when
        the message is a command or a form answer; the locked turn then needs no answer, or,
        if a concurrent message changed the state meanwhile, computes it itself.
        """
        word = normalize(text)
        if not word or len(word) > MAX_MESSAGE_CHARS or _COMMAND.fullmatch(word):
            return None
        with self._uow_factory(read_only=True) as uow:
            state = uow.dialogs.load(key)
        # The connection is back in the pool before this point.
        question = self._question_in(state, text, word, now)
        if question is None:
            return None
        return _PreparedAnswer(question, self._answerer.answer(question))

    def _question_in(
        self, state: DialogState | None, text: str, word: str, now: datetime
    ) -> str | None:
        """What :meth:`_dispatch` would send to the answerer for ``text`` in ``state``.

        Mirrors the dispatch rules without touching storage (the form engine is pure).
        """
        if state is not None and self._engine.is_expired(state, now):
            if word.startswith("/") or not looks_like_question(word):
                return None
            state = None
        if state is None:
            return text.strip()
        result = self._engine.step(state, text, now)
        if result.outcome is StepOutcome.REJECTED and looks_like_question(text):
            return text.strip()
        return None

    # ------------------------------------------------------------------ dispatch

    def _dispatch(
        self,
        uow: UnitOfWork,
        user: User,
        key: ConversationKey,
        text: str,
        now: datetime,
        prepared: _PreparedAnswer | None = None,
    ) -> _Turn:
        turn = _Turn(prepared=prepared)
        word = normalize(text)
        state = uow.dialogs.load(key)
        if state is not None and self._engine.is_expired(state, now):
            uow.dialogs.delete(key)
            turn.say(*self._engine.step(state, text, now).replies)
            state = None
            if not word.startswith("/") and not looks_like_question(word):
                turn.kind = ExchangeKind.FORM
                return turn

        if not word:
            turn.say("请输入文字内容。发送 /help 查看我能做什么。")
            return turn
        if len(word) > MAX_MESSAGE_CHARS:
            turn.say(
                f"您发送的内容太长了（{len(word)}字），请精简到{MAX_MESSAGE_CHARS}字以内再发送。"
            )
            if state is not None:
                turn.say(self._engine.reminder(state))
            return turn
        command = _COMMAND.fullmatch(word)
        if command is not None:
            self._command(uow, user, key, state, command[1].lower(), command[2] or "", now, turn)
        elif state is not None:
            self._form_step(uow, user, key, state, text, now, turn)
        else:
            self._ask(text.strip(), turn, kind=ExchangeKind.QA)
        return turn

    def _form_step(
        self,
        uow: UnitOfWork,
        user: User,
        key: ConversationKey,
        state: DialogState,
        text: str,
        now: datetime,
        turn: _Turn,
    ) -> None:
        turn.kind = ExchangeKind.FORM
        result = self._engine.step(state, text, now)
        match result.outcome:
            case StepOutcome.ASKED:
                assert result.state is not None
                uow.dialogs.save(result.state)
                turn.say(*result.replies)
            case StepOutcome.REJECTED:
                if looks_like_question(text):
                    self._ask(text.strip(), turn, kind=ExchangeKind.FORM_QA)
                    turn.say(self._engine.reminder(state))
                else:
                    turn.say(*result.replies)
            case StepOutcome.SUBMIT:
                form = self._forms[state.form_name]
                case = uow.cases.create(form.file_case(result.answers, user.id, now))
                uow.dialogs.delete(key)
                log.info("filed case %s (%s)", case.number, case.case_type)
                turn.filed = case.case_type
                turn.say(form.confirmation(case))
            case StepOutcome.CANCELLED | StepOutcome.ENDED | StepOutcome.EXPIRED:
                uow.dialogs.delete(key)
                turn.say(*result.replies)

    def _ask(self, question: str, turn: _Turn, *, kind: ExchangeKind) -> None:
        prepared = turn.prepared
        if prepared is not None and prepared.question == question:
            answer = prepared.answer
        else:
            # The state changed since the peek (a concurrent message); rare, so answering
            # under the lock is acceptable here.
            log.debug("answering under the conversation lock")
            answer = self._answerer.answer(question)
        turn.kind = kind
        turn.found = answer.found
        turn.chunk_ids = tuple(answer.chunk_ids)
        version = getattr(answer, "kb_version", None)
        turn.kb_version = version if isinstance(version, str) and version else None
        turn.answer_text = answer.text
        turn.say(answer.text)

    # ------------------------------------------------------------------ commands

    def _command(
        self,
        uow: UnitOfWork,
        user: User,
        key: ConversationKey,
        state: DialogState | None,
        name: str,
        argument: str,
        now: datetime,
        turn: _Turn,
    ) -> None:
        turn.kind = ExchangeKind.COMMAND
        form = self._forms.by_command(f"/{name}")
        if form is not None:
            if state is None:
                started = self._engine.start(form.name, key, now)
                assert started.state is not None
                uow.dialogs.save(started.state)
                turn.kind = ExchangeKind.FORM
                turn.say(*started.replies)
            elif state.form_name == form.name:
                turn.say(self._engine.reminder(state))
            else:
                active = self._forms[state.form_name]
                turn.say(
                    f"您正在填写《{active.title}》，请先填完，或回复“取消”后再开始新的申报。",
                    self._engine.reminder(state),
                )
            return
        if name == "cancel":
            if state is None:
                turn.say("当前没有正在填写的申报。")
            else:
                self._form_step(uow, user, key, state, "取消", now, turn)
            return
        if name == "start":
            turn.say(self._welcome(user))
        elif name == "help":
            turn.say(self._help(user))
        elif name == "mycases":
            self._my_cases(uow, user, argument, now, turn)
        elif name == "case":
            self._show_case(uow, user, argument, now, turn)
        elif name == "setstatus":
            self._set_status(uow, user, argument, now, turn)
        else:
            turn.say(f"没有“/{name}”这个命令。\n{self._help(user)}")
        if state is not None:
            turn.say(self._engine.reminder(state))

    def _welcome(self, user: User) -> str:
        return (
            f"您好，{user.display_name or '乡亲'}！我是乡村振兴政策助手。\n"
            "您可以直接提问政策问题，例如：“监测对象识别认定一般不超过多少天？”\n"
            f"{self._help(user)}"
        )

    def _help(self, user: User) -> str:
        lines = [
            "可用的命令：",
            "/report 防返贫风险自主申报",
            "/subsidy 产业奖补申请（脱贫户、监测户）",
            "/mycases 查看我的申报和办理进度",
            "/cancel 放弃正在填写的申报",
            "/help 查看帮助",
        ]
        if user.role in (Role.CADRE, Role.ADMIN):
            lines += [
                "干部命令：",
                "/mycases 辖区案件、即将到期和已逾期事项",
                "/case 编号 查看案件详情",
                "/setstatus 编号 新状态 [理由] 办理案件，如：/setstatus FX-2026-000001 核实中",
            ]
        lines.append("直接输入问题即可查询政策，回答会注明出处。")
        return "\n".join(lines)

    def _desk(self, uow: UnitOfWork) -> CaseDesk:
        return CaseDesk(uow.cases, self._forms)

    def _my_cases(
        self, uow: UnitOfWork, user: User, argument: str, now: datetime, turn: _Turn
    ) -> None:
        if argument.strip():
            self._show_case(uow, user, argument, now, turn)
            return
        desk = self._desk(uow)
        page = desk.list_for(user, limit=10)
        if user.role is Role.FARMER:
            if not page.items:
                turn.say("您还没有提交过申报。发送 /report 或 /subsidy 开始申报。")
                return
            turn.say(desk.render_list(page) + "\n发送 /mycases 编号 查看详情。")
            return
        today = now.date()
        turn.say(
            desk.render_list(page),
            desk.render_due(desk.overdue(user, today), heading="已逾期"),
            desk.render_due(
                desk.due_soon(user, today, self._due_soon_days),
                heading=f"{self._due_soon_days}天内到期",
            ),
        )

    def _show_case(
        self, uow: UnitOfWork, user: User, argument: str, now: datetime, turn: _Turn
    ) -> None:
        number = argument.strip().split()[0] if argument.strip() else ""
        if not number:
            turn.say("请在命令后写上案件编号，例如：/case FX-2026-000001")
            return
        desk = self._desk(uow)
        try:
            case = desk.get(user, number)
            events = desk.events(user, number)
        except CaseError as refusal:
            turn.say(refusal.message)
            return
        turn.say(desk.render(case, user, today=now.date(), events=events))

    def _set_status(
        self, uow: UnitOfWork, user: User, argument: str, now: datetime, turn: _Turn
    ) -> None:
        parts = argument.split(maxsplit=2)
        if len(parts) < 2:
            turn.say("用法：/setstatus 编号 新状态 [理由]，如：/setstatus FX-2026-000001 核实中")
            return
        number, to_status = parts[0], parts[1]
        note = parts[2] if len(parts) > 2 else ""
        desk = self._desk(uow)
        try:
            case = desk.transition(user, number, to_status, now=now, note=note)
        except CaseError as refusal:
            turn.say(refusal.message)
            return
        due = "".join(
            f"\n{name}期限：{day.isoformat()}" for name, day in sorted(case.due_dates.items())
        )
        turn.say(f"案件 {case.number} 已改为“{case.status}”。{due}")

    # ------------------------------------------------------------------ logging

    def _exchange(
        self,
        key: ConversationKey,
        user_id: int | None,
        now: datetime,
        text: str,
        turn: _Turn,
        started: float,
    ) -> Exchange:
        return Exchange(
            channel=key.channel,
            chat_id=key.chat_id,
            user_id=user_id,
            at=now,
            inbound_text=mask_sensitive(text),
            reply_text=mask_sensitive("\n\n".join(r.text for r in turn.replies)),
            kind=turn.kind,
            found=turn.found,
            chunk_ids=turn.chunk_ids,
            latency_ms=int((time.perf_counter() - started) * 1000),
            kb_version=turn.kb_version,
        )

    def _record_failure(
        self,
        key: ConversationKey,
        account: tuple[str, str],
        now: datetime,
        text: str,
        turn: _Turn,
        started: float,
    ) -> int | None:
        try:
            with self._uow_factory() as uow:
                # Look the user up afresh: one created by the failed turn was rolled back
                # with it, and its id would now violate the foreign key.
                user = uow.users.find(*account)
                user_id = user.id if user is not None else None
                exchange_id = uow.exchanges.record(
                    self._exchange(key, user_id, now, text, turn, started)
                )
                uow.commit()
        except Exception:  # logging the failure must not hide it from the user
            log.exception("could not record the failed exchange for %s", key)
            return None
        return exchange_id


def replies_text(replies: Sequence[Reply]) -> str:
    """All replies as one text (console output, tests)."""
    return "\n\n".join(r.text for r in replies)
