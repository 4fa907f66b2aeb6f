"""The web chat's transcripts in SQL (``web_chat_transcripts``): one row per browser, the
state the chat renders from as one JSON text (the web channel owns its shape)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Executable, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from cadrebot.storage.database import CaseDatabase
from cadrebot.storage.models import Base, ChatTranscriptRow

_transcripts = Base.metadata.tables[ChatTranscriptRow.__tablename__]


def _upsert(dialect: str, values: dict[str, object]) -> Executable:
    """INSERT … ON CONFLICT (browser) DO UPDATE, in the dialect of one of the two databases
    the project runs on."""
    if dialect == "postgresql":
        pg = postgresql.insert(_transcripts).values(values)
        return pg.on_conflict_do_update(
            index_elements=[_transcripts.c.browser],
            set_={"state": pg.excluded.state, "updated_at": pg.excluded.updated_at},
        )
    lite = sqlite.insert(_transcripts).values(values)
    return lite.on_conflict_do_update(
        index_elements=[_transcripts.c.browser],
        set_={"state": lite.excluded.state, "updated_at": lite.excluded.updated_at},
    )


class SqlChatTranscripts:
    """Load, save and purge browsers' transcripts (the database opened by its owner)."""

    def __init__(self, database: CaseDatabase) -> None:
        self._database = database

    def load(self, browser: str, *, fresh_after: datetime) -> str | None:
        """The browser's state, unless it is missing or last changed before ``fresh_after``."""
        with self._database.engine.connect() as connection:
            return connection.execute(
                select(_transcripts.c.state).where(
                    _transcripts.c.browser == browser, _transcripts.c.updated_at > fresh_after
                )
            ).scalar_one_or_none()

    def save(self, browser: str, state: str, *, at: datetime) -> None:
        """One statement (an upsert): the write lock is held as briefly as can be."""
        engine = self._database.engine
        values = {"browser": browser, "state": state, "updated_at": at}
        with engine.begin() as connection:
            connection.execute(_upsert(engine.dialect.name, values))

    def purge(self, *, older_than: datetime) -> int:
        """Delete the transcripts last changed before ``older_than``; how many went."""
        with self._database.engine.begin() as connection:
            return connection.execute(
                delete(_transcripts).where(_transcripts.c.updated_at < older_than)
            ).rowcount
