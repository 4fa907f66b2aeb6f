"""Case status workflows as data: each form declares the one its cases follow.

Pure data and small helpers: no imports of the case desk (``cases`` imports the forms, never
the reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

DueRule = Callable[[date], Mapping[str, date]]
"""Due dates set when a case enters a status, from the transition day."""
Guard = Callable[[date], str | None]
"""A refusal reason (Chinese) if the transition is not allowed on that day, else None."""


@dataclass(frozen=True)
class TransitionRule:
    from_statuses: frozenset[str]
    to_status: str
    note_required: bool = False
    sets_due: DueRule | None = None
    guard: Guard | None = None


@dataclass(frozen=True)
class Workflow:
    case_type: str
    title: str
    rules: tuple[TransitionRule, ...]
    open_dues: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Which due dates still matter in each status (the others are done or not yet set)."""
    due_basis: Mapping[str, str] = field(default_factory=dict)
    """Where each due date comes from (the policy text quoted beside it)."""

    def allowed_from(self, status: str) -> list[str]:
        return [r.to_status for r in self.rules if status in r.from_statuses]

    def rule(self, from_status: str, to_status: str) -> TransitionRule | None:
        return next(
            (r for r in self.rules if from_status in r.from_statuses and r.to_status == to_status),
            None,
        )

    @property
    def statuses(self) -> list[str]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            for status in sorted(rule.from_statuses):
                seen.setdefault(status)
            seen.setdefault(rule.to_status)
        return list(seen)

    @property
    def due_names(self) -> list[str]:
        """Every due date this workflow tracks, in the order its statuses first open them."""
        seen: dict[str, None] = {}
        for names in self.open_dues.values():
            for name in sorted(names):
                seen.setdefault(name)
        return list(seen)


def days_after(name: str, days: int) -> DueRule:
    """A due rule: ``name`` falls ``days`` days after the transition day."""
    return lambda day: {name: day + timedelta(days=days)}
