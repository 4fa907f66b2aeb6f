"""The case database: users, the Q&A log, intake dialog state, cases and their history.

SQLite under the data dir by default, PostgreSQL via ``DATABASE_URL``. Implements the
repository protocols of :mod:`cadrebot.handlers.ports`.
"""

from cadrebot.storage.database import CaseDatabase
from cadrebot.storage.engines import (
    current_revision,
    downgrade,
    engine_from_settings,
    head_revision,
    make_engine,
    normalize_database_url,
    upgrade,
)
from cadrebot.storage.log_masking import SensitiveDataFilter, install_sensitive_data_filter
from cadrebot.storage.repositories import (
    SqlCaseRepository,
    SqlDialogStateRepository,
    SqlExchangeLog,
    SqlUnitOfWork,
    SqlUnitOfWorkFactory,
    SqlUserRepository,
    case_number,
)

__all__ = [
    "CaseDatabase",
    "SensitiveDataFilter",
    "SqlCaseRepository",
    "SqlDialogStateRepository",
    "SqlExchangeLog",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "SqlUserRepository",
    "case_number",
    "current_revision",
    "downgrade",
    "engine_from_settings",
    "head_revision",
    "install_sensitive_data_filter",
    "make_engine",
    "normalize_database_url",
    "upgrade",
]
