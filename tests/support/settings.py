"""Settings for a test data dir, deaf to the environment's database and bot settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadrebot.settings import Settings

ADMIN_ID = 900001
"""The Telegram user id the test bots (in-process and ``cadrebot serve``) take as admin."""


def make_settings(data_dir: Path, knowledge_dir: Path | None = None, **overrides: Any) -> Settings:
    """Settings on ``data_dir`` (and ``knowledge_dir``): SQLite under the data dir unless
    ``database_url`` is given, :data:`ADMIN_ID` as the one admin, a flood limit no test
    reaches. ``DATABASE_URL`` or ``TELEGRAM_BOT_TOKEN`` in the environment change nothing."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "telegram_bot_token": None,
        "telegram_admin_ids": frozenset({ADMIN_ID}),
        "flood_max_messages": 200,
        **overrides,
    }
    if knowledge_dir is not None:
        values["knowledge_dir"] = knowledge_dir
    return Settings(**values)
