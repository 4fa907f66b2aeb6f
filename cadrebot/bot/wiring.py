"""Builds the components from settings; the one place that knows the concrete types."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self
from zoneinfo import ZoneInfo

from tqdm import tqdm

from cadrebot.handlers.accounts import AccountDesk
from cadrebot.handlers.admin import BuildLock, KnowledgeAdmin
from cadrebot.handlers.case_board import CaseBoard
from cadrebot.handlers.conversation import ConversationService
from cadrebot.handlers.forms import default_registry
from cadrebot.handlers.invites import RoleBook
from cadrebot.handlers.knowledge_desk import KnowledgeDesk
from cadrebot.handlers.ports import OfficeUnitOfWorkFactory, PolicyAnswerer
from cadrebot.indexer.answers import AnswerComposer
from cadrebot.indexer.builder import BuildReport, IndexBuilder
from cadrebot.indexer.corrections import CorrectionFile
from cadrebot.indexer.embedders import Embedder, create_embedder
from cadrebot.indexer.folder import DocumentFolder
from cadrebot.indexer.inspection import IndexInspection
from cadrebot.indexer.lexicon import LEXICON_FILE
from cadrebot.indexer.lexicon_file import LexiconFile
from cadrebot.indexer.offers_file import load_offers, offers_path
from cadrebot.indexer.places_file import load_places, places_path
from cadrebot.indexer.published import PublishedIndex
from cadrebot.indexer.search import HybridSearcher
from cadrebot.indexer.store import IndexStore
from cadrebot.indexer.tokenizer import PolicyTokenizer
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase
from cadrebot.storage.chat_transcripts import SqlChatTranscripts

log = logging.getLogger(__name__)


WEB_CHAT_CHANNEL = "webchat"
"""The farmers' web chat's channel name (bot/web/routes/chat.py)."""


@dataclass
class Knowledge:
    embedder: Embedder
    tokenizer: PolicyTokenizer
    builder: IndexBuilder
    searcher: HybridSearcher
    composer: AnswerComposer


def build_knowledge(settings: Settings) -> Knowledge:
    """Construct (not load) the knowledge components; nothing heavy happens here."""
    embedder = create_embedder(
        settings.embedder,
        concurrency=settings.embedding_concurrency,
        graph_cache=settings.model_cache_dir,
    )
    tokenizer = PolicyTokenizer()
    builder = IndexBuilder(settings, embedder, tokenizer)
    # The everyday-words lexicon lives with the documents; the searcher reads it with each
    # index version it loads and again when the file changes.
    lexicon = settings.knowledge_dir / LEXICON_FILE
    searcher = HybridSearcher(settings, embedder, tokenizer, lexicon_path=lexicon)
    return Knowledge(embedder, tokenizer, builder, searcher, AnswerComposer(searcher))


def build_knowledge_admin(
    settings: Settings,
    knowledge: Knowledge,
    office_uow_factory: OfficeUnitOfWorkFactory,
    *,
    clock: Callable[[], datetime],
    build_lock: BuildLock | None,
) -> KnowledgeAdmin:
    """The knowledge-base administration over the knowledge folder and ``knowledge``'s index.

    ``build_lock`` excludes other processes' builders (None: this process is alone).
    """
    return KnowledgeAdmin(
        DocumentFolder(settings.knowledge_dir, max_upload_bytes=settings.upload_max_bytes),
        PublishedIndex(knowledge.builder, knowledge.searcher),
        office_uow_factory,
        clock=clock,
        build_lock=build_lock,
    )


def build_index_with_progress(builder: IndexBuilder, *, rebuild: bool = False) -> BuildReport:
    """Build the index, showing a progress bar on stderr while passages are embedded."""
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if total == 0:
            return
        if bar is None:
            bar = tqdm(total=total, desc="向量化文本", unit="段", file=sys.stderr, leave=False)
        bar.n = done
        bar.refresh()

    try:
        return builder.build(rebuild=rebuild, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def ensure_index(settings: Settings, knowledge: Knowledge) -> BuildReport | None:
    """Build the index if this data dir has none yet (first run), or if ``CURRENT`` names
    no version (missing, garbled, or naming a deleted one).

    Raises :class:`IndexCorruptError` (a message for the user, saying to run
    ``cadrebot index``) when versions exist but none verifies; a damaged current version with
    an intact older one is left to the searcher, which answers from the older one.
    """
    store = IndexStore(settings.index_dir)
    if store.current_name() is not None:
        store.newest_intact_name()  # raises when nothing is usable
        return None
    if store.versions():
        print("索引指针 CURRENT 缺失或无效：正在从知识库重建索引……", file=sys.stderr)
    else:
        print("首次运行：正在从知识库建立索引……", file=sys.stderr)
    report = build_index_with_progress(knowledge.builder)
    print(
        f"索引已建立：{report.documents} 份文件，{report.chunks} 段，"
        f"用时 {report.seconds:.1f} 秒。",
        file=sys.stderr,
    )
    return report


@dataclass
class ConversationStack:
    """Everything a channel needs: the knowledge base, the case database, the service.

    Built by :func:`build_conversation_stack` without I/O; :meth:`open` does the heavy part.
    Usable as a context manager (``open`` on entry, ``close`` on exit).
    """

    settings: Settings
    knowledge: Knowledge
    database: CaseDatabase
    service: ConversationService
    admin: KnowledgeAdmin
    accounts: AccountDesk
    knowledge_desk: KnowledgeDesk
    case_board: CaseBoard
    chat_transcripts: SqlChatTranscripts

    def open(self) -> None:
        """Build the index if this data dir has none, load it, open and migrate the database."""
        ensure_index(self.settings, self.knowledge)
        self.knowledge.searcher.load()
        self.database.open()

    def close(self) -> None:
        self.knowledge_desk.jobs.close()  # a build records its version in the database
        self.database.close()

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


def build_conversation_stack(
    settings: Settings,
    *,
    knowledge: Knowledge | None = None,
    clock: Callable[[], datetime] | None = None,
    database: CaseDatabase | None = None,
    observe: Callable[[PolicyAnswerer], PolicyAnswerer] | None = None,
    build_lock: BuildLock | None = None,
    on_case_filed: Callable[[str], None] | None = None,
) -> ConversationStack:
    """Construct (not open) the conversation stack for ``settings``.

    ``database``: one the caller built (and may have opened) already. ``observe`` wraps the
    answerer (a webhook worker's metrics). ``build_lock`` excludes other processes' index
    builders. ``clock`` is for tests.
    """
    knowledge = knowledge if knowledge is not None else build_knowledge(settings)
    zone = ZoneInfo(settings.timezone)
    now: Callable[[], datetime] = clock or (lambda: datetime.now(zone))
    database = database if database is not None else CaseDatabase(settings, tz=zone)
    answerer: PolicyAnswerer = knowledge.composer
    if observe is not None:
        answerer = observe(answerer)
    admin = build_knowledge_admin(
        settings, knowledge, database.unit_of_work, clock=now, build_lock=build_lock
    )
    # Admins are named per channel in the settings; only Telegram has them today.
    admin_ids = frozenset(str(i) for i in settings.telegram_admin_ids)
    places = load_places(places_path(settings.knowledge_dir))
    service = ConversationService.from_settings(
        settings,
        database.unit_of_work,
        answerer,
        clock=now,
        roles=RoleBook({"telegram": admin_ids}),
        knowledge=admin,
        on_case_filed=on_case_filed,
        # The place register of this deployment: places.toml in the knowledge folder.
        places=places,
        # The forms offered under answers (a hardship described → /report): offers.toml.
        offers=load_offers(offers_path(settings.knowledge_dir)),
        # A browser is reached only when it comes back: its users' notices always wait in
        # the outbox (whichever web worker, or restarted process, the browser comes back to).
        pull_channels=frozenset({WEB_CHAT_CHANNEL}),
    )
    accounts = AccountDesk(database.unit_of_work, places=places, clock=now)
    # The admins' knowledge console: the loaded index in detail, corrections, the lexicon.
    knowledge_desk = KnowledgeDesk(
        admin,
        IndexInspection(knowledge.searcher, settings.knowledge_dir, settings.catalog_path),
        CorrectionFile(settings.knowledge_dir),
        LexiconFile(settings.knowledge_dir / LEXICON_FILE),
        answerer,
        database.unit_of_work,
        clock=now,
    )
    # The web case desk and dashboard: the same forms, places and clock as the chat's desk.
    case_board = CaseBoard(
        database.unit_of_work,
        default_registry(),
        places=places,
        clock=now,
        due_soon_days=settings.due_soon_days,
    )
    return ConversationStack(
        settings,
        knowledge,
        database,
        service,
        admin,
        accounts,
        knowledge_desk=knowledge_desk,
        case_board=case_board,
        # What the web chat showed each browser lately, for every web worker to show.
        chat_transcripts=SqlChatTranscripts(database),
    )
