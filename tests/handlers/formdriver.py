"""Drive the form engine through a list of inputs, asserting each step is accepted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cadrebot.handlers.forms import FormEngine, StepOutcome, StepResult
from cadrebot.handlers.ports import DialogState

from .helpers import KEY, VALID_ID

RISK_ANSWERS = (
    "张三",
    VALID_ID,
    "13812345678",
    "大塘埠镇",
    "长岭村",
    "4",
    "监测户",
    "1,4",
    "今年3月父亲住院做手术，花费较大，家里收入减少。",
    "3000",
    "是",
)
SUBSIDY_ANSWERS = (
    "脱贫户",
    "李四",
    VALID_ID,
    "13912345678",
    "大塘埠镇",
    "长岭村",
    "种植",
    "脐橙",
    "5",
    "亩",
    "20000",
    "否",
)


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
