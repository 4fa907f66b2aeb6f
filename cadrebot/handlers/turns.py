"""What one turn of a conversation produces: structured output that every channel renders.

A channel (Telegram, the console, the web) hands the conversation core an :class:`Inbound`
message and gets a :class:`TurnResult` back: the replies (with their options, selection and
actions), notices for other users, files, background work, and for a tapped button what
becomes of the message it belongs to. No channel parses reply text, checks a role or opens
a unit of work: everything it needs to render is in the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cadrebot.handlers.ports import Action, Reply, UnitOfWork, User


@dataclass(frozen=True)
class Inbound:
    """One message from a user. ``chat_id`` defaults to ``external_id`` (a private chat)."""

    channel: str
    external_id: str
    display_name: str
    text: str
    chat_id: str | None = None
    replying_to: str | None = None
    """The text of the bot's message this one replies to (a reply to an ``expects_reply``
    prompt), when the channel knows it."""
    via_button: bool = False
    """The text is the command or option payload of a tapped button, not typed."""

    @property
    def chat(self) -> str:
        return self.chat_id or self.external_id


@dataclass(frozen=True)
class Notice:
    """A message for someone other than the person acting (the farmer told of a status
    change). A turn's result carries the notices for users of its own channel, which the
    channel delivers at once; a notice for a user of another channel goes to the notice
    outbox in the turn's transaction, and that channel delivers it (Telegram's job; the web
    chat when the browser comes back)."""

    user: User
    text: str


@dataclass(frozen=True)
class OutgoingFile:
    file_name: str
    data: bytes
    caption: str = ""


ProgressReport = Callable[[str], None]


class BackgroundTask(Protocol):
    """Slow work a turn started (rebuilding the index). The channel runs it outside the
    turn, in a worker thread, reports its progress in place of the turn's last reply and
    sends the text it returns."""

    def run(self, progress: ProgressReport) -> str: ...


class TurnReceipt(Protocol):
    """Completes the channel's delivery record of the message (a webhook inbox row) inside
    the turn's own transaction, so the turn's effects and "processed" commit together."""

    def complete_in(self, uow: UnitOfWork) -> None: ...

    def committed(self) -> None:
        """The transaction ``complete_in`` wrote in has committed."""
        ...


@dataclass(frozen=True)
class TurnResult:
    """Everything one inbound message produced, in the order a channel shows it."""

    replies: list[Reply]
    exchange_id: int | None = None  # None when even logging the (failed) turn failed
    notices: tuple[Notice, ...] = ()
    files: tuple[OutgoingFile, ...] = ()
    tasks: tuple[BackgroundTask, ...] = ()
    toast: str | None = None
    """A short acknowledgement of a tapped button (Telegram shows it over the chat); a
    channel without such a thing shows it as a message when there are no replies."""
    origin_actions: tuple[Action, ...] | None = None
    """New actions for the message whose button was tapped (None: leave it as it is)."""
    suggestions: tuple[str, ...] = ()
    """Questions the user may want to ask next."""

    @property
    def answer(self) -> Reply | None:
        """The policy answer among the replies, if the turn gave one."""
        return next((r for r in self.replies if r.is_answer), None)

    @property
    def answer_text(self) -> str | None:
        answer = self.answer
        return answer.text if answer is not None else None

    @property
    def text(self) -> str:
        """All replies as one text (logs, tests, a channel with one text box)."""
        return "\n\n".join(r.text for r in self.replies)
