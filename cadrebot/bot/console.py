"""Console chat: the same conversation service as Telegram, on a terminal, with no token.

Every line goes to :class:`~cadrebot.handlers.conversation.ConversationService` on channel
``console`` (policy questions, /report, /subsidy, /mycases, /more, /cancel, /help: the same
commands as every channel), so what is filed here lands in the same case database. The
console only renders the turn's structured output the way a terminal can: numbered options
instead of buttons, ``+序号`` for the toggle buttons of a multi-choice question, actions as
commands to type, the questions suggested after an answer numbered (a bare number right
after it asks one), files saved to a folder, background work run to its end; and /quit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from cadrebot.handlers.forms.engine import CANCEL_LABEL, SUBMIT_LABEL
from cadrebot.handlers.forms.fields import DONE_WORD, SKIP_WORD, TOGGLE_PREFIX
from cadrebot.handlers.forms.validators import normalize
from cadrebot.handlers.ports import Action, ActionKind, Option, Reply
from cadrebot.handlers.turns import Inbound, TurnResult

log = logging.getLogger(__name__)

CHANNEL = "console"
PROMPT = "你："
SPEAKER = "助手："
QUIT_COMMANDS = frozenset({"/quit", "/exit"})
CONSOLE_HELP = "/quit 退出（填写到一半的申报会保留，下次继续）"
TOGGLE_HINT = "也可以回复“+序号”逐项勾选或取消（如 +1），选好后回复“完成”。"
GOODBYE = "再见！"
SUGGESTIONS_LEAD = "接着可以问（回复序号）："
ASK = "/ask "
FAILED = "抱歉，这条消息没有处理成功，请换个说法再发一次。"
# Rating buttons need a tap; "/more" is in the help. Both would only clutter a terminal.
_QUIET_ACTIONS = frozenset({ActionKind.FEEDBACK, ActionKind.SOURCES})

# Options that are words to type, not numbered choices: in the summary a bare number means
# "edit field N", so numbering 确认提交/取消 would make "1" submit instead of edit.
_CONTROL_WORDS = frozenset({SUBMIT_LABEL, CANCEL_LABEL, DONE_WORD, SKIP_WORD})


class Conversation(Protocol):
    """What the console needs of the conversation core."""

    def turn(self, inbound: Inbound) -> TurnResult: ...


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
    asks = _suggested(reply)
    lines += [
        f"· {a.label}：发送 {a.command}"
        for a in reply.actions
        if a.kind not in _QUIET_ACTIONS and a not in asks
    ]
    if asks:
        lines.append(SUGGESTIONS_LEAD + "  ".join(f"{n}. {a.label}" for n, a in enumerate(asks, 1)))
    return "\n".join(lines)


def _suggested(reply: Reply) -> list[Action]:
    """The next questions suggested under an answer (追问): its ``/ask`` navigation actions."""
    if not reply.is_answer:
        return []
    return [a for a in reply.actions if a.kind == ActionKind.NAVIGATE and a.command.startswith(ASK)]


def render_replies(replies: Sequence[Reply]) -> str:
    return SPEAKER + "\n\n".join(render_reply(r) for r in replies)


def render_result(result: TurnResult, *, files_dir: Path | None = None) -> str:
    """A whole turn as terminal text: replies, the toast of a command sent without a
    button, files saved under ``files_dir``, background work run to its end."""
    parts = [render_reply(r) for r in result.replies]
    if result.toast and not result.replies:
        parts.append(result.toast)
    for file in result.files:
        if files_dir is None:
            parts.append(f"{file.caption}（终端里无法保存文件 {file.file_name}）")
            continue
        files_dir.mkdir(parents=True, exist_ok=True)
        path = files_dir / file.file_name
        path.write_bytes(file.data)
        parts.append(f"{file.caption}已保存到：{path}")
    for task in result.tasks:
        parts.append(task.run(lambda text: None))
    return SPEAKER + "\n\n".join(parts)


def translate_input(line: str, shown: Sequence[Reply]) -> str:
    """What to send for ``line``: ``+N`` toggles choice N of the multi-choice question just
    shown (the payload its button would send); anything else goes as typed."""
    word = normalize(line)
    if word.isdigit():
        return _suggestion_chosen(int(word), shown) or line
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


def _suggestion_chosen(number: int, shown: Sequence[Reply]) -> str | None:
    """The ``/ask`` command of suggested question ``number`` under the answer just shown;
    None when the last turn asked something (a form's question: the number answers it)."""
    if any(r.options or r.expects_reply for r in shown):
        return None
    asks = [a for r in shown for a in _suggested(r)]
    return asks[number - 1].command if 1 <= number <= len(asks) else None


# --------------------------------------------------------------------------- the loop


def run_console(
    service: Conversation,
    *,
    external_id: str = "console",
    display_name: str = "",
    files_dir: Path | None = None,
    read: Callable[[str], str] | None = None,
    write: Callable[[str], None] | None = None,
) -> None:
    """Chat until /quit, end of input or Ctrl-C. Files (the case ledger) go to ``files_dir``.

    ``read`` / ``write`` default to :func:`input` / :func:`print` (looked up at call time).
    """
    read = read if read is not None else input
    write = write if write is not None else print
    name = display_name or external_id
    shown: list[Reply] = []

    def send(text: str) -> TurnResult:
        try:
            return service.turn(Inbound(CHANNEL, external_id, name, text))
        except Exception:  # the service answers every input itself; this is a last resort
            log.exception("console turn failed")
            return TurnResult([Reply(FAILED)])

    def show(result: TurnResult, *, help_asked: bool = False) -> None:
        nonlocal shown
        shown = result.replies
        text = render_result(result, files_dir=files_dir)
        write(f"{text}\n{CONSOLE_HELP}" if help_asked else text)

    try:
        show(send("/start"), help_asked=True)
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
            show(send(translate_input(line, shown)), help_asked=command in {"/help", "/start"})
    except KeyboardInterrupt:
        write("\n" + GOODBYE)
