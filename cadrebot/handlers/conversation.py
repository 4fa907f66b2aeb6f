"""The conversation service: one entry point for every channel.

``handle_turn(channel, external_id, display_name, text)`` runs one turn inside one unit of
work, under the conversation's lock: identify the user (and their role), load the dialog
state, run the command / form step / policy question, save or delete the state, file the
case if the form was confirmed, log the exchange, commit. All state lives in the
repositories, so a service rebuilt from them (a restart, another worker) resumes exactly
where the user was. The turn returns structured output (:class:`~cadrebot.handlers.turns.
TurnResult`) that channels render.

Commands come from the registry (:mod:`cadrebot.handlers.commands`), declared with their
roles by the feature that owns them: Q&A (:mod:`~cadrebot.handlers.qa`), the intake forms
(:mod:`~cadrebot.handlers.intake`), the case desk (:mod:`~cadrebot.handlers.casework`),
invites (:mod:`~cadrebot.handlers.invites`) and the knowledge base
(:mod:`~cadrebot.handlers.admin`). The role check is made here, once, for every channel.

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

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from cadrebot.handlers.admin import UPLOAD_COMMAND, UPLOADS_OFF, AdminError, KnowledgeAdmin
from cadrebot.handlers.casework import CaseDesk, Digest
from cadrebot.handlers.commands import Command, CommandCall, CommandRegistry, TurnOutput
from cadrebot.handlers.followups import resolve_followup, understood_in, understood_line
from cadrebot.handlers.forms import default_registry
from cadrebot.handlers.forms.engine import FormEngine, FormRegistry
from cadrebot.handlers.forms.policy import HOTLINE
from cadrebot.handlers.forms.validators import normalize
from cadrebot.handlers.intake import Intake, looks_like_question
from cadrebot.handlers.invites import InviteDesk, RoleBook, new_invite_code
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.offers import OfferBook
from cadrebot.handlers.outbox_ports import (
    CLAIM_BATCH,
    CLAIM_LEASE,
    KEEP_FOR,
    ClaimedNotice,
    NoticeUnitOfWork,
    NoticeUnitOfWorkFactory,
    retry_time,
)
from cadrebot.handlers.places import PlaceRegister, bind_places
from cadrebot.handlers.ports import (
    ConcurrentUpdateError,
    ConversationKey,
    DialogState,
    Exchange,
    ExchangeKind,
    OfficeUnitOfWork,
    PolicyAnswer,
    PolicyAnswerer,
    Reply,
    User,
)
from cadrebot.handlers.qa import (
    QUESTION_KINDS,
    PolicyQa,
    answer_actions,
    suggestion_actions,
)
from cadrebot.handlers.turns import Inbound, Notice, TurnReceipt, TurnResult
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"/([A-Za-z_]+)(?:@\S+)?(?:\s+(.*))?", re.DOTALL)
# C0/C1 control characters except tab and newline, and lone UTF-16 surrogates (what a terminal
# with the wrong encoding or a JSON "\ud800" escape yields). PostgreSQL rejects NUL in text
# and no database driver can encode a lone surrogate, so both would fail the whole turn.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

MAX_MESSAGE_CHARS = 2000
"""Longer messages are refused politely (the longest form answer allows 500 characters)."""

APOLOGY = f"抱歉，系统暂时出了点问题，请稍后再发一次。如有急事请拨打{HOTLINE}热线。"
CONFLICT = "您的上一条消息还在处理中，请稍等片刻再发送。"


def parse_command(text: str) -> tuple[str, str] | None:
    """``("setstatus", "FX-2026-000001 不予纳入 理由")`` for a command, else None. The name is
    recognised in the normalised text (full-width slash, case); the argument is kept as
    typed (full-width punctuation in a note or a question stays as written)."""
    command = _COMMAND.fullmatch(normalize(text))
    if command is None:
        return None
    typed = _COMMAND.fullmatch(text.strip())
    argument = (typed[2] if typed is not None else command[2]) or ""
    return command[1].lower(), argument


def storable_text(text: str) -> str:
    """``text`` without the characters no database can store (control chars, lone surrogates)."""
    return _UNSTORABLE.sub("", text)


@dataclass(frozen=True)
class _PreparedAnswer:
    """A Q&A answer computed before the locked part of the turn, for exactly ``question``
    asked after ``previous`` (the conversation's previous question then)."""

    question: str
    previous: str | None
    understood: str | None  # the follow-up resolved against ``previous``
    answer: PolicyAnswer


@dataclass(frozen=True)
class UploadCheck:
    """The verdict on an announced upload: ``name`` to store it under, or a refusal."""

    name: str | None
    reply: str


class _Ask(Protocol):
    def __call__(self, question: str, into: TurnOutput, *, offer: bool = ...) -> None: ...


class ConversationService:
    def __init__(
        self,
        uow_factory: NoticeUnitOfWorkFactory,
        answerer: PolicyAnswerer,
        *,
        forms: FormRegistry | None = None,
        clock: Callable[[], datetime] | None = None,
        idle_timeout: timedelta = timedelta(minutes=120),
        due_soon_days: int = 3,
        timezone: str = "Asia/Shanghai",
        roles: RoleBook | None = None,
        knowledge: KnowledgeAdmin | None = None,
        on_case_filed: Callable[[str], None] | None = None,
        invite_codes: Callable[[], str] = new_invite_code,
        places: PlaceRegister | None = None,
        form_retention: timedelta | None = None,
        offers: OfferBook | None = None,
        pull_channels: frozenset[str] = frozenset(),
    ) -> None:
        self._uow_factory = uow_factory
        self._offers = offers or OfferBook()
        # Channels that cannot reach a user until that user comes back (the web chat): the
        # notices for their users always wait in the outbox, never in a result.
        self._pull_channels = pull_channels
        # A follow-up refers to a question asked this recently in the same conversation.
        self._followup_window = idle_timeout
        # An unfinished form's answers (an ID number among them) are deleted this long after
        # its last step; never before the form expires.
        self._form_retention = max(form_retention or idle_timeout, idle_timeout)
        zone = ZoneInfo(timezone)
        self._clock = clock or (lambda: datetime.now(zone))
        places = places or PlaceRegister()  # none given: townships accepted as typed
        forms = bind_places(forms or default_registry(), places)
        self._place_names = tuple(sorted({t.county for t in places.townships() if t.county}))
        self._intake = Intake(forms, idle_timeout=idle_timeout)
        self._qa = PolicyQa(answerer)
        self._answerer = answerer
        self._desk = CaseDesk(forms, clock=self._clock, due_soon_days=due_soon_days, places=places)
        self._roles = roles or RoleBook()
        self._knowledge = knowledge
        self._on_case_filed = on_case_filed
        self._registry = CommandRegistry(
            [
                Command("start", "开始使用", self._start, menu=True),
                Command("help", "查看帮助", self._help, menu=True),
                *self._qa.commands(),
                *self._intake.commands(),
                *self._desk.commands(),
                *InviteDesk(clock=self._clock, code_factory=invite_codes, places=places).commands(),
                *(knowledge.commands() if knowledge is not None else ()),
            ]
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        uow_factory: NoticeUnitOfWorkFactory,
        answerer: PolicyAnswerer,
        *,
        clock: Callable[[], datetime] | None = None,
        roles: RoleBook | None = None,
        knowledge: KnowledgeAdmin | None = None,
        on_case_filed: Callable[[str], None] | None = None,
        places: PlaceRegister | None = None,
        offers: OfferBook | None = None,
        pull_channels: frozenset[str] = frozenset(),
    ) -> ConversationService:
        return cls(
            uow_factory,
            answerer,
            clock=clock,
            idle_timeout=timedelta(minutes=settings.form_idle_minutes),
            form_retention=timedelta(minutes=settings.form_retention_minutes),
            due_soon_days=settings.due_soon_days,
            timezone=settings.timezone,
            roles=roles,
            knowledge=knowledge,
            on_case_filed=on_case_filed,
            places=places,
            offers=offers,
            pull_channels=pull_channels,
        )

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock turns are timed by (tests pass a fixed one)."""
        return self._clock

    @property
    def engine(self) -> FormEngine:
        return self._intake.engine

    @property
    def commands(self) -> CommandRegistry:
        return self._registry

    # ------------------------------------------------------------------ entry points

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
        replying_to: str | None = None,
        via_button: bool = False,
        receipt: TurnReceipt | None = None,
    ) -> TurnResult:
        """:meth:`turn` with the message's parts as arguments."""
        inbound = Inbound(
            channel, external_id, display_name, text, chat_id, replying_to, via_button
        )
        return self.turn(inbound, receipt=receipt)

    def turn(self, inbound: Inbound, *, receipt: TurnReceipt | None = None) -> TurnResult:
        """One inbound message, start to end. ``receipt`` completes the channel's delivery
        record in the turn's transaction (a webhook inbox row)."""
        started = time.perf_counter()
        now = self._clock()
        key = ConversationKey(inbound.channel, inbound.chat)
        text = storable_text(inbound.text)
        if inbound.replying_to:
            text = self._desk.note_reply(inbound.replying_to, text) or text
        try:
            prepared = self._prepare_answer(key, text, now)
            with self._uow_factory() as uow:
                with uow.dialogs.locked(key):
                    user = self._roles.identify_in(
                        uow.users, inbound.channel, inbound.external_id, inbound.display_name
                    )
                    out = self._dispatch(uow, user, key, text, now, prepared, inbound.via_button)
                    exchange_id = uow.exchanges.record(
                        self._exchange(key, user.id, now, text, out, started)
                    )
                    notices = self._queue_elsewhere(uow, inbound.channel, out.notices, now)
                    if receipt is not None:
                        receipt.complete_in(uow)
                # Still under the lock (it lasts the transaction); committing after the
                # block spares taking it again for a statement-less rest of the block.
                uow.commit()
            if receipt is not None:
                receipt.committed()
        except Exception as error:  # the user always gets an answer; the log gets the trace
            log.exception("conversation turn failed for %s", key)
            message = CONFLICT if isinstance(error, ConcurrentUpdateError) else APOLOGY
            failed = TurnOutput(replies=[Reply(message)], kind=ExchangeKind.ERROR)
            failed_id = self._record_failure(key, inbound, now, text, failed, started)
            return TurnResult(failed.replies, failed_id)
        if out.filed is not None and self._on_case_filed is not None:
            self._on_case_filed(out.filed)
        suggested = suggestion_actions(out.suggestions)
        replies = [
            dataclasses.replace(r, actions=r.actions + answer_actions(exchange_id) + suggested)
            if r.is_answer
            else r
            for r in out.replies
        ]
        return TurnResult(
            replies,
            exchange_id,
            notices=tuple(notices),
            files=tuple(out.files),
            tasks=tuple(out.tasks),
            toast=out.toast,
            origin_actions=out.origin_actions,
            suggestions=tuple(a.label for a in suggested),
        )

    def daily_digests(self, channel: str) -> list[Digest]:
        """For every cadre and admin on ``channel``: what is overdue or due soon today."""
        with self._uow_factory() as uow:
            return self._desk.daily_digests(uow, channel)

    def clean_up_forms(self, *, deliver: Collection[str] | None = None) -> list[Notice]:
        """Delete the unfinished forms idle past the retention time and tell each user.

        ``deliver``: the channels the caller sends notices on itself (a Telegram process:
        ``{"telegram"}``); those notices are returned. Every other user's notice is queued
        in the outbox in the same transaction as the deletion, for their channel to deliver
        (a browser when it comes back). None: return them all (the caller sends them).

        Each form under its conversation's lock and re-checked there, so a user answering
        just now keeps the form."""
        now = self._clock()
        cutoff = now - self._form_retention
        with self._uow_factory(read_only=True) as uow:
            idle = list(uow.dialogs.idle_since(cutoff))
        notices: list[Notice] = []
        for state in idle:
            with self._uow_factory() as uow:
                with uow.dialogs.locked(state.key):
                    current = uow.dialogs.load(state.key)
                    if current is None or current.updated_at >= cutoff:
                        continue
                    uow.dialogs.delete(state.key)
                    user = uow.users.find(state.key.channel, state.key.chat_id)
                    notice = None
                    if user is not None:
                        text = self._intake.engine.expiry_notice(current)
                        if deliver is None or user.channel in deliver:
                            notice = Notice(user, text)
                        else:
                            uow.outbox.add(user, text, now)
                uow.commit()
            log.info("deleted an abandoned form of %s", state.key)
            if notice is not None:
                notices.append(notice)
        return notices

    # ------------------------------------------------------------------ the notice outbox

    def _queue_elsewhere(
        self, uow: NoticeUnitOfWork, channel: str, notices: Sequence[Notice], now: datetime
    ) -> list[Notice]:
        """The notices for users of the turn's own channel, which it delivers at once with
        the result; the others (a web-chat farmer told of a Telegram cadre's /setstatus, or
        of a move made in the web chat itself, which cannot reach another browser) go to
        the outbox in the turn's transaction, for their channel to deliver."""
        here: list[Notice] = []
        for notice in notices:
            if notice.user.channel == channel and channel not in self._pull_channels:
                here.append(notice)
            else:
                uow.outbox.add(notice.user, notice.text, now)
        return here

    def pending_notices(self, channel: str, external_id: str) -> list[str]:
        """The notices waiting for this user, oldest first, from now on counted as delivered:
        for a channel that shows them when the user comes back (the web chat)."""
        with self._uow_factory(read_only=True) as uow:
            user = uow.users.find(channel, external_id)
            # Most visits find nothing: spare them a write transaction.
            if user is None or not uow.outbox.has_pending(user.id):
                return []
        with self._uow_factory() as uow:
            texts = list(uow.outbox.take_for_user(user.id, self._clock()))
            uow.commit()
        return texts

    def claim_notices(self, channel: str, limit: int = CLAIM_BATCH) -> list[ClaimedNotice]:
        """Pending notices of ``channel`` for this caller to send, oldest first; no other
        caller gets them until the claim lapses. Report each with :meth:`notice_sent` or
        :meth:`notice_failed`."""
        now = self._clock()
        with self._uow_factory() as uow:
            claimed = list(uow.outbox.claim(channel, now, until=now + CLAIM_LEASE, limit=limit))
            uow.commit()
        return claimed

    def notice_sent(self, notice_id: int) -> None:
        with self._uow_factory() as uow:
            uow.outbox.mark_sent(notice_id, self._clock())
            uow.commit()

    def notice_failed(self, notice: ClaimedNotice, *, permanent: bool = False) -> bool:
        """A claimed notice could not be sent: it is tried again later, or (``permanent``,
        or too many attempts) given up. True when given up."""
        retry_at = retry_time(notice.attempts, self._clock(), permanent=permanent)
        with self._uow_factory() as uow:
            uow.outbox.retry(notice.id, retry_at)
            uow.commit()
        return retry_at is None

    def purge_notices(self) -> int:
        """Delete the notices older than the outbox keeps them; how many."""
        with self._uow_factory() as uow:
            deleted = uow.outbox.delete_before(self._clock() - KEEP_FOR)
            uow.commit()
        return deleted

    # ------------------------------------------------------------------ uploads

    def check_upload(
        self, inbound: Inbound, file_name: str | None, size: int | None
    ) -> UploadCheck:
        """May this user upload this document? Asked before the channel fetches the file."""
        refusal = self._upload_refusal(inbound)
        if refusal is not None:
            return UploadCheck(None, refusal)
        assert self._knowledge is not None
        try:
            name = self._knowledge.check_upload(file_name, size)
        except AdminError as error:
            return UploadCheck(None, error.message)
        return UploadCheck(name, f"已收到“{name}”，正在下载和检查……")

    def store_upload(self, inbound: Inbound, name: str, path: Path) -> TurnResult:
        """Put the fetched document into the knowledge base; the result's task re-indexes."""
        refusal = self._upload_refusal(inbound)
        if refusal is not None:
            return TurnResult([Reply(refusal)])
        assert self._knowledge is not None
        return self._knowledge.accept_upload(name, path)

    def _upload_refusal(self, inbound: Inbound) -> str | None:
        upload = self._registry.get(UPLOAD_COMMAND)
        if upload is None or self._knowledge is None:
            return UPLOADS_OFF
        with self._uow_factory() as uow:
            user = self._roles.identify_in(
                uow.users, inbound.channel, inbound.external_id, inbound.display_name
            )
            uow.commit()
        return None if upload.allows(user) else upload.refusal()

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
        if not word or len(word) > MAX_MESSAGE_CHARS:
            return None
        command = parse_command(text)
        if command is not None:
            name, argument = command
            if name != "ask" or not argument.strip():
                return None
            question: str | None = argument.strip()
            with self._uow_factory(read_only=True) as uow:
                previous = self._previous_question(uow, key, now)
        else:
            with self._uow_factory(read_only=True) as uow:
                state = uow.dialogs.load(key)
                question = self._intake.question_in(state, text, now)
                # Only a question needs its predecessor: a form answer spares the read.
                previous = self._previous_question(uow, key, now) if question is not None else None
            # The connection is back in the pool before this point.
        if question is None:
            return None
        understood = resolve_followup(question, previous, self._place_names)
        answer = self._answerer.answer(understood or question)
        return _PreparedAnswer(question, previous, understood, answer)

    def _previous_question(
        self, uow: OfficeUnitOfWork, key: ConversationKey, now: datetime
    ) -> str | None:
        """The conversation's previous policy question, as it was understood, if recent."""
        logged = uow.exchanges.latest(key, QUESTION_KINDS)
        if logged is None or now - logged.exchange.at > self._followup_window:
            return None
        exchange = logged.exchange
        return (
            understood_in(exchange.reply_text)
            or (parse_command(exchange.inbound_text) or ("", exchange.inbound_text))[1].strip()
        )

    # ------------------------------------------------------------------ dispatch

    def _dispatch(
        self,
        uow: OfficeUnitOfWork,
        user: User,
        key: ConversationKey,
        text: str,
        now: datetime,
        prepared: _PreparedAnswer | None,
        via_button: bool,
    ) -> TurnOutput:
        out = TurnOutput()
        engine = self._intake.engine
        word = normalize(text)
        state = uow.dialogs.load(key)
        if state is not None and engine.is_expired(state, now):
            uow.dialogs.delete(key)
            out.say(*engine.step(state, text, now).replies)
            state = None
            if not word.startswith("/") and not looks_like_question(word):
                out.kind = ExchangeKind.FORM
                return out

        if not word:
            out.say("请输入文字内容。发送 /help 查看我能做什么。")
            return out
        if len(word) > MAX_MESSAGE_CHARS:
            out.say(
                f"您发送的内容太长了（{len(word)}字），请精简到{MAX_MESSAGE_CHARS}字以内再发送。"
            )
            if state is not None:
                out.say(engine.reminder(state))
            return out

        def ask(question: str, into: TurnOutput, *, offer: bool = False) -> None:
            self._answer(uow, key, now, question, into, prepared, offer=offer)

        command = parse_command(text)
        if command is not None:
            name, argument = command
            call = CommandCall(
                user=user,
                argument=argument,
                now=now,
                uow=uow,
                state=state,
                out=out,
                via_button=via_button,
                chat_id=key.chat_id,
                channel=key.channel,
                question=lambda question: self._ask_command(question, out, state, ask),
            )
            self._command(name, call)
        elif state is not None:
            self._intake.step(uow, user, state, text, now, out, ask=ask)
        else:
            out.kind = ExchangeKind.QA
            ask(text.strip(), out, offer=True)
        return out

    def _command(self, name: str, call: CommandCall) -> None:
        command = self._registry.get(name)
        state, out = call.state, call.out
        if command is None:
            out.say(f"没有“/{name}”这个命令。\n{self._registry.help_text(call.user)}")
        elif not command.allows(call.user):
            out.say(command.refusal())
        else:
            command.run(call)
            if not command.reminds_form:
                return
        if state is not None:
            out.say(self._intake.engine.reminder(state))

    def _ask_command(
        self,
        question: str,
        out: TurnOutput,
        state: DialogState | None,
        ask: _Ask,
    ) -> None:
        """``/ask``: a question, also in the middle of a form (it never becomes a field's
        answer there); the form is reminded after the answer."""
        ask(question, out, offer=state is None)
        out.kind = ExchangeKind.QA if state is None else ExchangeKind.FORM_QA
        if state is not None:
            out.say(self._intake.engine.reminder(state))

    def _answer(
        self,
        uow: OfficeUnitOfWork,
        key: ConversationKey,
        now: datetime,
        question: str,
        out: TurnOutput,
        prepared: _PreparedAnswer | None,
        *,
        offer: bool,
    ) -> None:
        """Answer ``question`` (a follow-up resolved against the previous question first);
        outside a form, offer the form behind it (a hardship described: ``/report``)."""
        previous = self._previous_question(uow, key, now)
        if prepared is not None and (prepared.question, prepared.previous) == (question, previous):
            understood, answer = prepared.understood, prepared.answer
        else:
            # The state changed since the peek (a concurrent message); rare, so answering
            # under the lock is acceptable here.
            log.debug("answering under the conversation lock")
            understood = resolve_followup(question, previous, self._place_names)
            answer = self._answerer.answer(understood or question)
        out.found = answer.found
        out.chunk_ids = tuple(answer.chunk_ids)
        out.kb_version = answer.kb_version or None
        text = f"{understood_line(understood)}\n{answer.text}" if understood else answer.text
        actions = self._offers.actions(question) if offer else ()
        # Next questions outside a form only: in a form the next message answers the form.
        if offer and answer.found:
            out.suggestions = tuple(answer.suggestions)
        out.say(Reply(text, actions=actions, is_answer=True))

    # ------------------------------------------------------------------ start and help

    def _start(self, call: CommandCall) -> None:
        call.out.say(
            f"您好，{mask_sensitive(call.user.display_name) or '乡亲'}！我是乡村振兴政策助手。\n"
            "您可以直接提问政策问题，例如：“家里有人生病住院，能申请什么帮扶？”\n"
            f"{self._registry.help_text(call.user)}"
        )

    def _help(self, call: CommandCall) -> None:
        call.out.say(self._registry.help_text(call.user))

    # ------------------------------------------------------------------ logging

    def _exchange(
        self,
        key: ConversationKey,
        user_id: int | None,
        now: datetime,
        text: str,
        out: TurnOutput,
        started: float,
    ) -> Exchange:
        return Exchange(
            channel=key.channel,
            chat_id=key.chat_id,
            user_id=user_id,
            at=now,
            inbound_text=mask_sensitive(text),
            reply_text=mask_sensitive("\n\n".join(r.text for r in out.replies) or out.toast or ""),
            kind=out.kind,
            found=out.found,
            chunk_ids=out.chunk_ids,
            latency_ms=int((time.perf_counter() - started) * 1000),
            kb_version=out.kb_version,
        )

    def _record_failure(
        self,
        key: ConversationKey,
        inbound: Inbound,
        now: datetime,
        text: str,
        out: TurnOutput,
        started: float,
    ) -> int | None:
        try:
            with self._uow_factory() as uow:
                # Look the user up afresh: one created by the failed turn was rolled back
                # with it, and its id would now violate the foreign key.
                user = uow.users.find(inbound.channel, inbound.external_id)
                user_id = user.id if user is not None else None
                exchange_id = uow.exchanges.record(
                    self._exchange(key, user_id, now, text, out, started)
                )
                uow.commit()
        except Exception:  # logging the failure must not hide it from the user
            log.exception("could not record the failed exchange for %s", key)
            return None
        return exchange_id


def replies_text(replies: Sequence[Reply]) -> str:
    """All replies as one text (console output, tests)."""
    return "\n\n".join(r.text for r in replies)
