"""Console chat: the same conversation service as Telegram, on a terminal, with no token.

Every line goes to :class:`~cadrebot.handlers.conversation.ConversationService` on channel
``console`` (policy questions, /report, /subsidy, /mycases, /cancel, /help), so what is
filed here lands in the same case database. The console itself only adds what a terminal
needs: numbered options instead of buttons, ``+序号`` for the toggle buttons of a multi-choice
question, /more (更多出处) for the last answer, and /quit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from cadrebot.handlers.forms.engine import CANCEL_LABEL, SUBMIT_LABEL
from cadrebot.handlers.forms.fields import DONE_WORD, SKIP_WORD, TOGGLE_PREFIX
from cadrebot.handlers.forms.validators import normalize
from cadrebot.handlers.ports import Option, Reply
from cadrebot.handlers.qa import PolicyAnswer, render_more_sources

log = logging.getLogger(__name__)

CHANNEL = "console"
PROMPT = "你："
SPEAKER = "助手："
QUIT_COMMANDS = frozenset({"/quit", "/exit"})
MORE_COMMANDS = frozenset({"/more", "更多出处"})
CONSOLE_HELP = "/more 查看上一个回答的更多出处\n/quit 退出（填写到一半的申报会保留，下次继续）"
TOGGLE_HINT = "也可以回复“+序号”逐项勾选或取消（如 +1），选好后回复“完成”。"
GOODBYE = "再见！"
NO_ANSWER_YET = "还没有可以展开的回答。请先提一个政策问题。"
FAILED = "抱歉，这条消息没有处理成功，请换个说法再发一次。"

# Options that are words to type, not numbered choices: in the summary a bare number means
# "edit field N", so numbering 确认提交/取消 would make "1" submit instead of edit.
_CONTROL_WORDS = frozenset({SUBMIT_LABEL, CANCEL_LABEL, DONE_WORD, SKIP_WORD})


class Conversation(Protocol):
    """What the console needs of the conversation service."""

    def handle(
        self,
        channel: str,
        external_id: str,
        display_name: str,
        text: str,
        *,
        chat_id: str | None = None,
    ) -> list[Reply]: ...


class Composer(Protocol):
    def answer(self, question: str) -> PolicyAnswer: ...


class AnswerMemo:
    """A policy answerer that remembers the last answer it gave, for /more (更多出处).

    The console has one user, so the last answer computed is that user's last answer.
    """

    def __init__(self, composer: Composer) -> None:
        self._composer = composer
        self.last: PolicyAnswer | None = None

    def answer(self, question: str) -> PolicyAnswer:
        result = self._composer.answer(question)
        self.last = result
        return result


# --------------------------------------------------------------------------- rendering


def _choices(options: Sequence[Option]) -> list[Option]:
    return [o for o in options if o.payload not in _CONTROL_WORDS]


def render_reply(reply: Reply) -> str:
    """A reply as terminal text: choices numbered (the numbers the form engine accepts),
    control words the text does not already mention, and the multi-choice toggle hint."""
    lines = [reply.text]
    choices = _choices(reply.options)
    numbered = [f"{n}. {o.label}" for n, o in enumerate(choices, 1)]
    # Choice prompts already list "1. 脱贫户  2. 监测户 ..."; do not print the list twice.
    if choices and not all(item in reply.text for item in numbered):
        lines.append("  ".join(numbered))
    if reply.multi_select:
        lines.append(TOGGLE_HINT)
    words = [
        o.label
        for o in reply.options
        if o.payload in _CONTROL_WORDS and f"“{o.label}”" not in "\n".join(lines)
    ]
    if words:
        lines.append("也可以回复：" + " / ".join(words))
    return "\n".join(lines)


def render_replies(replies: Sequence[Reply]) -> str:
    return SPEAKER + "\n\n".join(render_reply(r) for r in replies)


def _with_console_help(replies: Sequence[Reply]) -> list[Reply]:
    """The service's welcome / help, followed by the console's own commands."""
    if not replies:
        return [Reply(CONSOLE_HELP)]
    first = dataclasses.replace(replies[0], text=f"{replies[0].text}\n{CONSOLE_HELP}")
    return [first, *replies[1:]]


def translate_input(line: str, shown: Sequence[Reply]) -> str:
    """What to send for ``line``: ``+N`` toggles choice N of the multi-choice question just
    shown (the payload its button would send); anything else goes as typed."""
    word = normalize(line)
    if not word.startswith("+") or not word[1:].isdigit():
        return line
    for reply in reversed(shown):
        if reply.multi_select:
            choices = _choices(reply.options)
            index = int(word[1:])
            if 1 <= index <= len(choices) and choices[index - 1].payload.startswith(TOGGLE_PREFIX):
                return choices[index - 1].payload
            return line  # out of range: the engine says which numbers exist
    return line


# --------------------------------------------------------------------------- the loop


def run_console(
    service: Conversation,
    *,
    external_id: str = "console",
    display_name: str = "",
    answers: AnswerMemo | None = None,
    read: Callable[[str], str] | None = None,
    write: Callable[[str], None] | None = None,
) -> None:
    """Chat until /quit, end of input or Ctrl-C. ``answers`` enables /more.

    ``read`` / ``write`` default to :func:`input` / :func:`print` (looked up at call time).
    """
    read = read if read is not None else input
    write = write if write is not None else print
    name = display_name or external_id
    shown: list[Reply] = []

    def send(text: str) -> list[Reply]:
        try:
            return service.handle(CHANNEL, external_id, name, text)
        except Exception:  # the service answers every input itself; this is a last resort
            log.exception("console turn failed")
            return [Reply(FAILED)]

    try:
        shown = send("/start")
        write(render_replies(_with_console_help(shown)))
        while True:
            try:
                line = read(PROMPT)
            except EOFError:
                write("\n" + GOODBYE)
                return
            word = normalize(line)
            if not word:
                continue
            command = word.lower()
            if command in QUIT_COMMANDS:
                write(GOODBYE)
                return
            if command in MORE_COMMANDS and answers is not None:
                more = render_more_sources(answers.last) if answers.last else NO_ANSWER_YET
                write(SPEAKER + more)
                continue
            shown = send(translate_input(line, shown))
            help_asked = command in {"/help", "/start"}
            write(render_replies(_with_console_help(shown) if help_asked else shown))
    except KeyboardInterrupt:
        write("\n" + GOODBYE)
