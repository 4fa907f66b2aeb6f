"""The form engine: a pure state machine over :class:`DialogState`.

Given the current state and what the user typed (or the payload of a tapped button) it
returns the next state and the replies. It never stores anything and never files a case:
on ``SUBMIT`` the conversation service files the case and clears the state in one
transaction. One field at a time; invalid input is re-asked with the reason and the state
is returned unchanged (the very same object).

Control words (the whole message): 返回 (previous field), 取消 (abandon), 跳过 (optional
fields), 帮助 (the field's help), 完成 (end a multi-choice selection), and in the summary
确认提交 / "改 3" / "修改 手机号" / "3".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cadrebot.handlers.forms.fields import (
    DONE_WORD,
    SKIP_WORD,
    TOGGLE_PREFIX,
    FieldKind,
    FieldSpec,
)
from cadrebot.handlers.forms.validators import InvalidAnswer, normalize
from cadrebot.handlers.forms.workflow import Workflow
from cadrebot.handlers.masking import mask_sensitive, quotable
from cadrebot.handlers.ports import (
    Case,
    ConversationKey,
    DialogPhase,
    DialogState,
    JSONValue,
    NewCase,
    Option,
    Reply,
)

BACK_WORDS = frozenset({"返回", "上一步", "上一项"})
CANCEL_WORDS = frozenset({"取消", "退出", "不填了", "/cancel"})
HELP_WORDS = frozenset({"帮助", "说明"})
SKIP_WORDS = frozenset({SKIP_WORD, "不填"})
SUBMIT_WORDS = frozenset({"确认提交", "确认", "提交"})
SUBMIT_LABEL = "确认提交"
CANCEL_LABEL = "取消"

_EDIT_BY_NUMBER = re.compile(r"(?:改|修改|更改|重填)?\s*(\d{1,2})")
_EDIT_BY_LABEL = re.compile(r"(?:改|修改|更改|重填)\s*(.+)")

# scratch keys (engine bookkeeping inside DialogState.scratch)
_SELECTION = "selection"  # multi-choice options toggled so far for the current field


FileCase = Callable[[Mapping[str, JSONValue], int, datetime], NewCase]
"""(answers, submitter user id, now) -> the case to file."""
Confirmation = Callable[[Case], str]
"""The reply after filing, given the filed case (it knows its number)."""
SummaryNote = Callable[[Mapping[str, JSONValue], datetime], str | None]
"""An extra line under the summary (e.g. which subsidy round this will be)."""


@dataclass(frozen=True)
class FormSpec:
    """Everything about one intake form: its questions, the case it files, the status workflow
    that case then follows, and how the case reads in views and the ledger."""

    name: str  # registry key, stored in DialogState.form_name; also the case type it files
    title: str  # 《…》 shown to users
    command: str  # e.g. "/report"
    summary: str  # one line for help texts and command menus
    intro: str
    fields: tuple[FieldSpec, ...]
    file_case: FileCase
    confirmation: Confirmation
    workflow: Workflow  # the statuses its cases go through
    summary_note: SummaryNote | None = None
    extra_field_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Labels of the fields ``file_case`` adds to a case beyond the answers (e.g. 申报批次),
    in the order views and the ledger show them."""

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"form {self.name!r}: duplicate field names")
        for spec in self.fields:
            if spec.condition and spec.condition.field not in names[: names.index(spec.name)]:
                raise ValueError(f"field {spec.name!r}: condition must refer to an earlier field")
        clash = set(names) & set(self.extra_field_labels)
        if clash:
            raise ValueError(f"form {self.name!r}: extra fields {sorted(clash)} are also asked")
        if self.workflow.case_type != self.name:
            # Views, the ledger and the case desk find a case's form by its case type.
            raise ValueError(
                f"form {self.name!r}: its workflow is for case type {self.workflow.case_type!r}"
            )

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def active_fields(self, answers: Mapping[str, JSONValue]) -> list[FieldSpec]:
        """The fields that apply given the answers so far, in declaration order."""
        return [f for f in self.fields if f.applies(answers)]


class FormRegistry:
    """The forms the bot offers, by name and by command."""

    def __init__(self, forms: Iterable[FormSpec]) -> None:
        self._by_name: dict[str, FormSpec] = {}
        for form in forms:
            if form.name in self._by_name:
                raise ValueError(f"duplicate form {form.name!r}")
            self._by_name[form.name] = form

    def get(self, name: str) -> FormSpec | None:
        return self._by_name.get(name)

    def __getitem__(self, name: str) -> FormSpec:
        return self._by_name[name]

    def by_command(self, command: str) -> FormSpec | None:
        return next((f for f in self._by_name.values() if f.command == command), None)

    def all(self) -> list[FormSpec]:
        return list(self._by_name.values())


class StepOutcome(StrEnum):
    ASKED = "asked"  # the form goes on; save ``state``
    REJECTED = "rejected"  # invalid input; ``state`` is the unchanged input state
    SUBMIT = "submit"  # confirmed: file ``answers`` and delete the state
    CANCELLED = "cancelled"  # user abandoned the form; delete the state
    ENDED = "ended"  # a terminal answer ended the form politely; delete the state
    EXPIRED = "expired"  # idle too long; delete the state


@dataclass(frozen=True)
class StepResult:
    outcome: StepOutcome
    state: DialogState | None  # None once the form is over (except SUBMIT: the final state)
    replies: tuple[Reply, ...]
    answers: Mapping[str, JSONValue] = dataclasses.field(default_factory=dict)


class FormEngine:
    def __init__(self, registry: FormRegistry, *, idle_timeout: timedelta) -> None:
        self._registry = registry
        self._idle_timeout = idle_timeout

    @property
    def registry(self) -> FormRegistry:
        return self._registry

    # ------------------------------------------------------------------ public API

    def start(self, form_name: str, key: ConversationKey, now: datetime) -> StepResult:
        form = self._registry[form_name]
        first = form.active_fields({})[0]
        state = DialogState(
            key=key,
            form_name=form.name,
            current_field=first.name,
            phase=DialogPhase.ASKING,
            answers={},
            started_at=now,
            updated_at=now,
        )
        intro = Reply(
            f"开始填写《{form.title}》。\n{form.intro}\n"
            "填写过程中可随时回复“返回”修改上一项，回复“取消”放弃填写。"
        )
        return StepResult(StepOutcome.ASKED, state, (intro, self.prompt(state)))

    def is_expired(self, state: DialogState, now: datetime) -> bool:
        return now - state.updated_at > self._idle_timeout

    def expiry_notice(self, state: DialogState) -> str:
        """What the user is told of a form cancelled for being idle (its answers are deleted
        with it: by the user's next message, or by the clean-up)."""
        form = self._registry[state.form_name]
        minutes = int(self._idle_timeout.total_seconds() // 60)
        return (
            f"您填写的《{form.title}》已超过{_duration(minutes)}没有操作，已自动取消，"
            f"填写的内容已删除。如需申报，请发送 {form.command} 重新开始。"
        )

    def step(self, state: DialogState, text: str, now: datetime) -> StepResult:
        form = self._registry[state.form_name]
        if self.is_expired(state, now):
            return StepResult(StepOutcome.EXPIRED, None, (Reply(self.expiry_notice(state)),))
        word = normalize(text)
        if word in CANCEL_WORDS:
            return StepResult(
                StepOutcome.CANCELLED,
                None,
                (Reply(f"已取消《{form.title}》的填写，您填写的内容没有保存。"),),
            )
        if state.phase is DialogPhase.SUMMARY:
            return self._summary_step(form, state, word, now)
        return self._field_step(form, state, text, word, now)

    def prompt(self, state: DialogState) -> Reply:
        """The question for the current field (or the summary), with progress and options."""
        form = self._registry[state.form_name]
        if state.phase is DialogPhase.SUMMARY or state.current_field is None:
            return self._summary_reply(form, state)
        spec = form.field(state.current_field)
        active = form.active_fields(state.answers)
        names = [f.name for f in active]
        position = names.index(spec.name) + 1 if spec.name in names else len(names)
        lines = [f"（{position}/{len(active)}）{spec.prompt}"]
        if spec.name in state.answers:
            lines.append(f"当前填写：{spec.display(state.answers[spec.name])}")
        multi = spec.kind is FieldKind.MULTI_CHOICE
        selection = _selection(state) if multi else []
        if selection:
            lines.append(f"已选：{'、'.join(selection)}。")
        hint = spec.input_hint()
        if hint:
            lines.append(hint)
        return Reply(
            "\n".join(lines),
            options=spec.options(),
            multi_select=multi,
            selected=tuple(selection),
        )

    def reminder(self, state: DialogState) -> Reply:
        """Where the user is, after an interruption (a policy question, /help)."""
        form = self._registry[state.form_name]
        current = self.prompt(state)
        return dataclasses.replace(
            current, text=f"您正在填写《{form.title}》，请继续：\n{current.text}"
        )

    # ------------------------------------------------------------------ field phase

    def _field_step(
        self, form: FormSpec, state: DialogState, text: str, word: str, now: datetime
    ) -> StepResult:
        assert state.current_field is not None
        spec = form.field(state.current_field)

        if word in BACK_WORDS:
            return self._back(form, state, now)
        if word in HELP_WORDS:
            help_text = spec.help or f"请按提示填写「{spec.label}」。"
            return StepResult(StepOutcome.REJECTED, state, (Reply(help_text), self.prompt(state)))
        if word in SKIP_WORDS:
            if not spec.optional:
                return self._reject(state, f"「{spec.label}」是必填项，不能跳过。")
            return self._accept(form, state, spec, None, now)

        if spec.kind is FieldKind.MULTI_CHOICE:
            selection = _selection(state)
            if word.startswith(TOGGLE_PREFIX):
                return self._toggle(state, spec, word.removeprefix(TOGGLE_PREFIX), now)
            if word == DONE_WORD:
                if not selection:
                    return self._reject(state, "您还没有选择任何一项，请至少选择一项。")
                return self._accept(form, state, spec, list(selection), now)
        elif word.startswith(TOGGLE_PREFIX):  # a button of an earlier question, tapped late
            return self._reject(state, "这个按钮已经失效，请回答当前的问题。")

        # Any answer may hold an ID number ("我的身份证是…"): only the ID field keeps one whole
        # (the case needs it). Masked before parsing, so no clean-up joins its digits into a
        # longer number, and after, in case one joins pieces into an ID. Phone numbers stay:
        # cadres call them.
        keeps_id = spec.kind is FieldKind.ID_CARD
        try:
            value = spec.parse(
                text if keeps_id else mask_sensitive(text, mask_phones=False), today=now.date()
            )
        except InvalidAnswer as invalid:
            return self._reject(state, invalid.reason)
        if isinstance(value, str) and not keeps_id:
            value = mask_sensitive(value, mask_phones=False)
        return self._accept(form, state, spec, value, now)

    def _toggle(
        self, state: DialogState, spec: FieldSpec, payload: str, now: datetime
    ) -> StepResult:
        if not payload.isdigit() or not 1 <= int(payload) <= len(spec.choices):
            return self._reject(state, "没有这个选项，请重新选择。")
        option = spec.choices[int(payload) - 1]
        chosen = set(_selection(state)) ^ {option}
        ordered: list[JSONValue] = [c for c in spec.choices if c in chosen]
        new_state = dataclasses.replace(
            state, scratch={**state.scratch, _SELECTION: ordered}, updated_at=now
        )
        # The whole question again, now showing the selection: the channel puts it in place
        # of the message whose button was tapped.
        reply = dataclasses.replace(self.prompt(new_state), replaces_origin=True)
        return StepResult(StepOutcome.ASKED, new_state, (reply,))

    def _accept(
        self,
        form: FormSpec,
        state: DialogState,
        spec: FieldSpec,
        value: JSONValue,
        now: datetime,
    ) -> StepResult:
        for terminal in spec.terminal:
            if value in terminal.any_of:
                return StepResult(StepOutcome.ENDED, None, (Reply(terminal.message),))
        answers = _prune(form, {**state.answers, spec.name: value})
        # Next is the first applicable field still unanswered: in a first pass that is the
        # following field; after "返回" or an edit it skips what is already filled in.
        next_field = next((f for f in form.active_fields(answers) if f.name not in answers), None)
        new_state = dataclasses.replace(
            state,
            answers=answers,
            current_field=None if next_field is None else next_field.name,
            phase=DialogPhase.SUMMARY if next_field is None else DialogPhase.ASKING,
            scratch={},
            updated_at=now,
        )
        return StepResult(StepOutcome.ASKED, new_state, (self.prompt(new_state),))

    def _back(self, form: FormSpec, state: DialogState, now: datetime) -> StepResult:
        if state.phase is DialogPhase.EDITING:
            new_state = dataclasses.replace(
                state, phase=DialogPhase.SUMMARY, current_field=None, scratch={}, updated_at=now
            )
            return StepResult(StepOutcome.ASKED, new_state, (self.prompt(new_state),))
        previous = _previous_field(form, state)
        if previous is None:
            return StepResult(
                StepOutcome.REJECTED, state, (Reply("已经是第一项了。"), self.prompt(state))
            )
        new_state = dataclasses.replace(
            state,
            current_field=previous.name,
            phase=DialogPhase.ASKING,
            scratch=_current_selection(previous, state.answers),
            updated_at=now,
        )
        return StepResult(
            StepOutcome.ASKED, new_state, (Reply("好的，返回上一项。"), self.prompt(new_state))
        )

    def _reject(self, state: DialogState, reason: str) -> StepResult:
        current = self.prompt(state)
        return StepResult(
            StepOutcome.REJECTED,
            state,
            (dataclasses.replace(current, text=f"{reason}\n{current.text}"),),
        )

    # ------------------------------------------------------------------ summary phase

    def _summary_step(
        self, form: FormSpec, state: DialogState, word: str, now: datetime
    ) -> StepResult:
        if word in SUBMIT_WORDS:
            return StepResult(StepOutcome.SUBMIT, state, (), answers=dict(state.answers))
        if word in BACK_WORDS:
            return self._back(form, state, now)
        active = [f for f in form.active_fields(state.answers) if f.name in state.answers]
        target: FieldSpec | None = None
        by_number = _EDIT_BY_NUMBER.fullmatch(word)
        if by_number:
            index = int(by_number[1])
            if not 1 <= index <= len(active):
                return self._summary_reject(
                    form, state, f"没有第{index}项，请回复1到{len(active)}之间的序号。"
                )
            target = active[index - 1]
        else:
            by_label = _EDIT_BY_LABEL.fullmatch(word)
            wanted = by_label[1].strip() if by_label else word
            target = _find_by_label(active, wanted)
            if target is None and by_label:
                # Never quote digits back: "修改 3607 0219 …" would show an ID number.
                named = f"“{wanted}”" if quotable(wanted) else "您说的"
                return self._summary_reject(form, state, f"没有找到{named}这一项。")
        if target is None:
            return self._summary_reject(form, state, "请确认以下信息。")
        new_state = dataclasses.replace(
            state,
            phase=DialogPhase.EDITING,
            current_field=target.name,
            scratch=_current_selection(target, state.answers),
            updated_at=now,
        )
        reply = self.prompt(new_state)
        reply = dataclasses.replace(
            reply, text=f"请重新填写「{target.label}」（回复“返回”不修改）：\n{reply.text}"
        )
        return StepResult(StepOutcome.ASKED, new_state, (reply,))

    def _summary_reject(self, form: FormSpec, state: DialogState, reason: str) -> StepResult:
        summary = self._summary_reply(form, state)
        return StepResult(
            StepOutcome.REJECTED,
            state,
            (dataclasses.replace(summary, text=f"{reason}\n{summary.text}"),),
        )

    def _summary_reply(self, form: FormSpec, state: DialogState) -> Reply:
        lines = [f"请核对《{form.title}》的填写内容："]
        active = [f for f in form.active_fields(state.answers) if f.name in state.answers]
        for number, spec in enumerate(active, 1):
            lines.append(f"{number}. {spec.label}：{spec.display(state.answers[spec.name])}")
        if form.summary_note is not None:
            note = form.summary_note(state.answers, state.updated_at)
            if note:
                lines.append(note)
        lines.append(
            "无误请回复“确认提交”；要修改某一项，请回复它的序号或“改 3”“修改 手机号”；"
            "回复“取消”放弃填写。"
        )
        return Reply(
            "\n".join(lines),
            options=(Option(SUBMIT_LABEL, SUBMIT_LABEL), Option(CANCEL_LABEL, CANCEL_LABEL)),
        )


# ---------------------------------------------------------------------- helpers


def _previous_field(form: FormSpec, state: DialogState) -> FieldSpec | None:
    """The applicable field before the current one (the last one, from the summary)."""
    active = form.active_fields(state.answers)
    if state.phase is DialogPhase.SUMMARY or state.current_field is None:
        return active[-1] if active else None
    names = [f.name for f in active]
    if state.current_field not in names:
        return None
    index = names.index(state.current_field)
    return active[index - 1] if index > 0 else None


def _selection(state: DialogState) -> list[str]:
    raw = state.scratch.get(_SELECTION, [])
    return [str(item) for item in raw] if isinstance(raw, list) else []


def _current_selection(spec: FieldSpec, answers: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """The scratch to re-ask ``spec`` with: a multi-choice answer starts from its picks."""
    value = answers.get(spec.name)
    if spec.kind is not FieldKind.MULTI_CHOICE or not isinstance(value, list):
        return {}
    return {_SELECTION: [c for c in spec.choices if c in value]}


def _prune(form: FormSpec, answers: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """Drop answers of fields that no longer apply (a changed answer switched them off)."""
    active = {f.name for f in form.active_fields(answers)}
    return {name: value for name, value in answers.items() if name in active}


def _find_by_label(fields: list[FieldSpec], wanted: str) -> FieldSpec | None:
    exact = [f for f in fields if wanted in (f.label, f.name)]
    if exact:
        return exact[0]
    partial = [f for f in fields if len(wanted) >= 2 and wanted in f.label]
    return partial[0] if len(partial) == 1 else None


def _duration(minutes: int) -> str:
    if minutes >= 60 and minutes % 60 == 0:
        return f"{minutes // 60}小时"
    return f"{minutes}分钟"
