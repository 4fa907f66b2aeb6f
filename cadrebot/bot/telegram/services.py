"""The handlers the Telegram channel talks to, built from settings (no I/O until ``open``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self
from zoneinfo import ZoneInfo

from cadrebot.bot.wiring import ConversationStack, Knowledge, build_conversation_stack
from cadrebot.handlers.admin import KnowledgeAdmin
from cadrebot.handlers.casework import CaseWork
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.forms import default_registry
from cadrebot.handlers.invites import InviteService, RoleBook
from cadrebot.handlers.qa import AnswerComposer, PolicyAnswer
from cadrebot.settings import Settings
from cadrebot.storage.build_lock import IndexBuildLock
from cadrebot.storage.repositories import SqlUnitOfWork

CHANNEL = "telegram"


class ObservedAnswerer:
    """The composer, reporting how long every answer took (a webhook worker's metrics)."""

    def __init__(self, composer: AnswerComposer) -> None:
        self._composer = composer
        # Called with (seconds, answer) after every answer.
        self.observer: Callable[[float, PolicyAnswer], None] | None = None

    def answer(self, question: str) -> PolicyAnswer:
        started = time.perf_counter()
        result = self._composer.answer(question)
        if self.observer is not None:
            self.observer(time.perf_counter() - started, result)
        return result


@dataclass
class TelegramServices:
    settings: Settings
    stack: ConversationStack
    answers: ObservedAnswerer
    roles: RoleBook
    invites: InviteService
    admin: KnowledgeAdmin
    casework: CaseWork
    clock: Callable[[], datetime]
    # Set by a webhook worker: True for exactly one caller per (job, run key) across all
    # workers, so N workers send the daily reminder once. None: this process is alone.
    claim_job: Callable[[str, str], bool] | None = None

    @property
    def conversation(self) -> ConversationService:
        return self.stack.service

    @property
    def knowledge(self) -> Knowledge:
        return self.stack.knowledge

    @property
    def composer(self) -> AnswerComposer:
        return self.stack.knowledge.composer

    def office(self) -> SqlUnitOfWork:
        """A unit of work with the back-office repositories (an OfficeUnitOfWorkFactory)."""
        return self.stack.database.unit_of_work()

    def open(self) -> None:
        """Build the index if there is none, load it, open and migrate the database."""
        self.stack.open()

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build_services(
    settings: Settings,
    *,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] | None = None,
) -> TelegramServices:
    """Construct (not open) everything the Telegram channel needs."""
    zone = ZoneInfo(settings.timezone)
    now: Callable[[], datetime] = clock or (lambda: datetime.now(zone))
    if knowledge is None:
        from cadrebot.bot.wiring import build_knowledge

        knowledge = build_knowledge(settings)
    answers = ObservedAnswerer(knowledge.composer)
    stack = build_conversation_stack(settings, knowledge=knowledge, answerer=answers, clock=now)
    office = stack.database.unit_of_work
    roles = RoleBook(
        office,
        channel=CHANNEL,
        admin_ids=frozenset(str(i) for i in settings.telegram_admin_ids),
    )
    return TelegramServices(
        settings=settings,
        stack=stack,
        answers=answers,
        roles=roles,
        invites=InviteService(office, roles, clock=now),
        admin=KnowledgeAdmin(
            settings.knowledge_dir,
            knowledge.builder,
            knowledge.searcher,
            office,
            clock=now,
            max_upload_bytes=settings.upload_max_bytes,
            build_lock=IndexBuildLock(
                lambda: stack.database.engine, settings.index_dir.parent / "index-build.lock"
            ),
        ),
        casework=CaseWork(
            office, default_registry(), clock=now, due_soon_days=settings.due_soon_days
        ),
        clock=now,
    )
