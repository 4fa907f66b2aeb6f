"""The intake forms as a feature: a command per form (declared by the form itself), /cancel,
and each step of a form in progress, filing the case when the user confirms.

The form engine (:mod:`cadrebot.handlers.forms.engine`) is pure; this module stores what it
decides in the turn's unit of work, so "file the case and clear the form" commit together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from cadrebot.handlers.commands import Command, CommandCall, TurnOutput
from cadrebot.handlers.forms.engine import FormEngine, FormRegistry, FormSpec, StepOutcome
from cadrebot.handlers.forms.validators import normalize
from cadrebot.handlers.ports import (
    ConversationKey,
    DialogState,
    ExchangeKind,
    UnitOfWork,
    User,
)

log = logging.getLogger(__name__)

_QUESTION_MARKERS = ("吗", "多少", "怎么", "什么", "哪", "如何")

AskQuestion = Callable[[str, TurnOutput], None]
"""Answers a policy question typed in the middle of a form into the turn's output."""


def looks_like_question(text: str) -> bool:
    """A policy question typed in the middle of a form (only asked of rejected answers)."""
    value = normalize(text)
    return value.endswith(("？", "?")) or any(marker in value for marker in _QUESTION_MARKERS)


class Intake:
    def __init__(self, forms: FormRegistry, *, idle_timeout: timedelta) -> None:
        self._forms = forms
        self.engine = FormEngine(forms, idle_timeout=idle_timeout)

    @property
    def forms(self) -> FormRegistry:
        return self._forms

    def commands(self) -> list[Command]:
        starts = [
            Command(
                form.command.removeprefix("/"),
                form.summary,
                self._starter(form),
                menu=True,
                reminds_form=False,
            )
            for form in self._forms.all()
        ]
        cancel = Command(
            "cancel", "放弃正在填写的申报", self._cancel, menu=True, reminds_form=False
        )
        return [*starts, cancel]

    def _starter(self, form: FormSpec) -> Callable[[CommandCall], None]:
        def start(call: CommandCall) -> None:
            state, out = call.state, call.out
            if state is None:
                started = self.engine.start(form.name, self._key(call), call.now)
                assert started.state is not None
                call.uow.dialogs.save(started.state)
                out.kind = ExchangeKind.FORM
                out.say(*started.replies)
            elif state.form_name == form.name:
                out.say(self.engine.reminder(state))
            else:
                active = self._forms[state.form_name]
                out.say(
                    f"您正在填写《{active.title}》，请先填完，或回复“取消”后再开始新的申报。",
                    self.engine.reminder(state),
                )

        return start

    def _cancel(self, call: CommandCall) -> None:
        if call.state is None:
            call.out.say("当前没有正在填写的申报。")
            return
        self.step(call.uow, call.user, call.state, "取消", call.now, call.out, ask=None)

    @staticmethod
    def _key(call: CommandCall) -> ConversationKey:
        return ConversationKey(call.channel, call.chat_id)

    def step(
        self,
        uow: UnitOfWork,
        user: User,
        state: DialogState,
        text: str,
        now: datetime,
        out: TurnOutput,
        *,
        ask: AskQuestion | None,
    ) -> None:
        """One answer to the form in progress."""
        out.kind = ExchangeKind.FORM
        result = self.engine.step(state, text, now)
        match result.outcome:
            case StepOutcome.ASKED:
                assert result.state is not None
                uow.dialogs.save(result.state)
                out.say(*result.replies)
            case StepOutcome.REJECTED:
                if ask is not None and looks_like_question(text):
                    ask(text.strip(), out)
                    out.kind = ExchangeKind.FORM_QA
                    out.say(self.engine.reminder(state))
                else:
                    out.say(*result.replies)
            case StepOutcome.SUBMIT:
                form = self._forms[state.form_name]
                case = uow.cases.create(form.file_case(result.answers, user.id, now))
                uow.dialogs.delete(state.key)
                log.info("filed case %s (%s)", case.number, case.case_type)
                out.filed = case.case_type
                out.say(form.confirmation(case))
            case StepOutcome.CANCELLED | StepOutcome.ENDED | StepOutcome.EXPIRED:
                uow.dialogs.delete(state.key)
                out.say(*result.replies)

    def question_in(self, state: DialogState | None, text: str, now: datetime) -> str | None:
        """The policy question ``text`` is, going by the form in progress: all of it outside
        a form, and inside one when it is not an answer to the current field but reads like
        a question. Pure (the engine stores nothing), so it can run before the turn."""
        word = normalize(text)
        if state is not None and self.engine.is_expired(state, now):
            if word.startswith("/") or not looks_like_question(word):
                return None
            state = None
        if state is None:
            return text.strip()
        result = self.engine.step(state, text, now)
        if result.outcome is StepOutcome.REJECTED and looks_like_question(text):
            return text.strip()
        return None
