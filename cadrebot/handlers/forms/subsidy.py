"""产业奖补申请 (信巩字〔2024〕1号 第5条): 脱贫户 and 监测户 apply for the industry award in
two rounds a year — 第一批 May 11–31, 第二批 Aug 11–31 ("5月、8月中下旬"). Outside a window
the application is kept as a pre-registration (预登记) for the next round.

Workflow::

    预登记 → 已申报 → 公示中 → 乡镇复核 → 县级核实 → 已拨付
    已申报 / 公示中 / 乡镇复核 / 县级核实 → 不予通过 (note required)

    预登记 → 已申报 only inside an application window (sets that round's dates);
    entering 公示中 sets 公示期满 = that day + 7
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from cadrebot.handlers.forms import common, policy
from cadrebot.handlers.forms.engine import FormSpec
from cadrebot.handlers.forms.fields import FieldKind, FieldSpec, TerminalAnswer
from cadrebot.handlers.forms.workflow import TransitionRule, Workflow, days_after
from cadrebot.handlers.ports import Case, JSONValue, NewCase

FORM_NAME = "subsidy"
CASE_TYPE = "subsidy"
NUMBER_PREFIX = "JB"
STATUS_APPLIED = "已申报"
STATUS_PREREGISTERED = "预登记"
DUE_COUNTY_CHECK = "县级核实"
DUE_PAYMENT = "资金拨付"
DUE_WINDOW_END = "申报截止"
DUE_PUBLICITY_END = "公示期满"
ROUND_FIELD = "round"  # added to the case fields: "2026年第一批"

ELIGIBLE_TYPES = ("脱贫户", "监测户")
INDUSTRY_TYPES = ("种植", "养殖", "庭院经济", "其他")
SCALE_UNITS = ("亩", "头", "只", "羽", "箱")


@dataclass(frozen=True)
class SubsidyRound:
    """One application round of one year, with the dates 信巩字〔2024〕1号 第5条 sets."""

    year: int
    batch: int  # 1 (May) or 2 (August)
    window_start: date
    window_end: date
    county_check_by: date  # 县农业农村局 on-site check, "6月、9月中旬"
    payment_by: date  # "6月底、9月底"

    @property
    def label(self) -> str:
        return f"{self.year}年第{'一' if self.batch == 1 else '二'}批"

    def window_text(self) -> str:
        return f"{self.window_start:%Y年%m月%d日}至{self.window_end:%m月%d日}"


def rounds_of(year: int) -> tuple[SubsidyRound, SubsidyRound]:
    return (
        SubsidyRound(year, 1, date(year, 5, 11), date(year, 5, 31), date(year, 6, 20),
                     date(year, 6, 30)),
        SubsidyRound(year, 2, date(year, 8, 11), date(year, 8, 31), date(year, 9, 20),
                     date(year, 9, 30)),
    )  # fmt: skip


def round_for(day: date) -> SubsidyRound | None:
    """The round whose application window contains ``day``; None outside both windows."""
    return next((r for r in rounds_of(day.year) if r.window_start <= day <= r.window_end), None)


def next_round(day: date) -> SubsidyRound:
    """The round open on ``day`` or, outside a window, the next one to open."""
    for candidate in (*rounds_of(day.year), *rounds_of(day.year + 1)):
        if day <= candidate.window_end:
            return candidate
    raise AssertionError("unreachable: next year's first round is always ahead")


INELIGIBLE_MESSAGE = (
    "很抱歉，产业奖补的申请对象是脱贫户和监测户，一般农户暂不在奖补范围内。\n"
    f"依据：{policy.SUBSIDY_RULE}\n"
    f"如果您家遇到了困难、存在返贫致贫风险，可以发送 /report 进行防返贫风险申报；"
    f"如有疑问请拨打{policy.HOTLINE}热线。"
)

FIELDS = (
    FieldSpec(
        name="household_type",
        label="户类型",
        prompt="产业奖补面向脱贫户和监测户。请问您家属于哪一类？",
        kind=FieldKind.CHOICE,
        choices=(*ELIGIBLE_TYPES, "一般农户"),
        help=policy.SUBSIDY_RULE,
        terminal=(TerminalAnswer(("一般农户",), INELIGIBLE_MESSAGE),),
    ),
    common.NAME,
    common.ID_NUMBER,
    common.MOBILE,
    common.TOWNSHIP,
    common.VILLAGE,
    FieldSpec(
        name="industry_type",
        label="产业类型",
        prompt="您申请奖补的是哪类产业？",
        kind=FieldKind.CHOICE,
        choices=INDUSTRY_TYPES,
    ),
    FieldSpec(
        name="product",
        label="具体品种",
        prompt="具体种养什么？例如：脐橙、蔬菜、生猪、鸡、蜜蜂。",
        kind=FieldKind.TEXT,
        max_length=30,
    ),
    FieldSpec(
        name="scale",
        label="规模",
        prompt="种养规模是多少？只填数字，单位下一步选择。",
        kind=FieldKind.NUMBER,
        min_value=0.01,
        max_value=1_000_000,
        decimals=2,
    ),
    FieldSpec(
        name="scale_unit",
        label="规模单位",
        prompt="规模的单位是？",
        kind=FieldKind.CHOICE,
        choices=SCALE_UNITS,
    ),
    FieldSpec(
        name="investment",
        label="预计投入",
        prompt="预计投入多少元？",
        kind=FieldKind.NUMBER,
        min_value=0,
        max_value=10_000_000,
        decimals=2,
        unit="元",
    ),
    FieldSpec(
        name="disaster",
        label="是否受灾",
        prompt="今年您的产业是否受过灾（如洪涝、干旱、疫病）？",
        kind=FieldKind.YES_NO,
    ),
)


def file_case(answers: Mapping[str, JSONValue], submitter_id: int, now: datetime) -> NewCase:
    today = now.date()
    open_round = round_for(today)
    if open_round is not None:
        status = STATUS_APPLIED
        target = open_round
        due = {DUE_COUNTY_CHECK: target.county_check_by, DUE_PAYMENT: target.payment_by}
    else:
        status = STATUS_PREREGISTERED
        target = next_round(today)
        due = {DUE_WINDOW_END: target.window_end}
    return NewCase(
        case_type=CASE_TYPE,
        number_prefix=NUMBER_PREFIX,
        status=status,
        fields={**answers, ROUND_FIELD: target.label},
        submitter_id=submitter_id,
        township=str(answers["township"]),
        village=str(answers["village"]),
        submitted_at=now,
        due_dates=due,
    )


def summary_note(answers: Mapping[str, JSONValue], now: datetime) -> str:
    today = now.date()
    open_round = round_for(today)
    if open_round is not None:
        return f"提交后将作为{open_round.label}奖补申请。"
    upcoming = next_round(today)
    return (
        f"现在不在申报期内（每年5月、8月的11日至31日），提交后先作预登记，"
        f"在{upcoming.label}申报期（{upcoming.window_text()}）内由干部确认转为正式申报。"
    )


def confirmation(case: Case) -> str:
    round_label = str(case.fields.get(ROUND_FIELD, ""))
    if case.status == STATUS_PREREGISTERED:
        window_end = case.due_dates.get(DUE_WINDOW_END)
        upcoming = next_round(window_end) if window_end else None
        window = f"（{upcoming.window_text()}）" if upcoming else ""
        return (
            f"已为您预登记产业奖补申请，编号：{case.number}。\n"
            f"现在不在申报期内。下一批为{round_label}，申报时间{window}，"
            "届时村干部会与您联系，确认后转为正式申报。\n"
            f"依据：{policy.SUBSIDY_RULE}\n"
            f"发送 /mycases 可查看进度；如有疑问请拨打{policy.HOTLINE}热线。"
        )
    check = case.due_dates.get(DUE_COUNTY_CHECK)
    pay = case.due_dates.get(DUE_PAYMENT)
    check_text = f"（{check:%m月%d日}前）" if check else ""
    pay_text = f"（{pay:%m月%d日}前）" if pay else ""
    return (
        f"您的产业奖补申请已提交（{round_label}），编号：{case.number}。\n"
        "接下来的流程：包片村干部、结对帮扶干部实地勘查 → 村委会公示7天 → 乡（镇）政府复核 → "
        f"县农业农村局按不低于20%比例实地核实{check_text} → 奖补资金拨付{pay_text}。\n"
        f"依据：{policy.XINFENG_2024}第5条。\n"
        f"发送 /mycases 可查看进度；如有疑问请拨打{policy.HOTLINE}热线。"
    )


def _subsidy_round_dates(day: date) -> Mapping[str, date]:
    open_round = round_for(day)
    if open_round is None:  # the guard refuses this; kept total for safety
        return {}
    return {DUE_COUNTY_CHECK: open_round.county_check_by, DUE_PAYMENT: open_round.payment_by}


def _inside_window(day: date) -> str | None:
    if round_for(day) is not None:
        return None
    upcoming = next_round(day)
    return (
        "现在不在产业奖补申报期内（每年5月、8月的11日至31日），预登记的申请要在申报期内"
        f"才能转为正式申报。下一批：{upcoming.label}，{upcoming.window_text()}。"
    )


_IN_PROGRESS = frozenset({STATUS_APPLIED, "公示中", "乡镇复核", "县级核实"})
WORKFLOW = Workflow(
    case_type=CASE_TYPE,
    title="产业奖补申请",
    rules=(
        TransitionRule(
            frozenset({STATUS_PREREGISTERED}),
            STATUS_APPLIED,
            sets_due=_subsidy_round_dates,
            guard=_inside_window,
        ),
        TransitionRule(
            frozenset({STATUS_APPLIED}),
            "公示中",
            sets_due=days_after(DUE_PUBLICITY_END, policy.SUBSIDY_PUBLICITY_DAYS),
        ),
        TransitionRule(frozenset({"公示中"}), "乡镇复核"),
        TransitionRule(frozenset({"乡镇复核"}), "县级核实"),
        TransitionRule(frozenset({"县级核实"}), "已拨付"),
        TransitionRule(_IN_PROGRESS, "不予通过", note_required=True),
    ),
    open_dues={
        STATUS_PREREGISTERED: frozenset({DUE_WINDOW_END}),
        STATUS_APPLIED: frozenset({DUE_COUNTY_CHECK}),
        "公示中": frozenset({DUE_PUBLICITY_END, DUE_COUNTY_CHECK}),
        "乡镇复核": frozenset({DUE_COUNTY_CHECK}),
        "县级核实": frozenset({DUE_COUNTY_CHECK, DUE_PAYMENT}),
    },
    due_basis={
        name: policy.SUBSIDY_RULE
        for name in (DUE_WINDOW_END, DUE_PUBLICITY_END, DUE_COUNTY_CHECK, DUE_PAYMENT)
    },
)


FORM = FormSpec(
    name=FORM_NAME,
    title="产业奖补申请",
    command="/subsidy",
    summary="产业奖补申请（脱贫户、监测户）",
    intro=(
        "脱贫户和监测户发展种植、养殖、庭院经济等产业，可以申请产业奖补。"
        "每年分两批申报：5月11日至31日、8月11日至31日。"
    ),
    fields=FIELDS,
    file_case=file_case,
    confirmation=confirmation,
    summary_note=summary_note,
    workflow=WORKFLOW,
    extra_field_labels={ROUND_FIELD: "申报批次"},
)
