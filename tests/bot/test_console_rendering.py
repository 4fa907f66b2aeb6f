"""How the console shows options and what it sends for ``+N`` (pure functions)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from cadrebot.bot.console import SUGGESTIONS_LEAD, TOGGLE_HINT, render_reply, translate_input
from cadrebot.handlers.forms import FormEngine, default_registry
from cadrebot.handlers.forms.fields import FieldKind, FieldSpec
from cadrebot.handlers.ports import Action, ActionKind, ConversationKey, Option, Reply
from cadrebot.handlers.qa import answer_actions, suggestion_actions

MULTI = FieldSpec(
    "risks", "风险类型", "主要风险？", FieldKind.MULTI_CHOICE, choices=("因病", "因灾")
)
YES_NO = FieldSpec("consent", "同意", "是否同意？", FieldKind.YES_NO, optional=True)


def test_choices_already_numbered_in_the_prompt_are_not_listed_twice() -> None:
    reply = Reply("您家属于哪一类？\n1. 脱贫户  2. 监测户", options=(Option("脱贫户", "脱贫户"), Option("监测户", "监测户")))  # fmt: skip
    assert render_reply(reply) == reply.text


def test_options_not_in_the_text_are_numbered_and_words_offered() -> None:
    reply = Reply("是否同意？", options=YES_NO.options())
    assert render_reply(reply) == "是否同意？\n1. 是  2. 否\n也可以回复：跳过"


def test_summary_controls_are_never_numbered() -> None:
    reply = Reply(
        "1. 姓名：张三\n无误请回复“确认提交”；回复“取消”放弃。",
        options=(Option("确认提交", "确认提交"), Option("取消", "取消")),
    )
    assert render_reply(reply) == reply.text  # "1" must keep meaning "edit field 1"


def test_multi_choice_shows_numbers_and_the_toggle_hint() -> None:
    reply = Reply("已选：因病。", options=MULTI.options(), multi_select=True)
    rendered = render_reply(reply)
    assert "1. 因病  2. 因灾" in rendered
    assert TOGGLE_HINT in rendered
    assert "“完成”" in rendered


def test_plus_number_toggles_the_option_of_the_multi_choice_shown() -> None:
    shown = [Reply("主要风险？", options=MULTI.options(), multi_select=True)]
    assert translate_input("+2", shown) == "toggle:2"
    assert translate_input(" ＋1 ", shown) == "toggle:1"  # full-width plus and digit
    assert translate_input("+3", shown) == "+3"  # no such option: the engine explains
    assert translate_input("1,2", shown) == "1,2"
    assert translate_input("+1", [Reply("姓名？")]) == "+1"


def test_every_prompt_of_both_forms_renders() -> None:
    # The console can show every question the forms ask, with its options numbered once.
    engine = FormEngine(default_registry(), idle_timeout=timedelta(hours=2))
    now = datetime(2026, 5, 12, tzinfo=UTC)
    for form in default_registry().all():
        state = engine.start(form.name, ConversationKey("console", "x"), now).state
        assert state is not None
        for spec in form.fields:
            state = dataclasses.replace(state, current_field=spec.name)
            rendered = render_reply(engine.prompt(state))
            assert spec.prompt in rendered
            if spec.kind in (FieldKind.CHOICE, FieldKind.MULTI_CHOICE):
                assert rendered.count(f"1. {spec.choices[0]}") == 1


SUGGESTED = ("谁负责巩固住房安全保障？", "巩固饮水安全保障有什么要求？")


def _answer_with_suggestions() -> Reply:
    actions = (
        Action("立即申报", "/report", ActionKind.START),
        *answer_actions(7),
        *suggestion_actions(SUGGESTED),
    )
    return Reply("加强住房安全动态监测。", actions=actions, is_answer=True)


def test_suggested_questions_are_numbered_after_the_answer() -> None:
    text = render_reply(_answer_with_suggestions())
    assert text.endswith(f"{SUGGESTIONS_LEAD}1. {SUGGESTED[0]}  2. {SUGGESTED[1]}")
    assert "· 立即申报：发送 /report" in text
    assert "/ask" not in text and "/rate" not in text


def test_a_bare_number_after_an_answer_asks_that_suggestion() -> None:
    shown = [_answer_with_suggestions()]
    assert translate_input("2", shown) == f"/ask {SUGGESTED[1]}"
    assert translate_input(" 1 ", shown) == f"/ask {SUGGESTED[0]}"
    assert translate_input("3", shown) == "3"  # no third suggestion: sent as typed
    assert translate_input("1", [Reply("加强住房安全动态监测。", is_answer=True)]) == "1"


def test_numbers_in_a_form_stay_form_answers() -> None:
    question = Reply("家庭人口数？")
    assert translate_input("2", [question]) == "2"
    choice = Reply("请选择", options=(Option("是", "是"), Option("否", "否")))
    assert translate_input("1", [_answer_with_suggestions(), choice]) == "1"
