"""Inline keyboards and the callback data behind their buttons.

Telegram gives a button at most 64 bytes of callback data, which a Chinese option (3 bytes a
character) can exceed. An option whose payload fits travels as ``p:<payload>``; a longer one
as ``l:<row>:<column>``, meaning "the label of that button", because for such options the
label *is* the payload (plain choices). Every other button names what it acts on, so a
button tapped after a restart still works: no server-side state behind any button.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from cadrebot.handlers.casework import CaseListView, CaseView
from cadrebot.handlers.ports import Feedback, Option, Reply

CALLBACK_DATA_LIMIT = 64
CHECK = "✓ "
MORE_SOURCES = "更多出处"
_SELECTED = re.compile(r"已选：(.+?)(?:。|\n|$)")
_ROW_WIDTH_CHARS = 14  # Chinese characters that fit on one row of buttons on a phone


# --------------------------------------------------------------------------- callback data


@dataclass(frozen=True)
class OptionPayload:
    payload: str


@dataclass(frozen=True)
class OptionLabel:
    row: int
    column: int


@dataclass(frozen=True)
class Rate:
    exchange_id: int
    feedback: Feedback


@dataclass(frozen=True)
class MoreSources:
    exchange_id: int


@dataclass(frozen=True)
class CasePage:
    offset: int
    status: str


@dataclass(frozen=True)
class CaseOpen:
    number: str


@dataclass(frozen=True)
class CaseMove:
    number: str
    to_status: str


Callback = OptionPayload | OptionLabel | Rate | MoreSources | CasePage | CaseOpen | CaseMove


def _fits(data: str) -> bool:
    return len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT


def encode(callback: Callback) -> str:
    match callback:
        case OptionPayload(payload):
            data = f"p:{payload}"
        case OptionLabel(row, column):
            data = f"l:{row}:{column}"
        case Rate(exchange_id, feedback):
            data = f"f:{'u' if feedback is Feedback.UP else 'd'}:{exchange_id}"
        case MoreSources(exchange_id):
            data = f"m:{exchange_id}"
        case CasePage(offset, status):
            data = f"cl:{offset}:{status}"
        case CaseOpen(number):
            data = f"cv:{number}"
        case CaseMove(number, to_status):
            data = f"ct:{number}:{to_status}"
    if not _fits(data):
        raise ValueError(f"callback data too long: {data!r}")
    return data


def decode(data: str) -> Callback | None:
    """The button's meaning, or None for data this version does not understand."""
    kind, _, rest = data.partition(":")
    try:
        match kind:
            case "p":
                return OptionPayload(rest)
            case "l":
                row, column = rest.split(":")
                return OptionLabel(int(row), int(column))
            case "f":
                rating, exchange_id = rest.split(":")
                return Rate(int(exchange_id), Feedback.UP if rating == "u" else Feedback.DOWN)
            case "m":
                return MoreSources(int(rest))
            case "cl":
                offset, status = rest.split(":", 1)
                return CasePage(int(offset), status)
            case "cv":
                return CaseOpen(rest)
            case "ct":
                number, to_status = rest.split(":", 1)
                return CaseMove(number, to_status)
    except ValueError:
        return None
    return None


def label_text(button_text: str) -> str:
    """A button's label without the ✓ mark the keyboard added."""
    return button_text.removeprefix(CHECK)


# --------------------------------------------------------------------------- keyboards


def selected_labels(text: str) -> set[str]:
    """The options the form engine reports as chosen ("已选：因病、因灾。") in a reply."""
    match = _SELECTED.search(text)
    if match is None or match.group(1) == "（无）":
        return set()
    return {part.strip() for part in match.group(1).split("、") if part.strip()}


def _rows(buttons: Sequence[tuple[InlineKeyboardButton, int]]) -> list[list[InlineKeyboardButton]]:
    """Pack buttons into rows by label width, so short choices sit side by side."""
    rows: list[list[InlineKeyboardButton]] = []
    width = 0
    for button, size in buttons:
        if rows and width + size <= _ROW_WIDTH_CHARS and len(rows[-1]) < 4:
            rows[-1].append(button)
            width += size
        else:
            rows.append([button])
            width = size
    return rows


def options_keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Buttons for a reply's options; in a multi-choice, chosen options carry a ✓."""
    if not reply.options:
        return None
    chosen = selected_labels(reply.text) if reply.multi_select else set()
    labelled: list[tuple[Option, str]] = [
        (o, f"{CHECK}{o.label}" if o.label in chosen else o.label) for o in reply.options
    ]
    # Lay out first, then encode: the fallback data names the button's final position.
    sized = [(InlineKeyboardButton(text, callback_data="-"), len(text) + 2) for _, text in labelled]
    rows = _rows(sized)
    final: list[list[InlineKeyboardButton]] = []
    index = 0
    for r, row in enumerate(rows):
        built: list[InlineKeyboardButton] = []
        for c, _button in enumerate(row):
            option, text = labelled[index]
            index += 1
            payload_data = f"p:{option.payload}"
            if _fits(payload_data):
                data = payload_data
            elif option.payload == option.label:
                data = encode(OptionLabel(r, c))
            else:  # cannot happen with the current forms; fail loudly rather than mis-answer
                raise ValueError(f"option payload too long for a button: {option.payload!r}")
            built.append(InlineKeyboardButton(text, callback_data=data))
        final.append(built)
    return InlineKeyboardMarkup(final)


def answer_keyboard(exchange_id: int, *, rated: bool = False) -> InlineKeyboardMarkup:
    more = InlineKeyboardButton(MORE_SOURCES, callback_data=encode(MoreSources(exchange_id)))
    if rated:
        return InlineKeyboardMarkup([[more]])
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    "👍 有帮助", callback_data=encode(Rate(exchange_id, Feedback.UP))
                ),
                InlineKeyboardButton(
                    "👎 没帮助", callback_data=encode(Rate(exchange_id, Feedback.DOWN))
                ),
                more,
            ]
        ]
    )


def case_list_keyboard(view: CaseListView) -> InlineKeyboardMarkup | None:
    rows = [
        [InlineKeyboardButton(f"查看 {number}", callback_data=encode(CaseOpen(number)))]
        for number in view.numbers
    ]
    nav: list[InlineKeyboardButton] = []
    if view.has_previous:
        previous = max(0, view.offset - view.page_size)
        nav.append(
            InlineKeyboardButton("◀ 上一页", callback_data=encode(CasePage(previous, view.status)))
        )
    if view.has_next:
        following = view.offset + view.page_size
        nav.append(
            InlineKeyboardButton("下一页 ▶", callback_data=encode(CasePage(following, view.status)))
        )
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows) if rows else None


def case_keyboard(view: CaseView) -> InlineKeyboardMarkup | None:
    if not view.steps:
        return None
    buttons = [
        (
            InlineKeyboardButton(
                f"改为：{step.to_status}" + ("（需填理由）" if step.note_required else ""),
                callback_data=encode(CaseMove(view.number, step.to_status)),
            ),
            len(step.to_status) + 4,
        )
        for step in view.steps
    ]
    return InlineKeyboardMarkup(_rows(buttons))
