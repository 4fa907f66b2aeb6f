"""Pure parts of the channel: callback data, keyboards, message splitting, flood guard."""

from __future__ import annotations

import pytest

from cadrebot.bot.telegram import keyboards as kb
from cadrebot.bot.telegram.flood import FloodGuard, Verdict
from cadrebot.bot.telegram.rendering import split_text
from cadrebot.handlers.invites import normalize_code
from cadrebot.handlers.ports import Action, KnowledgeError, Option, Reply
from cadrebot.handlers.qa import suggestion_actions
from cadrebot.indexer.folder import catalog_entry, safe_file_name, without_catalog_entry


@pytest.mark.parametrize(
    "callback",
    [
        kb.OptionPayload("toggle:3"),
        kb.OptionPayload("确认提交"),
        kb.OptionLabel(2, 1),
        kb.ActionCommand("/rate 42 up"),
        kb.ActionCommand("/more 99"),
        kb.ActionCommand("/cases 核实中 +10"),
        kb.ActionCommand("/case FX-2026-000001"),
        kb.ActionCommand("/setstatus JB-2026-000123 不予通过"),
    ],
)
def test_callback_data_round_trips_within_64_bytes(callback: kb.Callback) -> None:
    data = kb.encode(callback)
    assert len(data.encode()) <= 64
    assert kb.decode(data) == callback


@pytest.mark.parametrize(
    ("data", "command"),
    [
        ("f:u:42", "/rate 42 up"),
        ("f:d:7", "/rate 7 down"),
        ("m:99", "/more 99"),
        ("cl:10:核实中", "/cases 核实中 +10"),
        ("cl:0:", "/cases +0"),
        ("cv:FX-2026-000001", "/case FX-2026-000001"),
        ("ct:JB-2026-000123:不予通过", "/setstatus JB-2026-000123 不予通过"),
    ],
)
def test_buttons_of_the_previous_version_still_work(data: str, command: str) -> None:
    assert kb.decode(data) == kb.ActionCommand(command)


def test_unknown_callback_data_is_none() -> None:
    assert kb.decode("zz:1") is None
    assert kb.decode("f:u:notanumber") is None
    assert kb.decode("c:not a command") is None


def _buttons(reply: Reply) -> list[tuple[str, str]]:
    markup = kb.reply_markup(reply)
    assert isinstance(markup, kb.InlineKeyboardMarkup)
    return [(b.text, str(b.callback_data)) for row in markup.inline_keyboard for b in row]


def test_long_choice_falls_back_to_the_button_position() -> None:
    long_choice = "因病致贫返贫风险较大需要尽快核实的特殊困难情况"  # > 64 bytes with the prefix
    reply = Reply("请选择", options=(Option("是", "是"), Option(long_choice, long_choice)))
    markup = kb.reply_markup(reply)
    assert isinstance(markup, kb.InlineKeyboardMarkup)
    buttons = [b for row in markup.inline_keyboard for b in row]
    assert buttons[0].callback_data == "p:是"
    row, column = next(
        (r, c)
        for r, line in enumerate(markup.inline_keyboard)
        for c, b in enumerate(line)
        if b.text == long_choice
    )
    assert kb.decode(str(buttons[1].callback_data)) == kb.OptionLabel(row, column)


def test_multi_choice_marks_the_selected_options() -> None:
    reply = Reply(
        "主要风险？",
        options=(
            Option("因病", "toggle:1"),
            Option("因残", "toggle:2"),
            Option("因灾", "toggle:3"),
        ),
        multi_select=True,
        selected=("因病", "因灾"),
    )
    assert [label for label, _ in _buttons(reply)] == ["✓ 因病", "因残", "✓ 因灾"]


def test_actions_become_command_buttons_and_a_prompt_a_force_reply() -> None:
    reply = Reply("案件", actions=(Action("改为：核实中", "/setstatus FX-2026-000001 核实中"),))
    assert _buttons(reply) == [("改为：核实中", "c:/setstatus FX-2026-000001 核实中")]
    assert isinstance(kb.reply_markup(Reply("理由？", expects_reply=True)), kb.ForceReply)
    assert kb.reply_markup(Reply("纯文字")) is None


def test_suggested_questions_become_ask_buttons_that_fit_the_callback_data() -> None:
    fits = "巩固饮水安全保障的具体要求是什么"  # 16 characters: the longest suggested
    too_long = "强化产业联农带农增收效益的具体要求是什么？"
    actions = suggestion_actions(("谁负责巩固住房安全保障？", fits, too_long))
    reply = Reply("加强住房安全动态监测。", actions=actions, is_answer=True)
    buttons = _buttons(reply)
    assert buttons == [
        ("谁负责巩固住房安全保障？", "c:/ask 谁负责巩固住房安全保障？"),
        (fits, f"c:/ask {fits}"),
    ]
    assert all(len(data.encode()) <= kb.CALLBACK_DATA_LIMIT for _, data in buttons)
    assert kb.decode(buttons[0][1]) == kb.ActionCommand("/ask 谁负责巩固住房安全保障？")
    markup = kb.reply_markup(reply)
    assert isinstance(markup, kb.InlineKeyboardMarkup)
    assert [len(row) for row in markup.inline_keyboard] == [1, 1]  # a question a row


def test_split_text_respects_the_limit_and_cuts_at_breaks() -> None:
    text = "\n\n".join(f"第{i}段。" + "政策内容" * 30 for i in range(40))
    pieces = split_text(text, limit=500)
    assert all(len(p) <= 500 for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
    assert all(p.startswith("第") for p in pieces)
    assert split_text("") == ["（空）"]


def test_flood_guard_warns_once_per_window() -> None:
    now = [0.0]
    guard = FloodGuard(2, 10.0, clock=lambda: now[0])
    assert [guard.check(1) for _ in range(4)] == [
        Verdict.ALLOW,
        Verdict.ALLOW,
        Verdict.WARN,
        Verdict.DROP,
    ]
    assert guard.check(2) is Verdict.ALLOW
    now[0] = 10.5
    assert guard.check(1) is Verdict.ALLOW


def test_invite_codes_are_forgiving_to_type() -> None:
    assert normalize_code(" yq abcd 2345 ") == "YQ-ABCD2345"
    assert normalize_code("yq－abcd2345") == "YQ-ABCD2345"


def test_upload_names_are_checked() -> None:
    assert safe_file_name("信丰县2025年办法.docx") == "信丰县2025年办法.docx"
    for bad in ("../x.txt", "a/b.txt", ".hidden.txt", "catalog.toml", "run.sh", "noext"):
        with pytest.raises(KnowledgeError):
            safe_file_name(bad)


def test_catalog_entries_are_added_and_removed_verbatim() -> None:
    base = '# comment\n\n["a.txt"]\ntitle = "甲"\n'
    added = base + "\n" + catalog_entry('b "引号".txt', {"title": "乙\n换行"})
    import tomllib

    parsed = tomllib.loads(added)
    assert parsed['b "引号".txt']["title"] == "乙\n换行"
    assert without_catalog_entry(added, 'b "引号".txt').strip() == base.strip()
