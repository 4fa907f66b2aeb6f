"""The command registry: every command, with the roles allowed to use it, declared once by the
feature module that owns it (Q&A, each intake form, the case desk, invites, the knowledge
base). ``/help`` and the channels' command menus are generated from it, and the role check
happens here, once, for every channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cadrebot.handlers.ports import (
    Action,
    DialogState,
    ExchangeKind,
    OfficeUnitOfWork,
    Reply,
    Role,
    User,
)
from cadrebot.handlers.turns import BackgroundTask, Notice, OutgoingFile

EVERYONE = frozenset(Role)
STAFF = frozenset({Role.CADRE, Role.ADMIN})
ADMINS = frozenset({Role.ADMIN})
FARMERS = frozenset({Role.FARMER})

ADMIN_ONLY = "抱歉，该命令仅限管理员使用。"
CADRE_ONLY = (
    "抱歉，该命令仅限已登记的干部使用。干部请向管理员索取邀请码，"
    "然后发送“/register 邀请码”完成登记。"
)
NOT_FOR_YOU = "抱歉，您不能使用这个命令。发送 /help 查看您可以使用的命令。"
QUESTION_HINT = "直接输入问题即可查询政策，回答会注明出处。"

# Help is grouped by who may use a command, in this order.
_SECTIONS: tuple[tuple[frozenset[Role], str], ...] = (
    (STAFF, "干部命令："),
    (ADMINS, "管理员命令："),
)


@dataclass(frozen=True)
class DeskPage:
    """A page of the web console, declared with its roles by the feature that owns it (the
    case desk, the knowledge base, accounts), as commands are. The web navigation is
    generated from these; the feature's own methods still check the actor's role."""

    name: str
    title: str
    path: str
    roles: frozenset[Role]

    def allows(self, role: Role) -> bool:
        return role in self.roles


def pages_for(pages: Iterable[DeskPage], role: Role) -> list[DeskPage]:
    """The pages ``role`` may open, in declaration order."""
    return [page for page in pages if page.allows(role)]


@dataclass
class TurnOutput:
    """What a turn is producing; commands and form steps add to it."""

    replies: list[Reply] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    files: list[OutgoingFile] = field(default_factory=list)
    tasks: list[BackgroundTask] = field(default_factory=list)
    toast: str | None = None
    origin_actions: tuple[Action, ...] | None = None
    kind: ExchangeKind = ExchangeKind.COMMAND
    found: bool | None = None
    chunk_ids: tuple[str, ...] = ()
    kb_version: str | None = None
    suggestions: tuple[str, ...] = ()  # the answer's next questions (追问)
    filed: str | None = None  # the case type, when this turn filed a case

    def say(self, *replies: Reply | str) -> None:
        self.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)


@dataclass
class CommandCall:
    """One use of a command, inside the turn's unit of work and conversation lock."""

    user: User
    argument: str
    now: datetime
    uow: OfficeUnitOfWork
    state: DialogState | None  # the intake form in progress in this conversation, if any
    out: TurnOutput
    via_button: bool = False
    chat_id: str = ""
    channel: str = ""
    question: Callable[[str], None] | None = None
    """Answers a policy question into ``out`` (set by the conversation service)."""


CommandHandler = Callable[[CommandCall], None]


@dataclass(frozen=True)
class Command:
    name: str  # without the slash
    summary: str  # one line for /help and the command menus
    run: CommandHandler
    roles: frozenset[Role] = EVERYONE
    usage: str = ""  # the argument, as shown in help: "编号", "[状态]"
    listed: bool = True  # in /help (False: what buttons send, like /rate)
    menu: bool = False  # in the channels' command menu (Telegram's "/" list)
    reminds_form: bool = True  # after it, remind the user of a form in progress
    denied: str = ""  # the refusal for users without the role (default: by the roles)

    def allows(self, user: User) -> bool:
        return user.role in self.roles

    def refusal(self) -> str:
        if self.denied:
            return self.denied
        if self.roles <= ADMINS:
            return ADMIN_ONLY
        if self.roles <= STAFF:
            return CADRE_ONLY
        return NOT_FOR_YOU

    def help_line(self) -> str:
        usage = f" {self.usage}" if self.usage else ""
        return f"/{self.name}{usage}  {self.summary}"


class CommandRegistry:
    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        self.add(*commands)

    def add(self, *commands: Command) -> None:
        for command in commands:
            if command.name in self._commands:
                raise ValueError(f"command /{command.name} declared twice")
            self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def all(self) -> list[Command]:
        return list(self._commands.values())

    def menu(self) -> list[Command]:
        """The commands a channel lists in its command menu (for everyone)."""
        return [c for c in self._commands.values() if c.menu]

    def help_text(self, user: User) -> str:
        """The commands ``user`` may use, grouped by who may use them."""
        usable = [c for c in self._commands.values() if c.listed and c.allows(user)]
        grouped = {roles for roles, _ in _SECTIONS}
        lines = ["可用的命令："]
        lines += [c.help_line() for c in usable if c.roles not in grouped]
        for roles, heading in _SECTIONS:
            section = [c.help_line() for c in usable if c.roles == roles]
            if section:
                lines += [heading, *section]
        lines.append(QUESTION_HINT)
        return "\n".join(lines)
