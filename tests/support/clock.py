"""Times the way the service's clock produces them: aware, in Asia/Shanghai."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
IDLE = timedelta(minutes=120)
"""The form idle timeout the tests run the conversation core with (the default setting)."""


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


class FixedClock:
    """A clock for the conversation core that says ``now`` until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
