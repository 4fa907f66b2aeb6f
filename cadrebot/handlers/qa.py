"""Policy Q&A: the /ask, /more (更多出处) and /rate (👍/👎) commands, and the replies: the
answer with where it is written, and the further sources.

The answer itself comes from a :class:`~cadrebot.handlers.ports.PolicyAnswerer` (the
knowledge base's extractive composer); this module only renders it for the chat.
"""

from __future__ import annotations

from cadrebot.handlers.commands import Command, CommandCall
from cadrebot.handlers.followups import understood_in
from cadrebot.handlers.ports import (
    MAX_SUGGESTION_CHARS,
    Action,
    ActionKind,
    Citation,
    ConversationKey,
    ExchangeKind,
    Feedback,
    NotFoundError,
    PolicyAnswer,
    PolicyAnswerer,
)
from cadrebot.handlers.ports import NOT_FOUND_TEXT as NOT_FOUND_TEXT

NOT_FOUND_HINT = (
    "可以换个说法再问，或写明具体事项和地区（如“信丰县产业奖补”）；"
    "政策以当地乡村振兴部门解释为准，也可拨打12317咨询。"
)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


PARTIAL_HINT = "政策以当地乡村振兴部门解释为准，也可拨打12317咨询。"


def render_answer(answer: PolicyAnswer, max_sources: int = 1) -> str:
    """The chat reply: the fact first, then where it is written, short enough for a phone.

    A partial answer (not found, but the documents treat the topic) says what the documents
    do not give, then 相关规定：… with where that passage stands."""
    if not answer.found and not (answer.related and answer.citations):
        return f"{answer.answer}\n{NOT_FOUND_HINT}"
    lines = [answer.answer, ""]
    if answer.found:
        shown = answer.citations[: max(max_sources, answer.answer.count("【"))]
    else:
        shown = answer.citations[:1]
    for c in shown:
        lines.append(f"出处：{c.label()}")
        place = _scope(c)
        if place:
            lines.append(f"适用：{place}")
        if c.responsible:
            lines.append(f"责任单位：{_truncate(c.responsible, 80)}")
    if not answer.found:
        lines.append(PARTIAL_HINT)
    return "\n".join(lines).strip()


def _scope(citation: Citation) -> str:
    """Where a cited document applies; empty when its catalog entry does not say (a document
    uploaded without one)."""
    if citation.level == "省":
        return "省级文件"
    if citation.region and citation.level:
        return f"{citation.region}（{citation.level}级）文件"
    if citation.region or citation.level:
        return f"{citation.region or citation.level + '级'}文件"
    return ""


def render_more_sources(answer: PolicyAnswer) -> str:
    """The "更多出处" reply: further passages with their citations."""
    extra = answer.citations[1:]
    if not extra:
        return "没有更多出处了。"
    parts = []
    for n, c in enumerate(extra, 1):
        parts.append(f"{n}. {c.label()}\n{_truncate(c.text, 120)}")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- the feature

MORE_SOURCES = "更多出处"
QUESTION_KINDS = frozenset({ExchangeKind.QA, ExchangeKind.FORM_QA})
ASK_USAGE = "请在 /ask 后面写上您的问题，例如：/ask 监测对象识别认定要多少天？"
SOURCES_GONE = "这条回答的出处已无法查看，请重新提问。"
NO_ANSWER_YET = "还没有可以展开的回答。请先提一个政策问题。"
THANKS = "感谢您的反馈！"
CANNOT_RATE = "这条回答已无法评价。"
_RATINGS = {"up": Feedback.UP, "down": Feedback.DOWN}
_MAX_ID = 2**63 - 1  # what a database integer holds; a forged larger one names nothing
_MAX_COMMAND_BYTES = 60  # what a button carries (Telegram: 64 bytes with its "c:" prefix)


def _exchange_id(text: str) -> int | None:
    """The exchange a button names, or None for anything that cannot be one."""
    return int(text) if text.isdigit() and len(text) < 20 and int(text) <= _MAX_ID else None


def _more_action(exchange_id: int) -> Action:
    return Action(MORE_SOURCES, f"/more {exchange_id}", ActionKind.SOURCES)


def answer_actions(exchange_id: int) -> tuple[Action, ...]:
    """The buttons under a policy answer: rate it, or see more sources."""
    return (
        Action("👍 有帮助", f"/rate {exchange_id} up", ActionKind.FEEDBACK),
        Action("👎 没帮助", f"/rate {exchange_id} down", ActionKind.FEEDBACK),
        _more_action(exchange_id),
    )


def suggestion_actions(suggestions: tuple[str, ...]) -> tuple[Action, ...]:
    """A button for each suggested next question (追问): ``/ask <question>``. A question too
    long for a button's data is left out."""
    return tuple(
        Action(question, f"/ask {question}", ActionKind.NAVIGATE)
        for question in suggestions
        if len(question) <= MAX_SUGGESTION_CHARS
        and len(f"/ask {question}".encode()) <= _MAX_COMMAND_BYTES
    )


class PolicyQa:
    """The Q&A commands: /ask (also inside a form), /more (更多出处), /rate (👍/👎)."""

    def __init__(self, answerer: PolicyAnswerer) -> None:
        self._answerer = answerer

    def commands(self) -> list[Command]:
        return [
            Command(
                "ask",
                "查询政策（填写申报时也可以用）",
                self._ask,
                usage="问题",
                menu=True,
                reminds_form=False,
            ),
            Command("more", "上一个回答的更多出处", self._more, reminds_form=False),
            Command("rate", "评价回答", self._rate, listed=False, reminds_form=False),
        ]

    def _ask(self, call: CommandCall) -> None:
        question = call.argument.strip()
        if not question:
            call.out.say(ASK_USAGE)
            return
        assert call.question is not None
        call.question(question)

    def _more(self, call: CommandCall) -> None:
        argument = call.argument.strip()
        exchanges = call.uow.exchanges
        if argument.isdigit():
            exchange_id = _exchange_id(argument)
            logged = exchanges.get(exchange_id) if exchange_id is not None else None
            missing = SOURCES_GONE
        else:
            key = ConversationKey(call.channel, call.chat_id)
            logged = exchanges.latest(key, QUESTION_KINDS)
            missing = NO_ANSWER_YET
        if (
            logged is None
            or logged.exchange.channel != call.channel
            or logged.exchange.chat_id != call.chat_id
            or logged.exchange.kind not in QUESTION_KINDS
        ):
            call.out.say(missing)
            return
        # A follow-up's sources are those of the question it was understood as.
        question = (
            understood_in(logged.exchange.reply_text)
            or logged.exchange.inbound_text.removeprefix("/ask").strip()
        )
        call.out.say(render_more_sources(self._answerer.answer(question)))

    def _rate(self, call: CommandCall) -> None:
        parts = call.argument.split()
        rating = _RATINGS.get(parts[1]) if len(parts) == 2 else None
        exchange_id = _exchange_id(parts[0]) if rating is not None else None
        rated = (
            exchange_id is not None
            and rating is not None
            and self._rate_own(call, exchange_id, rating)
        )
        call.out.toast = THANKS if rated else CANNOT_RATE
        if rated and exchange_id is not None:
            call.out.origin_actions = (_more_action(exchange_id),)

    @staticmethod
    def _rate_own(call: CommandCall, exchange_id: int, rating: Feedback) -> bool:
        """Rate an answer given in this chat; False for any other exchange."""
        logged = call.uow.exchanges.get(exchange_id)
        if (
            logged is None
            or logged.exchange.channel != call.channel
            or logged.exchange.chat_id != call.chat_id
        ):
            return False
        try:
            call.uow.exchanges.set_feedback(exchange_id, rating)
        except NotFoundError:
            return False
        return True
