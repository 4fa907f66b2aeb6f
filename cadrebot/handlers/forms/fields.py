"""Form fields declared as data: what to ask, how to parse the answer, how to show it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from cadrebot.handlers.forms import validators
from cadrebot.handlers.masking import mask_id_number
from cadrebot.handlers.places import MAX_OPTIONS, PlaceRegister, clean_place, township_refusal
from cadrebot.handlers.ports import JSONValue, Option

TOGGLE_PREFIX = "toggle:"
"""Payload prefix of a multi-choice option button: ``toggle:3`` flips option 3."""

DONE_WORD = "完成"
SKIP_WORD = "跳过"


class FieldKind(StrEnum):
    TEXT = "text"
    PERSON_NAME = "person_name"  # 2-20 Chinese characters or letters (validators)
    NUMBER = "number"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    DATE = "date"
    ID_CARD = "id_card"
    PHONE = "phone"
    YES_NO = "yes_no"
    TOWNSHIP = "township"  # matched against the place register (``FieldSpec.places``)
    VILLAGE = "village"  # cleaned; spelled as the register does when it knows the village


@dataclass(frozen=True)
class Condition:
    """The field is asked only if the earlier field ``field`` has one of ``any_of``."""

    field: str
    any_of: tuple[JSONValue, ...]

    def holds(self, answers: Mapping[str, JSONValue]) -> bool:
        return (
            field_matches(answers.get(self.field), self.any_of) if self.field in answers else False
        )


def field_matches(value: JSONValue, wanted: tuple[JSONValue, ...]) -> bool:
    if isinstance(value, list):  # multi-choice: any selected option matches
        return any(item in wanted for item in value)
    return value in wanted


@dataclass(frozen=True)
class TerminalAnswer:
    """Answering ``value`` ends the form politely with ``message``; nothing is filed."""

    any_of: tuple[JSONValue, ...]
    message: str


@dataclass(frozen=True)
class FieldSpec:
    name: str  # key in DialogState.answers and in Case.fields
    label: str  # short Chinese name, shown in the summary and used for "修改 手机号"
    prompt: str  # the question, in Chinese
    kind: FieldKind
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    decimals: int = 0  # NUMBER: digits allowed after the point
    unit: str = ""  # NUMBER: shown after the value, e.g. "元"
    max_length: int | None = None  # TEXT
    min_length: int = 1  # TEXT
    optional: bool = False
    condition: Condition | None = None
    help: str = ""  # why we ask / which document says so; shown on "帮助"
    terminal: tuple[TerminalAnswer, ...] = ()
    places: PlaceRegister | None = None  # TOWNSHIP/VILLAGE: the register (None: open)

    def __post_init__(self) -> None:
        if self.kind in (FieldKind.CHOICE, FieldKind.MULTI_CHOICE) and not self.choices:
            raise ValueError(f"field {self.name!r}: choice fields need choices")

    def applies(self, answers: Mapping[str, JSONValue]) -> bool:
        return self.condition is None or self.condition.holds(answers)

    def parse(self, text: str, *, today: date) -> JSONValue:
        """The stored (JSON) value for ``text``; raises ``validators.InvalidAnswer``."""
        match self.kind:
            case FieldKind.TEXT:
                return validators.parse_text(
                    text, max_length=self.max_length, min_length=self.min_length
                )
            case FieldKind.PERSON_NAME:
                return validators.parse_person_name(text)
            case FieldKind.NUMBER:
                return validators.parse_number(
                    text,
                    min_value=self.min_value,
                    max_value=self.max_value,
                    decimals=self.decimals,
                    unit=self.unit,
                )
            case FieldKind.CHOICE:
                return validators.parse_choice(text, self.choices)
            case FieldKind.MULTI_CHOICE:
                return list(validators.parse_multi_choice(text, self.choices))
            case FieldKind.DATE:
                return validators.parse_date(text, today=today).isoformat()
            case FieldKind.ID_CARD:
                return validators.parse_id_number(text, today=today)
            case FieldKind.PHONE:
                return validators.parse_mobile(text)
            case FieldKind.YES_NO:
                return validators.parse_yes_no(text)
            case FieldKind.TOWNSHIP | FieldKind.VILLAGE:
                return self._parse_place(text)

    def _parse_place(self, text: str) -> str:
        register = self.places or PlaceRegister()
        value = validators.parse_text(
            clean_place(text), max_length=self.max_length, min_length=self.min_length
        )
        if self.kind is FieldKind.VILLAGE:
            return register.canonical_village(value)
        found = register.match_township(value).township
        if found is None:
            reason, _ = township_refusal(register, value)
            raise validators.InvalidAnswer(reason)
        return found.name

    def display(self, value: JSONValue, *, mask: bool = True) -> str:
        """The answer as shown to people (ID numbers masked unless ``mask=False``)."""
        if value is None:
            return "（未填）"
        if self.kind is FieldKind.ID_CARD and isinstance(value, str):
            return mask_id_number(value) if mask else value
        if self.kind is FieldKind.YES_NO:
            return "是" if value else "否"
        if isinstance(value, list):
            return "、".join(str(v) for v in value)
        if self.kind is FieldKind.NUMBER and isinstance(value, int | float):
            return f"{value:,}{self.unit}" if self.unit == "元" else f"{value}{self.unit}"
        return str(value)

    def options(self) -> tuple[Option, ...]:
        """Buttons to offer with the prompt."""
        buttons: list[Option] = []
        if self.kind is FieldKind.CHOICE:
            buttons = [Option(c, c) for c in self.choices]
        elif self.kind is FieldKind.MULTI_CHOICE:
            buttons = [Option(c, f"{TOGGLE_PREFIX}{i}") for i, c in enumerate(self.choices, 1)]
            buttons.append(Option(DONE_WORD, DONE_WORD))
        elif self.kind is FieldKind.YES_NO:
            buttons = [Option("是", "是"), Option("否", "否")]
        elif self.kind is FieldKind.TOWNSHIP and self.places is not None:
            townships = self.places.townships()
            if 0 < len(townships) <= MAX_OPTIONS:  # a small deployment: offer them all
                buttons = [Option(t.name, t.name) for t in townships]
        if self.optional:
            buttons.append(Option(SKIP_WORD, SKIP_WORD))
        return tuple(buttons)

    def input_hint(self) -> str:
        """One line telling how to answer, added under the prompt."""
        match self.kind:
            case FieldKind.CHOICE:
                listed = "  ".join(f"{i}. {c}" for i, c in enumerate(self.choices, 1))
                hint = f"{listed}\n请回复序号或选项文字。"
            case FieldKind.MULTI_CHOICE:
                listed = "  ".join(f"{i}. {c}" for i, c in enumerate(self.choices, 1))
                hint = f"{listed}\n可多选：回复多个序号（如“1,3”）或选项文字（如“因病、因灾”）。"
            case FieldKind.YES_NO:
                hint = "请回复“是”或“否”。"
            case FieldKind.NUMBER if self.min_value is not None and self.max_value is not None:
                low, high = _plain(self.min_value), _plain(self.max_value)
                unit = f"（单位：{self.unit}）" if self.unit else ""
                hint = f"请输入{low}到{high}之间的数字{unit}。"
            case FieldKind.TEXT | FieldKind.PERSON_NAME if self.max_length is not None:
                hint = f"（不超过{self.max_length}字）"
            case _:
                hint = ""
        if self.optional:
            hint = (hint + "\n" if hint else "") + "此项可不填，回复“跳过”。"
        if self.help:
            hint = (hint + "\n" if hint else "") + "回复“帮助”查看填写说明和政策依据。"
        return hint


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
