"""The real conversation core as the eval sees it: each item's chat replayed in a fresh chat
on a throwaway SQLite database, the policy answer of its last reply recorded."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from zoneinfo import ZoneInfo

from cadrebot.evaluation import ChatReply
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.ports import ActionKind, PolicyAnswer, PolicyAnswerer
from cadrebot.handlers.turns import Inbound
from cadrebot.indexer.offers_file import load_offers, offers_path
from cadrebot.indexer.places_file import load_places, places_path
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase

CHANNEL = "eval"
_COMMAND_IN_TEXT = re.compile(r"/[a-z]+")
# The buttons every answer carries: not an offer of anything.
_ANSWER_BUTTONS = frozenset({ActionKind.FEEDBACK, ActionKind.SOURCES})


class _RecordingAnswerer:
    def __init__(self, answerer: PolicyAnswerer) -> None:
        self._answerer = answerer
        self.last: PolicyAnswer | None = None

    def answer(self, question: str) -> PolicyAnswer:
        self.last = self._answerer.answer(question)
        return self.last


class ReplayedConversation:
    """Use as a context manager: the database lives in a temporary folder until exit."""

    def __init__(self, settings: Settings, answerer: PolicyAnswerer) -> None:
        self._settings = settings
        self._answerer = _RecordingAnswerer(answerer)
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._database: CaseDatabase | None = None
        self._service: ConversationService | None = None

    def __enter__(self) -> Self:
        self._folder = tempfile.TemporaryDirectory(prefix="cadrebot-eval-")
        url = f"sqlite:///{Path(self._folder.name) / 'eval.sqlite3'}"
        settings = self._settings.model_copy(update={"database_url": url})
        self._database = CaseDatabase(settings, tz=ZoneInfo(settings.timezone))
        self._database.open()
        self._service = ConversationService.from_settings(
            settings,
            self._database.unit_of_work,
            self._answerer,
            # As the deployed core has them (build_conversation_stack).
            places=load_places(places_path(settings.knowledge_dir)),
            offers=load_offers(offers_path(settings.knowledge_dir)),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._database is not None:
            self._database.close()
        if self._folder is not None:
            self._folder.cleanup()

    def replay(self, history: Sequence[str], question: str) -> ChatReply:
        assert self._service is not None, "use ReplayedConversation as a context manager"
        chat = uuid.uuid4().hex[:12]
        for message in history:
            self._service.turn(Inbound(CHANNEL, chat, "评测", message))
        self._answerer.last = None
        result = self._service.turn(Inbound(CHANNEL, chat, "评测", question))
        offered = [
            action.command.split()[0]
            for reply in result.replies
            for action in reply.actions
            if action.kind not in _ANSWER_BUTTONS
        ]
        offered += _COMMAND_IN_TEXT.findall(result.text)
        answer = self._answerer.last if result.answer is not None else None
        return ChatReply(answer, result.text, tuple(dict.fromkeys(offered)))
