"""What the Telegram channel runs on, built from settings (no I/O until ``open``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from zoneinfo import ZoneInfo

from cadrebot.bot.wiring import ConversationStack, Knowledge, build_conversation_stack
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.ports import PolicyAnswer, PolicyAnswerer
from cadrebot.handlers.turns import TurnReceipt
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase
from cadrebot.storage.build_lock import IndexBuildLock

AnswerObserver = Callable[[float, PolicyAnswer], None]


class ObservedAnswerer:
    """An answerer reporting how long every answer took (a webhook worker's metrics)."""

    def __init__(self, answerer: PolicyAnswerer, observer: AnswerObserver) -> None:
        self._answerer = answerer
        self._observer = observer

    def answer(self, question: str) -> PolicyAnswer:
        started = time.perf_counter()
        result = self._answerer.answer(question)
        self._observer(time.perf_counter() - started, result)
        return result


@dataclass(frozen=True)
class ServiceHooks:
    """What a webhook worker observes and shares with the other workers; all optional."""

    on_answer: AnswerObserver | None = None
    on_case_filed: Callable[[str], None] | None = None
    on_index_loaded: Callable[[str], None] | None = None
    claim_job: Callable[[str, str], bool] | None = None
    """True for exactly one caller per (job, run key) across all workers, so N workers send
    the daily reminder once. None: this process is alone."""
    receipts: Callable[[int], TurnReceipt | None] | None = None
    """The inbox row of the update being processed, completed in the turn's transaction."""


@dataclass
class TelegramServices(ConversationStack):
    """The conversation stack with what the Telegram channel adds: the worker's hooks and
    the clock its jobs read. Opened and closed as the stack is."""

    hooks: ServiceHooks = field(default_factory=ServiceHooks)
    clock: Callable[[], datetime] = field(default=datetime.now)

    @property
    def core(self) -> ConversationService:
        return self.service


def build_services(
    settings: Settings,
    *,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] | None = None,
    database: CaseDatabase | None = None,
    hooks: ServiceHooks | None = None,
) -> TelegramServices:
    """Construct (not open) everything the Telegram channel needs. ``database``: one the
    caller opened already (a webhook worker needs it for its inbox before this)."""
    hooks = hooks or ServiceHooks()
    zone = ZoneInfo(settings.timezone)
    now: Callable[[], datetime] = clock or (lambda: datetime.now(zone))
    database = database or CaseDatabase(settings, tz=zone)
    lock = IndexBuildLock(lambda: database.engine, settings.index_dir.parent / "index-build.lock")

    def observe(answerer: PolicyAnswerer) -> PolicyAnswerer:
        if hooks.on_answer is None:
            return answerer
        return ObservedAnswerer(answerer, hooks.on_answer)

    stack = build_conversation_stack(
        settings,
        knowledge=knowledge,
        clock=now,
        database=database,
        observe=observe,
        build_lock=lock,
        on_case_filed=hooks.on_case_filed,
    )
    parts = {f.name: getattr(stack, f.name) for f in fields(stack)}
    return TelegramServices(**parts, hooks=hooks, clock=now)
