"""防返贫风险自主申报: a farmer reports a risk of falling back into poverty.

Grounded in 赣党农字〔2023〕2号 第1条 (identification within 15 days of the risk clue) and the
key risk groups of 信巩字〔2024〕1号 第1条 / 赣蓉振领字〔2023〕1号 第1条.

Workflow::

    已受理 → 核实中 → 已纳入监测 → 帮扶中 → 风险消除 (basis required)
                    ↘ 不予纳入 (reason required)

    entering 已纳入监测 sets the 帮扶计划 due date = that day + 10 (赣党农字〔2023〕2号 第2条);
    帮扶中 (the help plan is made) closes it
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from cadrebot.handlers.forms import common, policy
from cadrebot.handlers.forms.engine import FormSpec
from cadrebot.handlers.forms.fields import Condition, FieldKind, FieldSpec, TerminalAnswer
from cadrebot.handlers.forms.workflow import TransitionRule, Workflow, days_after
from cadrebot.handlers.ports import Case, JSONValue, NewCase

FORM_NAME = "risk_report"
CASE_TYPE = "risk_report"
NUMBER_PREFIX = "FX"
INITIAL_STATUS = "已受理"
STATUS_HELPING = "帮扶中"  # 帮扶计划已制定，帮扶措施落实中
DUE_IDENTIFICATION = "识别认定"
DUE_HELP_PLAN = "帮扶计划"

RISK_TYPES = (
    "因病",
    "因残",
    "因学",
    "因灾",
    "因意外",
    "务工就业不稳",
    "产业经营失败",
    "缺劳动力",
    "住房安全",
    "饮水安全",
    "收入骤减",
    "支出骤增",
    "其他",
)

NEXT_STEPS = "入户核实 → 评议公示 → 乡镇审核 → 县级审定"

FIELDS = (
    common.NAME,
    common.ID_NUMBER,
    common.MOBILE,
    common.TOWNSHIP,
    common.VILLAGE,
    FieldSpec(
        name="household_size",
        label="家庭人口",
        prompt="您家共有几口人？",
        kind=FieldKind.NUMBER,
        min_value=1,
        max_value=20,
        unit="人",
    ),
    FieldSpec(
        name="household_type",
        label="户类型",
        prompt="您家目前属于哪一类？",
        kind=FieldKind.CHOICE,
        choices=common.HOUSEHOLD_TYPES,
        help="不清楚的可以选“一般农户”，干部入户核实时会确认。一般农户也可以申报返贫致贫风险。",
    ),
    FieldSpec(
        name="risk_types",
        label="风险类型",
        prompt="您家遇到的主要风险是什么？（可多选）",
        kind=FieldKind.MULTI_CHOICE,
        choices=RISK_TYPES,
        help=(
            "重点关注支出骤增、收入骤降、重残重病、突发灾害（意外）等情况"
            "（信巩字〔2024〕1号第1条、赣蓉振领字〔2023〕1号第1条）。"
        ),
    ),
    FieldSpec(
        name="other_risk",
        label="其他风险",
        prompt="请简要说明“其他”是什么风险。",
        kind=FieldKind.TEXT,
        max_length=50,
        condition=Condition("risk_types", ("其他",)),
    ),
    FieldSpec(
        name="description",
        label="情况说明",
        prompt="请简要描述家里遇到的困难：什么时候发生、现在情况怎样、需要什么帮助。",
        kind=FieldKind.TEXT,
        max_length=500,
    ),
    FieldSpec(
        name="estimated_loss",
        label="预计增支或减收",
        prompt="预计因此增加的支出或减少的收入大约是多少元？",
        kind=FieldKind.NUMBER,
        min_value=0,
        max_value=10_000_000,
        decimals=2,
        unit="元",
        optional=True,
    ),
    FieldSpec(
        name="consent",
        label="同意核实",
        prompt=(
            "提交后，村干部将入户核实您家的收入、支出和“三保障”情况，并查询有关部门信息。"
            "您是否同意核实？"
        ),
        kind=FieldKind.YES_NO,
        help=policy.IDENTIFICATION_RULE,
        terminal=(
            TerminalAnswer(
                (False,),
                "好的，尊重您的选择。未经同意无法开展核实，本次申报没有提交。"
                f"如需帮助，可随时重新申报，或拨打{policy.HOTLINE}热线咨询。",
            ),
        ),
    ),
)


def file_case(answers: Mapping[str, JSONValue], submitter_id: int, now: datetime) -> NewCase:
    return NewCase(
        case_type=CASE_TYPE,
        number_prefix=NUMBER_PREFIX,
        status=INITIAL_STATUS,
        fields=dict(answers),
        submitter_id=submitter_id,
        township=str(answers["township"]),
        village=str(answers["village"]),
        submitted_at=now,
        due_dates={DUE_IDENTIFICATION: now.date() + timedelta(days=policy.IDENTIFICATION_DAYS)},
    )


def confirmation(case: Case) -> str:
    due = case.due_dates.get(DUE_IDENTIFICATION)
    due_text = f"，预计在{due:%Y年%m月%d日}前完成识别认定" if due else ""
    return (
        f"您的防返贫风险申报已受理，编号：{case.number}。\n"
        f"接下来的流程：{NEXT_STEPS}。\n"
        f"按照{policy.WORK_POINTS_2023}第1条，从发现风险线索之日起到完成识别认定"
        f"一般不超过{policy.IDENTIFICATION_DAYS}天{due_text}。\n"
        f"发送 /mycases 可查看办理进度；如有疑问请拨打{policy.HOTLINE}热线。"
    )


WORKFLOW = Workflow(
    case_type=CASE_TYPE,
    title="防返贫风险申报",
    rules=(
        TransitionRule(frozenset({INITIAL_STATUS}), "核实中"),
        TransitionRule(
            frozenset({"核实中"}),
            "已纳入监测",
            sets_due=days_after(DUE_HELP_PLAN, policy.HELP_PLAN_DAYS),
        ),
        TransitionRule(frozenset({"核实中"}), "不予纳入", note_required=True),
        # The help plan being made closes the 10-day deadline; without this status a
        # monitored household would show as overdue for as long as it is monitored.
        TransitionRule(frozenset({"已纳入监测"}), STATUS_HELPING),
        # 风险消除 needs its basis on record (赣党农字〔2023〕2号 第3条: income stable over
        # half a year, 三保障 and water secured, measures in effect).
        TransitionRule(frozenset({STATUS_HELPING}), "风险消除", note_required=True),
    ),
    open_dues={
        INITIAL_STATUS: frozenset({DUE_IDENTIFICATION}),
        "核实中": frozenset({DUE_IDENTIFICATION}),
        "已纳入监测": frozenset({DUE_HELP_PLAN}),
    },
    due_basis={
        DUE_IDENTIFICATION: policy.IDENTIFICATION_RULE,
        DUE_HELP_PLAN: policy.HELP_PLAN_RULE,
    },
)


FORM = FormSpec(
    name=FORM_NAME,
    title="防返贫风险自主申报",
    command="/report",
    summary="防返贫风险自主申报",
    intro=(
        "家里遇到因病、因灾、因意外、收入骤减或支出骤增等困难，有返贫致贫风险的，"
        "可以在这里自主申报，干部会尽快入户核实。大约需要3分钟。"
    ),
    fields=FIELDS,
    file_case=file_case,
    confirmation=confirmation,
    workflow=WORKFLOW,
)
