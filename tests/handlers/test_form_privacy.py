"""The forms never show an ID number back, check names, and keep a multi-choice selection
when it is edited from the summary."""

from __future__ import annotations

import unicodedata

import pytest

from cadrebot.handlers.forms import FormEngine, StepOutcome
from cadrebot.handlers.forms.validators import (
    InvalidAnswer,
    parse_choice,
    parse_multi_choice,
    parse_person_name,
)
from cadrebot.handlers.ports import DialogPhase
from tests.support.forms import RISK_TYPED

from .formdriver import answer_all
from .test_forms_engine import NOW, at_field

ID = "360702199001011232"
SPACED_IDS = (
    ID,
    "3607 0219 9001 0112 32",
    "360 702 199 001 011 232",
    "ID３６０７０２１９９００１０１１２３２",
)
CHOICES = ("脱贫户", "监测户", "一般农户")


def digits_of(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def shows_no_id(text: str) -> bool:
    return "0219900101" not in digits_of(text) and "19900101" not in digits_of(text)


@pytest.mark.parametrize("typed", SPACED_IDS)
def test_an_unknown_choice_is_not_quoted_back_when_it_holds_digits(typed: str) -> None:
    with pytest.raises(InvalidAnswer) as single:
        parse_choice(typed, CHOICES)
    with pytest.raises(InvalidAnswer) as multi:
        parse_multi_choice(typed, CHOICES)
    for reason in (single.value.reason, multi.value.reason):
        assert shows_no_id(reason), reason
        assert "请回复选项序号（1到3）或选项文字" in reason


def test_unknown_choices_without_digits_are_still_quoted() -> None:
    with pytest.raises(InvalidAnswer, match="没有找到“贫困户”这个选项"):
        parse_choice("贫困户", CHOICES)
    with pytest.raises(InvalidAnswer, match="没有找到“贫困户”这个选项"):
        parse_multi_choice("1、贫困户", CHOICES)
    with pytest.raises(InvalidAnswer, match="没有第7个选项"):
        parse_choice("7", CHOICES)


@pytest.mark.parametrize("typed", SPACED_IDS)
def test_the_form_never_echoes_an_id_typed_into_a_choice(engine: FormEngine, typed: str) -> None:
    for field in ("household_type", "risk_types"):
        result = engine.step(at_field(engine, field), typed, NOW)
        assert result.outcome is StepOutcome.REJECTED
        assert all(shows_no_id(reply.text) for reply in result.replies)


@pytest.mark.parametrize("typed", SPACED_IDS)
def test_the_summary_never_echoes_an_id_typed_as_an_edit(engine: FormEngine, typed: str) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    for request in (f"修改 {typed}", f"改{typed}", typed):
        result = engine.step(state, request, NOW)
        assert result.outcome is StepOutcome.REJECTED
        assert all(shows_no_id(reply.text) for reply in result.replies), request


def test_an_id_in_free_text_is_stored_masked(engine: FormEngine) -> None:
    state = at_field(engine, "description")
    result = engine.step(state, "我身份证3607 0219 9001 0112 32，手机138 1234 5678", NOW)
    assert result.state is not None
    stored = result.state.answers["description"]
    assert isinstance(stored, str)
    assert shows_no_id(stored)
    assert "3607**********1232" in stored
    assert "138 1234 5678" in stored  # cadres need the number to call back


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("张三", "张三"),
        ("  张 三 ", "张三"),
        ("张\u200b三", "张三"),
        ("欧阳娜娜", "欧阳娜娜"),
        ("阿卜杜拉·买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉•买买提", "阿卜杜拉·买买提"),
        ("John Smith", "John Smith"),
        ("Ｌｉ Ｌｅｉ", "Li Lei"),
    ],
)
def test_names_that_are_accepted(typed: str, stored: str) -> None:
    assert parse_person_name(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("😀😀", "汉字或字母"),
        ("\u200b\u200b", "不能为空"),
        ("   ", "不能为空"),
        ("12345", "汉字或字母"),
        ("张三1", "汉字或字母"),
        ("=1+1", "汉字或字母"),
        ("张", "至少2个字"),
        ("·张", "间隔号"),
        ("张··三", "间隔号"),
        ("张" * 21, "20个字"),
    ],
)
def test_names_that_are_asked_again_with_a_reason(typed: str, why: str) -> None:
    with pytest.raises(InvalidAnswer) as refused:
        parse_person_name(typed)
    assert why in refused.value.reason


def test_the_name_field_re_asks_a_bad_name(engine: FormEngine) -> None:
    state = at_field(engine, "name")
    result = engine.step(state, "😀😀", NOW)
    assert result.outcome is StepOutcome.REJECTED
    assert result.state is state
    assert "姓名" in result.replies[0].text and "请输入申报人姓名" in result.replies[0].text


# --------------------------------------------------------------------------- multi-choice edit


def test_editing_a_multi_choice_answer_starts_from_the_current_selection(
    engine: FormEngine,
) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    assert state.answers["risk_types"] == ["因病", "因灾"]
    editing = engine.step(state, "改 8", NOW)
    assert editing.state is not None and editing.state.phase is DialogPhase.EDITING
    assert editing.replies[-1].selected == ("因病", "因灾")
    toggled = engine.step(editing.state, "toggle:3", NOW)  # add 因学
    assert toggled.state is not None
    assert toggled.replies[-1].selected == ("因病", "因学", "因灾")
    done = engine.step(toggled.state, "完成", NOW)
    assert done.state is not None and done.state.phase is DialogPhase.SUMMARY
    assert done.state.answers["risk_types"] == ["因病", "因学", "因灾"]


def test_done_right_away_keeps_the_earlier_picks(engine: FormEngine) -> None:
    state, _ = answer_all(engine, "risk_report", RISK_TYPED, NOW)
    editing = engine.step(state, "修改 风险类型", NOW).state
    assert editing is not None
    done = engine.step(editing, "完成", NOW)
    assert done.state is not None
    assert done.state.answers["risk_types"] == ["因病", "因灾"]


def test_going_back_to_a_multi_choice_question_shows_its_picks(engine: FormEngine) -> None:
    state = at_field(engine, "description")
    back = engine.step(state, "返回", NOW)
    assert back.state is not None and back.state.current_field == "risk_types"
    assert back.replies[-1].selected == ("因病", "因灾")


@pytest.mark.parametrize("typed", ["3607-0219-9001-011232", "3607 0219 9001 0112 32"])
def test_an_id_with_separators_is_accepted_by_the_id_field(engine: FormEngine, typed: str) -> None:
    result = engine.step(at_field(engine, "id_number"), typed, NOW)
    assert result.outcome is StepOutcome.ASKED
    assert result.state is not None and result.state.answers["id_number"] == ID
