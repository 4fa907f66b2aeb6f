"""A per-user flood guard: at most N messages in a sliding window, one polite warning."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import Enum

FLOOD_WARNING = "您发送消息太频繁了，请稍等一会儿再发，我会继续为您服务。"


class Verdict(Enum):
    ALLOW = "allow"
    WARN = "warn"  # over the limit: tell the user once
    DROP = "drop"  # still over the limit, already told


class FloodGuard:
    """Counts each user's messages in the last ``window`` seconds (in memory, per process)."""

    def __init__(
        self,
        max_messages: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_messages
        self._window = window
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    def check(self, user_id: int) -> Verdict:
        now = self._clock()
        stamps = self._seen.setdefault(user_id, deque())
        while stamps and now - stamps[0] >= self._window:
            stamps.popleft()
        if len(stamps) < self._max:
            stamps.append(now)
            self._warned.pop(user_id, None)
            if len(self._seen) > 10_000:
                self._forget_idle(now)
            return Verdict.ALLOW
        warned_at = self._warned.get(user_id)
        if warned_at is not None and now - warned_at < self._window:
            return Verdict.DROP
        self._warned[user_id] = now
        return Verdict.WARN

    def _forget_idle(self, now: float) -> None:
        idle = [u for u, s in self._seen.items() if not s or now - s[-1] >= self._window]
        for user_id in idle:
            self._seen.pop(user_id, None)
            self._warned.pop(user_id, None)
