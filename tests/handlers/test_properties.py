"""Standing checks over any input: every field of both forms, and free text sent to the
conversation. Input is either accepted (and stored masked) or re-asked with a reason; never
an exception, never an ID number in stored or shown text (the ID field's own answer in the
dialog state excepted: it is needed to file the case)."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cadrebot.handlers.conversation import APOLOGY, ConversationService
from cadrebot.handlers.forms import FormEngine, default_registry
from cadrebot.handlers.forms.validators import id_check_char
from cadrebot.handlers.ports import ConversationKey, DialogState
from cadrebot.handlers.turns import TurnResult
from cadrebot.storage import CaseDatabase
from cadrebot.storage.models import ExchangeRow
from tests.support.clock import at
from tests.support.forms import VALID_ID

from .test_turns import service, turn  # noqa: F401  (fixture)

NOW = at(2026, 5, 12)
USER = "farmer"
KEY = ConversationKey("console", USER)
ID_FIELD = "id_number"
PROPERTY_SETTINGS = settings(
    max_examples=25,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every field of both forms is reached with these (the conditional 其他风险 included).
TYPED = {
    "risk_report": (
        "张三", VALID_ID, "13812345678", "大塘埠镇", "长岭村", "4", "监测户", "1,13",
        "房屋受损", "今年3月父亲住院做手术", "3000", "是",
    ),
    "subsidy": (
        "脱贫户", "李四", VALID_ID, "13912345678", "大塘埠镇", "长岭村", "种植", "脐橙", "5",
        "亩", "20000", "否",
    ),
}  # fmt: skip

# --------------------------------------------------------------------------- strategies

SEPARATORS = (" ", "-", "\u200b", "\u3000", " - ", "\u00a0", "－")
REGIONS = ("360702", "110105", "360121", "445281", "130102")


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    birth = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2020, 12, 31)))
    sequence = draw(st.integers(min_value=0, max_value=999))
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + id_check_char(first17)


@st.composite
def written_ids(draw: st.DrawFn) -> tuple[str, str]:
    """(the ID, how someone typed it): separators anywhere, maybe full-width or prefixed."""
    number = draw(id_numbers())
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=17), max_size=6)))
    pieces = [number[a:b] for a, b in zip([0, *cuts], [*cuts, 18], strict=True)]
    typed = pieces[0]
    for piece in pieces[1:]:
        typed += draw(st.sampled_from(SEPARATORS)) + piece
    if draw(st.booleans()):
        typed = typed.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    prefix = draw(st.sampled_from(("", "ID", "身份证：", "身份证号 ", "我的身份证是")))
    return number, prefix + typed


free_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)
BOUNDARIES = st.sampled_from(("", "，", "。", "是", "号码", "\n", "：", "a"))


@st.composite
def messages(draw: st.DrawFn) -> tuple[str | None, str]:
    """(the ID it holds or None, the message): any text, often with an ID inside."""
    if draw(st.booleans()):
        return None, draw(free_text)
    number, typed = draw(written_ids())
    before, after = draw(free_text), draw(free_text)
    # A digit right against the ID makes a longer number (not an ID): keep a boundary.
    left = draw(BOUNDARIES) or "，"
    right = draw(BOUNDARIES) or "，"
    return number, f"{before}{left}{typed}{right}{after}"


# --------------------------------------------------------------------------- checks


def digits_of(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdecimal())


def assert_hidden(number: str | None, text: str, where: str) -> None:
    if number is not None:
        assert number[4:14] not in digits_of(text), f"{where}: {text!r}"


def shown_texts(result: TurnResult) -> list[str]:
    texts = [reply.text for reply in result.replies]
    texts += [option.label for reply in result.replies for option in reply.options]
    texts += [notice.text for notice in result.notices]
    texts += [result.toast or ""]
    return texts


def exchanges_after(database: CaseDatabase, last_id: int) -> list[tuple[int, str, str]]:
    with database.engine.connect() as connection:
        statement = (
            select(ExchangeRow.id, ExchangeRow.inbound_text, ExchangeRow.reply_text)
            .where(ExchangeRow.id > last_id)
            .order_by(ExchangeRow.id)
        )
        return [(row[0], row[1], row[2]) for row in connection.execute(statement)]


def last_exchange_id(database: CaseDatabase) -> int:
    rows = exchanges_after(database, 0)
    return rows[-1][0] if rows else 0


def dialog(database: CaseDatabase) -> DialogState | None:
    with database.unit_of_work(read_only=True) as uow:
        return uow.dialogs.load(KEY)


def put_dialog(database: CaseDatabase, state: DialogState) -> None:
    with database.unit_of_work() as uow, uow.dialogs.locked(KEY):
        uow.dialogs.delete(KEY)  # the previous example's dialog, whatever its version
        uow.dialogs.save(state)
        uow.commit()


def state_at(form_name: str, field: str) -> DialogState:
    engine = FormEngine(default_registry(), idle_timeout=at(2026, 5, 13) - NOW)
    result = engine.start(form_name, KEY, NOW)
    assert result.state is not None
    state = result.state
    for typed in TYPED[form_name]:
        if state.current_field == field:
            return state
        result = engine.step(state, typed, NOW)
        assert result.state is not None, (typed, result.replies)
        state = result.state
    raise AssertionError(f"{form_name}.{field} was never asked")


FIELDS = [(form.name, spec.name) for form in default_registry().all() for spec in form.fields]


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize(("form_name", "field"), FIELDS)
@PROPERTY_SETTINGS
@given(message=messages())
def test_any_answer_to_any_field_is_accepted_masked_or_asked_again(
    service: ConversationService,  # noqa: F811
    database: CaseDatabase,
    form_name: str,
    field: str,
    message: tuple[str | None, str],
) -> None:
    number, text = message
    start = state_at(form_name, field)
    put_dialog(database, start)
    before = dialog(database)
    assert before is not None
    seen = last_exchange_id(database)
    spec = default_registry()[form_name].field(field)

    result = turn(service, text, USER)

    shown = shown_texts(result)
    assert APOLOGY not in shown  # no exception inside the turn
    for piece in shown:
        assert_hidden(number, piece, "shown")
    for _, inbound, reply in exchanges_after(database, seen):
        assert_hidden(number, inbound, "exchanges.inbound_text")
        assert_hidden(number, reply, "exchanges.reply_text")
    after = dialog(database)
    if after is not None:
        for name, value in after.answers.items():
            if name != ID_FIELD:
                assert_hidden(number, str(value), f"dialog answer {name}")
        assert_hidden(number, str(after.scratch), "dialog scratch")
    accepted = after is not None and (
        after.current_field != before.current_field or after.phase != before.phase
    )
    assert result.replies and result.replies[-1].text
    if after is not None and not accepted and spec.prompt in result.replies[-1].text:
        # Asked again: the question is repeated, with the reason (or the help) before it.
        last = result.replies[-1].text
        assert not last.startswith("（") or len(result.replies) > 1, last


@PROPERTY_SETTINGS
@given(message=messages(), draw_command=st.booleans())
def test_free_text_to_the_conversation_never_stores_or_shows_an_id(
    service: ConversationService,  # noqa: F811
    database: CaseDatabase,
    message: tuple[str | None, str],
    draw_command: bool,
) -> None:
    number, text = message
    if draw_command:
        text = "/" + text.lstrip("/")  # an unknown command is free text too
    seen = last_exchange_id(database)
    result = turn(service, text, USER)
    shown = shown_texts(result)
    assert APOLOGY not in shown
    for piece in shown:
        assert_hidden(number, piece, "shown")
    for _, inbound, reply in exchanges_after(database, seen):
        assert_hidden(number, inbound, "exchanges.inbound_text")
        assert_hidden(number, reply, "exchanges.reply_text")
    assert result.replies and result.replies[-1].text
