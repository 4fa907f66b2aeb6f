"""Test data shared by the storage tests (the rest is in :mod:`tests.support`)."""

from __future__ import annotations

from cadrebot.handlers.ports import ConversationKey, DialogPhase, DialogState
from tests.support.clock import at

KEY = ConversationKey("telegram", "chat-1")


def counter_state(key: ConversationKey) -> DialogState:
    """A form in progress whose answers hold a counter the concurrency tests bump."""
    return DialogState(
        key=key,
        form_name="risk_report",
        current_field="家庭人口",
        phase=DialogPhase.ASKING,
        answers={"count": 0},
        started_at=at(2026, 5, 6),
        updated_at=at(2026, 5, 6),
    )
