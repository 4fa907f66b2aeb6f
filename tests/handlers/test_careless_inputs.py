"""What a careless or hostile user sends that must get a polite answer and change nothing:
forged buttons, broken text inside a form, an uncatalogued document's citation."""

from __future__ import annotations

import pytest

from cadrebot.handlers.conversation import MAX_MESSAGE_CHARS, ConversationService
from cadrebot.handlers.places import township_refusal
from cadrebot.handlers.ports import Citation, PolicyAnswer
from cadrebot.handlers.qa import CANNOT_RATE, SOURCES_GONE, render_answer
from cadrebot.handlers.turns import Inbound, TurnResult
from cadrebot.indexer.places_file import load_places
from cadrebot.storage import CaseDatabase
from tests.support.answers import FakeAnswerer
from tests.support.clock import IDLE, FixedClock, at
from tests.support.conversation import console_service, file_risk_report, make_cadre
from tests.support.paths import REPO_KNOWLEDGE


@pytest.fixture
def answerer() -> FakeAnswerer:
    return FakeAnswerer()


@pytest.fixture
def service(database: CaseDatabase, answerer: FakeAnswerer) -> ConversationService:
    return ConversationService(
        database.unit_of_work, answerer, clock=FixedClock(at(2026, 5, 12)), idle_timeout=IDLE
    )


def turn(service: ConversationService, text: str, *, button: bool = False) -> TurnResult:
    return service.turn(Inbound("telegram", "42", "张三", text, via_button=button))


@pytest.mark.parametrize("number", ["99999999999999999999999", "9223372036854775808"])
def test_forged_buttons_with_huge_numbers_are_refused_politely(
    service: ConversationService, number: str
) -> None:
    assert turn(service, f"/rate {number} up", button=True).toast == CANNOT_RATE
    assert turn(service, f"/more {number}", button=True).text == SOURCES_GONE


def test_ask_in_a_form_gets_the_same_clean_up_and_length_cap(
    service: ConversationService, answerer: FakeAnswerer
) -> None:
    turn(service, "/report")
    answered = turn(service, "/ask 监测对象\ud800识别认定要多少天？")
    assert answerer.questions == ["监测对象识别认定要多少天？"]
    assert "一般不超过15天" in answered.text and "您正在填写" in answered.text
    too_long = turn(service, "/ask " + "政策" * MAX_MESSAGE_CHARS)
    assert "太长了" in too_long.text and "您正在填写" in too_long.text
    assert len(answerer.questions) == 1


def test_an_uncatalogued_document_is_cited_without_an_empty_level() -> None:
    citation = Citation("某县办法", "", "一、总则", "正文", 1.0)
    text = render_answer(PolicyAnswer("问题", True, "答案。", [citation]))
    assert "（级）" not in text and "适用：" not in text
    local = Citation("某县办法", "", "一、总则", "正文", 1.0, region="信丰县")
    assert "适用：信丰县文件" in render_answer(PolicyAnswer("问题", True, "答案。", [local]))


def test_a_status_note_is_stored_and_sent_masked(database: CaseDatabase) -> None:
    service = console_service(database)
    number = file_risk_report(service)
    make_cadre(service)
    service.turn(Inbound("console", "cadre", "干部", f"/setstatus {number} 核实中"))
    moved = service.turn(
        Inbound(
            "console",
            "cadre",
            "干部",
            f"/setstatus {number} 不予纳入 身份证 3601 2119 9001 0112 39 户主收入稳定",
        )
    )
    [notice] = moved.notices
    assert "360121199001011239" not in notice.text.replace(" ", "")
    with database.unit_of_work(read_only=True) as uow:
        note = uow.cases.events(number)[-1].note
    assert "户主收入稳定" in note and "360121199001011239" not in note.replace(" ", "")


def test_a_display_name_is_not_echoed_in_full(service: ConversationService) -> None:
    text = service.turn(Inbound("telegram", "7", "360121199001011239", "/start")).text
    assert "360121199001011239" not in text


@pytest.mark.parametrize(
    "typed", ["3607 0219 9001 0112 32", "<b>潭东</b>" * 20, '=HYPERLINK("http://x","点")']
)
def test_an_unknown_township_is_not_echoed_when_it_could_be_an_id_or_is_long(typed: str) -> None:
    register = load_places(REPO_KNOWLEDGE / "places.toml")
    reason, _ = township_refusal(register, typed)
    assert "360702199001011232" not in reason.replace(" ", "")
    assert "3607" not in reason and "<b>" not in reason and "HYPERLINK" not in reason
    assert "乡镇" in reason
    # Short plain names are still quoted, so the user sees what was not found.
    assert "“潭冬镇”" in township_refusal(register, "潭冬镇")[0]


def test_a_case_number_typed_as_an_id_is_not_echoed(service: ConversationService) -> None:
    for text in ("/case 3607 0219 9001 0112 32", "/mycases 360702199001011232"):
        reply = turn(service, text).text
        assert "没有找到" in reply
        assert "360702199001011232" not in reply.replace(" ", "")
