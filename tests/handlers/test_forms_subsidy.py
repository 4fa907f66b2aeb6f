from __future__ import annotations

import dataclasses
from datetime import date, datetime

import pytest

from cadrebot.handlers.export import ledger_rows
from cadrebot.handlers.forms import FormEngine, FormRegistry, StepOutcome, subsidy
from cadrebot.handlers.ports import Case, NewCase
from tests.support.clock import at
from tests.support.forms import SUBSIDY_TYPED

from .formdriver import answer_all
from .helpers import KEY


def file_on(engine: FormEngine, now: datetime) -> tuple[NewCase, str]:
    state, result = answer_all(engine, "subsidy", SUBSIDY_TYPED, now)
    summary = result.replies[-1].text
    submit = engine.step(state, "确认提交", now)
    assert submit.outcome is StepOutcome.SUBMIT
    return subsidy.FORM.file_case(submit.answers, 3, now), summary


def as_case(new: NewCase) -> Case:
    return Case(
        id=1,
        number="JB-2026-000045",
        case_type=new.case_type,
        status=new.status,
        fields=new.fields,
        submitter_id=new.submitter_id,
        township=new.township,
        village=new.village,
        submitted_at=new.submitted_at,
        updated_at=new.submitted_at,
        due_dates=new.due_dates,
    )


def test_household_type_is_asked_first_and_general_households_are_refused(
    engine: FormEngine,
) -> None:
    start = engine.start("subsidy", KEY, at(2026, 5, 12))
    assert start.state is not None
    assert start.state.current_field == "household_type"
    result = engine.step(start.state, "一般农户", at(2026, 5, 12))
    assert result.outcome is StepOutcome.ENDED
    assert result.state is None
    text = result.replies[0].text
    assert "脱贫户和监测户" in text
    assert "信巩字〔2024〕1号" in text
    assert "第5条" in text


@pytest.mark.parametrize("household", ["脱贫户", "监测户", "2"])
def test_eligible_households_continue(engine: FormEngine, household: str) -> None:
    start = engine.start("subsidy", KEY, at(2026, 5, 12)).state
    assert start is not None
    result = engine.step(start, household, at(2026, 5, 12))
    assert result.state is not None
    assert result.state.current_field == "name"


def test_first_round_window(engine: FormEngine) -> None:
    new, summary = file_on(engine, at(2026, 5, 20))
    assert new.status == "已申报"
    assert new.number_prefix == "JB"
    assert new.fields["round"] == "2026年第一批"
    assert new.due_dates == {"县级核实": date(2026, 6, 20), "资金拨付": date(2026, 6, 30)}
    assert "2026年第一批" in summary
    text = subsidy.FORM.confirmation(as_case(new))
    assert "JB-2026-000045" in text
    assert "公示7天" in text
    assert "06月20日前" in text
    assert "06月30日前" in text
    assert new.fields["scale"] == 5
    assert new.fields["scale_unit"] == "亩"
    assert new.fields["disaster"] is False


def test_second_round_window(engine: FormEngine) -> None:
    new, _ = file_on(engine, at(2026, 8, 31, 23, 59))
    assert new.status == "已申报"
    assert new.fields["round"] == "2026年第二批"
    assert new.due_dates == {"县级核实": date(2026, 9, 20), "资金拨付": date(2026, 9, 30)}


@pytest.mark.parametrize(
    ("when", "label", "window_end"),
    [
        (at(2026, 5, 10), "2026年第一批", date(2026, 5, 31)),
        (at(2026, 6, 1), "2026年第二批", date(2026, 8, 31)),
        (at(2026, 8, 10), "2026年第二批", date(2026, 8, 31)),
        (at(2026, 9, 1), "2027年第一批", date(2027, 5, 31)),
        (at(2026, 1, 3), "2026年第一批", date(2026, 5, 31)),
    ],
)
def test_outside_a_window_is_a_preregistration(
    engine: FormEngine, when: datetime, label: str, window_end: date
) -> None:
    new, summary = file_on(engine, when)
    assert new.status == "预登记"
    assert new.fields["round"] == label
    assert new.due_dates == {"申报截止": window_end}
    assert "预登记" in summary
    text = subsidy.FORM.confirmation(as_case(new))
    assert "预登记" in text
    assert label in text
    assert f"{window_end:%m月%d日}" in text


def test_round_boundaries() -> None:
    assert subsidy.round_for(date(2026, 5, 11)) is not None
    assert subsidy.round_for(date(2026, 5, 31)) is not None
    assert subsidy.round_for(date(2026, 6, 1)) is None
    assert subsidy.round_for(date(2026, 8, 11)) is not None
    assert subsidy.round_for(date(2026, 8, 10)) is None
    assert subsidy.next_round(date(2026, 12, 31)).window_start == date(2027, 5, 11)


def test_scale_and_investment_are_validated(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "subsidy", SUBSIDY_TYPED[:8], at(2026, 5, 12))
    assert state.current_field == "scale"
    assert engine.step(state, "0", at(2026, 5, 12)).outcome is StepOutcome.REJECTED
    state, _ = answer_all(engine, "subsidy", SUBSIDY_TYPED[:9], at(2026, 5, 12))
    bad_unit = engine.step(state, "公斤", at(2026, 5, 12))
    assert bad_unit.outcome is StepOutcome.REJECTED
    assert "1到5" in bad_unit.replies[0].text


def test_the_form_declares_its_workflow_and_ledger(engine: FormEngine) -> None:
    in_window, _ = file_on(engine, at(2026, 5, 20))
    outside, _ = file_on(engine, at(2026, 7, 1))
    workflow = subsidy.FORM.workflow
    for new in (in_window, outside):
        assert new.status in workflow.statuses
        assert set(new.due_dates) <= set(workflow.due_names)
    rule = workflow.rule("预登记", "已申报")
    assert rule is not None and rule.guard is not None
    assert "不在产业奖补申报期内" in (rule.guard(date(2026, 7, 1)) or "")
    assert rule.guard(date(2026, 8, 20)) is None

    headers, rows = ledger_rows(
        [as_case(in_window)], "subsidy", FormRegistry([subsidy.FORM]), unmasked=False
    )
    assert "申报批次" in headers and "round" not in headers
    assert {f"期限·{name}" for name in workflow.due_names} <= set(headers)  # even unset ones
    assert rows[0][headers.index("申报批次")] == "2026年第一批"


def test_a_form_and_its_workflow_file_the_same_case_type() -> None:
    other = dataclasses.replace(subsidy.WORKFLOW, case_type="other")
    with pytest.raises(ValueError, match="case type"):
        dataclasses.replace(subsidy.FORM, workflow=other)
    with pytest.raises(ValueError, match="also asked"):
        dataclasses.replace(subsidy.FORM, extra_field_labels={"name": "姓名"})
