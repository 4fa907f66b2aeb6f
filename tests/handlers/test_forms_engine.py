"""Form engine behaviour, exercised on the risk report form."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from cadrebot.handlers.forms import FormEngine, StepOutcome
from cadrebot.handlers.ports import DialogPhase, DialogState
from tests.support.clock import IDLE, at
from tests.support.forms import RISK_TYPED, VALID_ID

from .formdriver import answer_all
from .helpers import KEY

NOW = at(2026, 5, 12)
FIELD_ORDER = (
    "name",
    "id_number",
    "mobile",
    "township",
    "village",
    "household_size",
    "household_type",
    "risk_types",
    "description",
    "estimated_loss",
    "consent",
)


def at_field(engine: FormEngine, field: str) -> DialogState:
    """The risk form with every field before ``field`` answered validly."""
    index = FIELD_ORDER.index(field)
    state, _ = answer_all(engine, "risk_report", RISK_TYPED[:index], NOW)
    assert state.current_field == field
    return state


def test_start_asks_the_first_field(engine: FormEngine) -> None:
    result = engine.start("risk_report", KEY, NOW)
    assert result.outcome is StepOutcome.ASKED
    assert result.state is not None
    assert result.state.current_field == "name"
    assert result.state.phase is DialogPhase.ASKING
    assert "防返贫风险自主申报" in result.replies[0].text
    assert "姓名" in result.replies[-1].text


def test_fields_are_asked_one_at_a_time_in_order(engine: FormEngine) -> None:
    result = engine.start("risk_report", KEY, NOW)
    assert result.state is not None
    state = result.state
    asked = [state.current_field]
    for text in RISK_TYPED:
        result = engine.step(state, text, NOW)
        assert result.state is not None
        state = result.state
        asked.append(state.current_field)
    assert tuple(asked[:-1]) == FIELD_ORDER
    assert state.phase is DialogPhase.SUMMARY


@pytest.mark.parametrize(
    ("field", "bad", "why"),
    [
        ("name", "张", "太短"),
        ("id_number", "360121199001011234", "校验位"),
        ("id_number", "3601211990", "18位"),
        ("mobile", "12345678901", "13到19"),
        ("mobile", "1381234567", "11位"),
        ("township", "镇" * 31, "30字"),
        ("household_size", "0", "1到20"),
        ("household_size", "21", "1到20"),
        ("household_size", "好几口", "数字"),
        ("household_type", "4", "1到3"),
        ("household_type", "贫困户", "没有找到"),
        ("risk_types", "因病、因穷", "“因穷”"),
        ("description", "难" * 501, "500字"),
        ("estimated_loss", "-5", "0到10000000"),
        ("estimated_loss", "20000000", "0到10000000"),
        ("consent", "再说吧", "是"),
    ],
)
def test_bad_input_is_reasked_with_a_reason_and_state_unchanged(
    engine: FormEngine, field: str, bad: str, why: str
) -> None:
    state = at_field(engine, field)
    result = engine.step(state, bad, NOW)
    assert result.outcome is StepOutcome.REJECTED
    assert result.state is state
    (reply,) = result.replies
    assert why in reply.text
    # the question is asked again under the reason
    assert engine.prompt(state).text in reply.text


def test_back_returns_to_the_previous_field_keeping_its_answer(engine: FormEngine) -> None:
    state = at_field(engine, "township")
    result = engine.step(state, "返回", NOW)
    assert result.outcome is StepOutcome.ASKED
    assert result.state is not None
    assert result.state.current_field == "mobile"
    assert "13812345678" in result.replies[-1].text  # shows the current answer
    again = engine.step(result.state, "13987654321", NOW)
    assert again.state is not None
    assert again.state.current_field == "township"
    assert again.state.answers["mobile"] == "13987654321"


def test_back_on_the_first_field_says_so(engine: FormEngine) -> None:
    start = engine.start("risk_report", KEY, NOW).state
    assert start is not None
    result = engine.step(start, "返回", NOW)
    assert result.state is start
    assert "第一项" in result.replies[0].text


def test_cancel_ends_without_submitting(engine: FormEngine) -> None:
    state = at_field(engine, "description")
    result = engine.step(state, "取消", NOW)
    assert result.outcome is StepOutcome.CANCELLED
    assert result.state is None
    assert "没有保存" in result.replies[0].text


def test_skip_only_for_optional_fields(engine: FormEngine) -> None:
    required = at_field(engine, "description")
    refused = engine.step(required, "跳过", NOW)
    assert refused.outcome is StepOutcome.REJECTED
    assert "必填" in refused.replies[0].text

    optional = at_field(engine, "estimated_loss")
    assert any(o.payload == "跳过" for o in engine.prompt(optional).options)
    skipped = engine.step(optional, "跳过", NOW)
    assert skipped.state is not None
    assert skipped.state.current_field == "consent"
    assert skipped.state.answers["estimated_loss"] is None


def test_condition_asks_other_risk_only_when_other_is_chosen(engine: FormEngine) -> None:
    state = at_field(engine, "risk_types")
    with_other = engine.step(state, "1,13", NOW).state
    assert with_other is not None
    assert with_other.current_field == "other_risk"
    without = engine.step(state, "1", NOW).state
    assert without is not None
    assert without.current_field == "description"


def test_multi_choice_toggle_flow(engine: FormEngine) -> None:
    state = at_field(engine, "risk_types")
    prompt = engine.prompt(state)
    assert prompt.multi_select
    assert prompt.options[0].payload == "toggle:1"
    assert prompt.options[-1].payload == "完成"

    empty = engine.step(state, "完成", NOW)
    assert empty.outcome is StepOutcome.REJECTED
    step = engine.step(state, "toggle:4", NOW)
    assert step.state is not None
    step = engine.step(step.state, "toggle:1", NOW)
    assert step.state is not None
    (toggled,) = step.replies
    assert toggled == dataclasses.replace(engine.prompt(step.state), replaces_origin=True)
    assert toggled.selected == ("因病", "因灾")
    assert "已选：因病、因灾。" in toggled.text
    assert toggled.text.startswith(prompt.text.split("\n")[0])  # the question stays
    step = engine.step(step.state, "toggle:4", NOW)  # toggled off again
    assert step.state is not None
    assert step.replies[0].selected == ("因病",)
    step = engine.step(step.state, "toggle:12", NOW)
    assert step.state is not None
    assert step.state.current_field == "risk_types"
    done = engine.step(step.state, "完成", NOW)
    assert done.state is not None
    assert done.state.answers["risk_types"] == ["因病", "支出骤增"]
    assert done.state.current_field == "description"
    assert "selection" not in done.state.scratch


def test_summary_lists_all_answers_numbered_with_masked_id(engine: FormEngine) -> None:
    state, result = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    assert state.phase is DialogPhase.SUMMARY
    text = result.replies[-1].text
    assert "1. 姓名：张三" in text
    assert "2. 身份证号：3601**********1239" in text
    assert VALID_ID not in text
    assert "8. 风险类型：因病、因灾" in text
    assert "10. 预计增支或减收：3,000元" in text
    assert "11. 同意核实：是" in text
    assert [o.payload for o in result.replies[-1].options] == ["确认提交", "取消"]


@pytest.mark.parametrize("request_text", ["改 3", "修改 手机号", "3", "修改手机号"])
def test_edit_from_summary(engine: FormEngine, request_text: str) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    editing = engine.step(state, request_text, NOW)
    assert editing.outcome is StepOutcome.ASKED
    assert editing.state is not None
    assert editing.state.phase is DialogPhase.EDITING
    assert editing.state.current_field == "mobile"
    assert "手机号" in editing.replies[0].text

    bad = engine.step(editing.state, "123", NOW)
    assert bad.state is editing.state
    back = engine.step(editing.state, "13700001111", NOW)
    assert back.state is not None
    assert back.state.phase is DialogPhase.SUMMARY
    assert back.state.answers["mobile"] == "13700001111"
    assert "3. 手机号：13700001111" in back.replies[-1].text
    assert {k: v for k, v in back.state.answers.items() if k != "mobile"} == {
        k: v for k, v in state.answers.items() if k != "mobile"
    }


def test_edit_that_enables_a_field_asks_it_then_returns_to_summary(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    editing = engine.step(state, "修改 风险类型", NOW).state
    assert editing is not None
    asked = engine.step(editing, "1,13", NOW).state
    assert asked is not None
    assert asked.current_field == "other_risk"
    summary = engine.step(asked, "家里房子漏雨", NOW).state
    assert summary is not None
    assert summary.phase is DialogPhase.SUMMARY
    assert summary.answers["other_risk"] == "家里房子漏雨"


def test_edit_that_disables_a_field_drops_its_answer(engine: FormEngine) -> None:
    answers = list(RISK_TYPED)
    answers[7:8] = ["1,13", "房屋受损"]
    state, _ = answer_all(engine, "risk_report", answers, NOW)
    assert state.answers["other_risk"] == "房屋受损"
    editing = engine.step(state, "修改 风险类型", NOW).state
    assert editing is not None
    after = engine.step(editing, "因病", NOW).state
    assert after is not None
    assert after.phase is DialogPhase.SUMMARY
    assert "other_risk" not in after.answers


def test_summary_rejects_unknown_requests(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    for text, why in [("改 15", "1到11"), ("修改 邮箱", "“邮箱”"), ("好的呀", "确认提交")]:
        result = engine.step(state, text, NOW)
        assert result.outcome is StepOutcome.REJECTED
        assert result.state is state
        assert why in result.replies[0].text


def test_back_from_summary_and_from_editing(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    last = engine.step(state, "返回", NOW).state
    assert last is not None
    assert last.current_field == "consent"
    editing = engine.step(state, "2", NOW).state
    assert editing is not None
    unchanged = engine.step(editing, "返回", NOW).state
    assert unchanged is not None
    assert unchanged.phase is DialogPhase.SUMMARY
    assert unchanged.answers == state.answers


def test_confirm_submits_the_answers(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    result = engine.step(state, "确认提交", NOW)
    assert result.outcome is StepOutcome.SUBMIT
    assert result.answers == state.answers


def test_idle_form_expires(engine: FormEngine) -> None:
    state = at_field(engine, "mobile")
    fresh = engine.step(state, "13812345678", NOW + IDLE)
    assert fresh.outcome is StepOutcome.ASKED
    expired = engine.step(state, "13812345678", NOW + IDLE + timedelta(seconds=1))
    assert expired.outcome is StepOutcome.EXPIRED
    assert expired.state is None
    assert "/report" in expired.replies[0].text


def test_help_shows_the_policy_basis(engine: FormEngine) -> None:
    state = at_field(engine, "consent")
    result = engine.step(state, "帮助", NOW)
    assert result.state is state
    assert "15天" in result.replies[0].text
    assert "赣党农字〔2023〕2号" in result.replies[0].text


def test_consent_refused_ends_politely(engine: FormEngine) -> None:
    state = at_field(engine, "consent")
    result = engine.step(state, "否", NOW)
    assert result.outcome is StepOutcome.ENDED
    assert result.state is None
    assert "没有提交" in result.replies[0].text
    assert "12317" in result.replies[0].text


def test_stale_multi_choice_button_on_another_field_is_refused(engine: FormEngine) -> None:
    state = at_field(engine, "household_type")
    result = engine.step(state, "toggle:1", NOW)
    assert result.outcome is StepOutcome.REJECTED
    assert result.state is state
    assert "失效" in result.replies[0].text
