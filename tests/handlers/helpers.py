"""Constants shared by the handler tests (the rest is in :mod:`tests.support`)."""

from __future__ import annotations

from cadrebot.handlers.ports import ConversationKey

KEY = ConversationKey("console", "chat-1")
