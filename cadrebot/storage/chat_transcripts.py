"""The web chat's transcripts in SQL (``web_chat_transcripts``): one row per browser, the
state the chat renders from as one JSON text (the web channel owns its shape)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cadrebot.storage.database import CaseDatabase
from cadrebot.storage.models import Base, ChatTranscriptRow

_transcripts = Base.metadata.tables[ChatTranscriptRow.__tablename__]


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
        values = {"state": state, "updated_at": at}
        with self._database.engine.begin() as connection:
            changed = connection.execute(
                update(_transcripts).where(_transcripts.c.browser == browser).values(values)
            ).rowcount
            if changed:
                return
            try:
                with connection.begin_nested():
                    connection.execute(insert(_transcripts).values(browser=browser, **values))
            except IntegrityError:  # the same browser's other request got there first
                connection.execute(
                    update(_transcripts).where(_transcripts.c.browser == browser).values(values)
                )

    def purge(self, *, older_than: datetime) -> int:
        """Delete the transcripts last changed before ``older_than``; how many went."""
        with self._database.engine.begin() as connection:
            return connection.execute(
                delete(_transcripts).where(_transcripts.c.updated_at < older_than)
            ).rowcount
