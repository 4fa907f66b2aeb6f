"""Inline keyboards and the callback data behind their buttons.

Telegram gives a button at most 64 bytes of callback data, which a Chinese option (3 bytes a
character) can exceed. An option whose payload fits travels as ``p:<payload>``; a longer one
as ``l:<row>:<column>``, meaning "the label of that button", because for such options the
label *is* the payload (plain choices). An action travels as ``c:<command>``: the command
the conversation core gave it, sent back as the user's text. So every button says what it
acts on and works after a restart: no server-side state behind any button.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telegram import ForceReply, InlineKeyboardButton, InlineKeyboardMarkup

from cadrebot.handlers.ports import Action, Option, Reply

CALLBACK_DATA_LIMIT = 64
CHECK = "✓ "
_ROW_WIDTH_CHARS = 14  # Chinese characters that fit on one row of buttons on a phone


@dataclass(frozen=True)
class OptionPayload:
    payload: str


@dataclass(frozen=True)
class OptionLabel:
    row: int
    column: int


@dataclass(frozen=True)
class ActionCommand:
    command: str


Callback = OptionPayload | OptionLabel | ActionCommand


def _fits(data: str) -> bool:
    return len(data.encode("utf-8")) <= CALLBACK_DATA_LIMIT


def encode(callback: Callback) -> str:
    match callback:
        case OptionPayload(payload):
            data = f"p:{payload}"
        case OptionLabel(row, column):
            data = f"l:{row}:{column}"
        case ActionCommand(command):
            data = f"c:{command}"
    if not _fits(data):
        raise ValueError(f"callback data too long: {data!r}")
    return data


# Buttons sent by versions before actions were commands, still on people's phones.
_LEGACY = {"f", "m", "cl", "cv", "ct"}


def _legacy(kind: str, rest: str) -> Callback:
    match kind:
        case "f":
            rating, exchange_id = rest.split(":")
            return ActionCommand(f"/rate {int(exchange_id)} {'up' if rating == 'u' else 'down'}")
        case "m":
            return ActionCommand(f"/more {int(rest)}")
        case "cl":
            offset, status = rest.split(":", 1)
            return ActionCommand(f"/cases {status} +{int(offset)}".replace("  ", " "))
        case "cv":
            return ActionCommand(f"/case {rest}")
        case _:
            number, to_status = rest.split(":", 1)
            return ActionCommand(f"/setstatus {number} {to_status}")


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
            case "c" if rest.startswith("/"):
                return ActionCommand(rest)
            case _ if kind in _LEGACY:
                return _legacy(kind, rest)
    except (ValueError, OverflowError):
        return None
    return None


def label_text(button_text: str) -> str:
    """A button's label without the ✓ mark the keyboard added."""
    return button_text.removeprefix(CHECK)


# --------------------------------------------------------------------------- keyboards


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


def _option_rows(reply: Reply) -> list[list[InlineKeyboardButton]]:
    """Buttons for a reply's options; in a multi-choice, chosen options carry a ✓."""
    chosen = set(reply.selected)
    labelled: list[tuple[Option, str]] = [
        (o, f"{CHECK}{o.label}" if o.label in chosen else o.label) for o in reply.options
    ]
    # Lay out first, then encode: the fallback data names the button's final position.
    sized = [(InlineKeyboardButton(text, callback_data="-"), len(text) + 2) for _, text in labelled]
    final: list[list[InlineKeyboardButton]] = []
    index = 0
    for r, row in enumerate(_rows(sized)):
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
    return final


def _action_rows(actions: Sequence[Action]) -> list[list[InlineKeyboardButton]]:
    buttons = [
        (
            InlineKeyboardButton(a.label, callback_data=encode(ActionCommand(a.command))),
            len(a.label) + 2,
        )
        for a in actions
    ]
    return _rows(buttons)


def actions_keyboard(actions: Sequence[Action]) -> InlineKeyboardMarkup | None:
    rows = _action_rows(actions)
    return InlineKeyboardMarkup(rows) if rows else None


def reply_markup(reply: Reply) -> InlineKeyboardMarkup | ForceReply | None:
    """The keyboard under a reply: its options, then its actions (or a reply prompt)."""
    if reply.expects_reply:
        return ForceReply(input_field_placeholder="理由")
    rows = _option_rows(reply) + _action_rows(reply.actions)
    return InlineKeyboardMarkup(rows) if rows else None
