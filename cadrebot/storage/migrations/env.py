"""Alembic environment for the cadrebot case database.

Used two ways:

* programmatically (``cadrebot.storage.engines.upgrade``): the caller passes an open connection in
  ``config.attributes["connection"]`` and the migrations run inside its transaction;
* from the command line for development, e.g. writing a new revision::

      alembic -c cadrebot/storage/migrations/alembic.ini revision --autogenerate -m "..."

  The database URL then comes from ``sqlalchemy.url`` if set, else from the settings
  (``DATABASE_URL`` / ``CADREBOT_DATABASE_URL`` or the SQLite file under the data dir).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from cadrebot.settings import Settings
from cadrebot.storage.engines import make_engine, normalize_database_url
from cadrebot.storage.models import Base

config = context.config
if config.config_file_name is not None and "connection" not in config.attributes:
    # Command-line use: log as alembic.ini says. Programmatic use leaves logging alone.
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _database_url() -> str:
    configured = config.get_main_option("sqlalchemy.url")
    url = configured or Settings().resolved_database_url()
    return normalize_database_url(url).render_as_string(hide_password=False)


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as new_connection:
            _configure_and_run(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
