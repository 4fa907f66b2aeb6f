"""Intake forms declared as data, and the engine that walks a user through them."""

from __future__ import annotations

from cadrebot.handlers.forms import risk_report, subsidy
from cadrebot.handlers.forms.engine import (
    FormEngine,
    FormRegistry,
    FormSpec,
    StepOutcome,
    StepResult,
)


def default_registry() -> FormRegistry:
    """The two forms the bot offers: /report (防返贫风险自主申报) and /subsidy (产业奖补申请)."""
    return FormRegistry([risk_report.FORM, subsidy.FORM])


__all__ = [
    "FormEngine",
    "FormRegistry",
    "FormSpec",
    "StepOutcome",
    "StepResult",
    "default_registry",
]
