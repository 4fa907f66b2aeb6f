from __future__ import annotations

from datetime import date, datetime

import pytest

from cadrebot.handlers.forms import FormEngine, StepOutcome, subsidy
from cadrebot.handlers.ports import Case, NewCase

from .formdriver import SUBSIDY_ANSWERS, answer_all
from .helpers import KEY, at


def file_on(engine: FormEngine, now: datetime) -> tuple[NewCase, str]:
    state, result = answer_all(engine, "subsidy", SUBSIDY_ANSWERS, now)
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
    state, _ = answer_all(engine, "subsidy", SUBSIDY_ANSWERS[:8], at(2026, 5, 12))
    assert state.current_field == "scale"
    assert engine.step(state, "0", at(2026, 5, 12)).outcome is StepOutcome.REJECTED
    state, _ = answer_all(engine, "subsidy", SUBSIDY_ANSWERS[:9], at(2026, 5, 12))
    bad_unit = engine.step(state, "公斤", at(2026, 5, 12))
    assert bad_unit.outcome is StepOutcome.REJECTED
    assert "1到5" in bad_unit.replies[0].text
