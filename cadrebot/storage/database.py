"""The case database as one component: settings in, migrated engine and units of work out."""

from __future__ import annotations

from datetime import UTC, tzinfo

from sqlalchemy import Engine

from cadrebot.settings import Settings
from cadrebot.storage.engines import make_engine, upgrade
from cadrebot.storage.repositories import SqlUnitOfWork, SqlUnitOfWorkFactory


class CaseDatabase:
    """Owns the engine. Construct with settings; :meth:`open` connects and migrates.

    ``tz`` is the zone datetimes are handed back in (stored in UTC), normally
    ``ZoneInfo("Asia/Shanghai")``.
    """

    def __init__(self, settings: Settings, *, tz: tzinfo = UTC) -> None:
        self._url = settings.resolved_database_url()
        self._pool_size = settings.database_pool_size
        self._tz = tz
        self._engine: Engine | None = None
        self._factory: SqlUnitOfWorkFactory | None = None

    def open(self, *, migrate: bool = True) -> None:
        """Create the engine and (by default) bring the schema up to the newest revision."""
        if self._engine is not None:
            return
        engine = make_engine(self._url, pool_size=self._pool_size)
        try:
            if migrate:
                upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        self._factory = SqlUnitOfWorkFactory(engine, tz=self._tz)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("CaseDatabase.open() has not been called")
        return self._engine

    def unit_of_work(self, *, read_only: bool = False) -> SqlUnitOfWork:
        """A new unit of work (this method is a ``ports.UnitOfWorkFactory``)."""
        if self._factory is None:
            raise RuntimeError("CaseDatabase.open() has not been called")
        return self._factory(read_only=read_only)

    def close(self) -> None:
        engine, self._engine, self._factory = self._engine, None, None
        if engine is not None:
            engine.dispose()
