"""Drive the form engine through a list of inputs, asserting each step is accepted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cadrebot.handlers.forms import FormEngine, StepOutcome, StepResult
from cadrebot.handlers.ports import DialogState

from .helpers import KEY


def answer_all(
    engine: FormEngine, form_name: str, inputs: Sequence[str], now: datetime
) -> tuple[DialogState, StepResult]:
    result = engine.start(form_name, KEY, now)
    assert result.state is not None
    state = result.state
    for text in inputs:
        result = engine.step(state, text, now)
        assert result.outcome is StepOutcome.ASKED, (text, result.replies)
        assert result.state is not None
        state = result.state
    return state, result
