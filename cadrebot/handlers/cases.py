"""The case desk: status workflows as data, who may see and move a case, deadlines, views.

Workflows
---------
risk_report (防返贫风险自主申报)::

    已受理 → 核实中 → 已纳入监测 → 帮扶中 → 风险消除 (basis required)
                    ↘ 不予纳入 (reason required)

    entering 已纳入监测 sets the 帮扶计划 due date = that day + 10 (赣党农字〔2023〕2号 第2条);
    帮扶中 (the help plan is made) closes it

subsidy (产业奖补申请, 信巩字〔2024〕1号 第5条)::

    预登记 → 已申报 → 公示中 → 乡镇复核 → 县级核实 → 已拨付
    已申报 / 公示中 / 乡镇复核 / 县级核实 → 不予通过 (note required)

    预登记 → 已申报 only inside an application window (sets that round's dates);
    entering 公示中 sets 公示期满 = that day + 7

Access: admins everything; cadres the cases of their jurisdiction (their 乡镇, and their
村 if they have one); farmers only their own cases, read-only. ID numbers are masked in
every view unless the viewer is an admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cadrebot.handlers.forms import policy, risk_report, subsidy
from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.ports import (
    Case,
    CaseEvent,
    CasePage,
    CaseQuery,
    CaseRepository,
    ConcurrentUpdateError,
    JSONValue,
    Role,
    User,
)

DUE_HELP_PLAN = "帮扶计划"
DUE_PUBLICITY_END = "公示期满"

DueRule = Callable[[date], Mapping[str, date]]
"""Due dates set when a case enters a status, from the transition day."""
Guard = Callable[[date], str | None]
"""A refusal reason (Chinese) if the transition is not allowed on that day, else None."""


class CaseError(Exception):
    """A refusal to show to the user; ``message`` is Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CaseNotFound(CaseError):
    pass


class PermissionDenied(CaseError):
    pass


class IllegalTransition(CaseError):
    def __init__(self, message: str, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class NoteRequired(CaseError):
    pass


@dataclass(frozen=True)
class TransitionRule:
    from_statuses: frozenset[str]
    to_status: str
    note_required: bool = False
    sets_due: DueRule | None = None
    guard: Guard | None = None


@dataclass(frozen=True)
class Workflow:
    case_type: str
    title: str
    rules: tuple[TransitionRule, ...]
    open_dues: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Which due dates still matter in each status (the others are done or not yet set)."""

    def allowed_from(self, status: str) -> list[str]:
        return [r.to_status for r in self.rules if status in r.from_statuses]

    def rule(self, from_status: str, to_status: str) -> TransitionRule | None:
        return next(
            (r for r in self.rules if from_status in r.from_statuses and r.to_status == to_status),
            None,
        )

    @property
    def statuses(self) -> list[str]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            for status in sorted(rule.from_statuses):
                seen.setdefault(status)
            seen.setdefault(rule.to_status)
        return list(seen)


def _days_after(name: str, days: int) -> DueRule:
    return lambda day: {name: day + timedelta(days=days)}


def _subsidy_round_dates(day: date) -> Mapping[str, date]:
    open_round = subsidy.round_for(day)
    if open_round is None:  # the guard refuses this; kept total for safety
        return {}
    return {
        subsidy.DUE_COUNTY_CHECK: open_round.county_check_by,
        subsidy.DUE_PAYMENT: open_round.payment_by,
    }


def _inside_window(day: date) -> str | None:
    if subsidy.round_for(day) is not None:
        return None
    upcoming = subsidy.next_round(day)
    return (
        "现在不在产业奖补申报期内（每年5月、8月的11日至31日），预登记的申请要在申报期内"
        f"才能转为正式申报。下一批：{upcoming.label}，{upcoming.window_text()}。"
    )


STATUS_HELPING = "帮扶中"  # 帮扶计划已制定，帮扶措施落实中

RISK_WORKFLOW = Workflow(
    case_type=risk_report.CASE_TYPE,
    title="防返贫风险申报",
    rules=(
        TransitionRule(frozenset({"已受理"}), "核实中"),
        TransitionRule(
            frozenset({"核实中"}),
            "已纳入监测",
            sets_due=_days_after(DUE_HELP_PLAN, policy.HELP_PLAN_DAYS),
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
        "已受理": frozenset({risk_report.DUE_IDENTIFICATION}),
        "核实中": frozenset({risk_report.DUE_IDENTIFICATION}),
        "已纳入监测": frozenset({DUE_HELP_PLAN}),
    },
)

_SUBSIDY_IN_PROGRESS = frozenset({"已申报", "公示中", "乡镇复核", "县级核实"})
SUBSIDY_WORKFLOW = Workflow(
    case_type=subsidy.CASE_TYPE,
    title="产业奖补申请",
    rules=(
        TransitionRule(
            frozenset({subsidy.STATUS_PREREGISTERED}),
            subsidy.STATUS_APPLIED,
            sets_due=_subsidy_round_dates,
            guard=_inside_window,
        ),
        TransitionRule(
            frozenset({subsidy.STATUS_APPLIED}),
            "公示中",
            sets_due=_days_after(DUE_PUBLICITY_END, policy.SUBSIDY_PUBLICITY_DAYS),
        ),
        TransitionRule(frozenset({"公示中"}), "乡镇复核"),
        TransitionRule(frozenset({"乡镇复核"}), "县级核实"),
        TransitionRule(frozenset({"县级核实"}), "已拨付"),
        TransitionRule(_SUBSIDY_IN_PROGRESS, "不予通过", note_required=True),
    ),
    open_dues={
        subsidy.STATUS_PREREGISTERED: frozenset({subsidy.DUE_WINDOW_END}),
        subsidy.STATUS_APPLIED: frozenset({subsidy.DUE_COUNTY_CHECK}),
        "公示中": frozenset({DUE_PUBLICITY_END, subsidy.DUE_COUNTY_CHECK}),
        "乡镇复核": frozenset({subsidy.DUE_COUNTY_CHECK}),
        "县级核实": frozenset({subsidy.DUE_COUNTY_CHECK, subsidy.DUE_PAYMENT}),
    },
)

WORKFLOWS: Mapping[str, Workflow] = {
    RISK_WORKFLOW.case_type: RISK_WORKFLOW,
    SUBSIDY_WORKFLOW.case_type: SUBSIDY_WORKFLOW,
}


# ---------------------------------------------------------------------- access


def in_jurisdiction(user: User, case: Case) -> bool:
    """A cadre's 乡镇 (and 村, if the cadre has one) contains the case."""
    if user.township is None or user.township != case.township:
        return False
    return user.village is None or user.village == case.village


def can_work(user: User, case: Case) -> bool:
    """May ``user`` change the case's status?"""
    if user.role is Role.ADMIN:
        return True
    return user.role is Role.CADRE and in_jurisdiction(user, case)


def can_view(user: User, case: Case) -> bool:
    return can_work(user, case) or case.submitter_id == user.id


def visible_query(user: User) -> CaseQuery:
    """The cases ``user`` may list (before any status filter)."""
    if user.role is Role.ADMIN:
        return CaseQuery()
    if user.role is Role.CADRE and user.township is not None:
        return CaseQuery(township=user.township, village=user.village)
    return CaseQuery(submitter_id=user.id)


# ---------------------------------------------------------------------- deadlines


@dataclass(frozen=True)
class DueItem:
    case: Case
    due_name: str
    due_on: date
    days_left: int  # negative when overdue


# ---------------------------------------------------------------------- the desk


class CaseDesk:
    """Case operations with permission checks and Chinese refusals (:class:`CaseError`)."""

    def __init__(
        self,
        cases: CaseRepository,
        forms: FormRegistry,
        workflows: Mapping[str, Workflow] = WORKFLOWS,
    ) -> None:
        self._cases = cases
        self._forms = forms
        self._workflows = workflows

    def get(self, viewer: User, number: str) -> Case:
        case = self._cases.get(number.strip().upper())
        # Same answer for "no such case" and "not yours": numbers must not be probeable.
        if case is None or not can_view(viewer, case):
            raise CaseNotFound(f"没有找到编号为 {number.strip()} 的案件，或您无权查看。")
        return case

    def transition(
        self, actor: User, number: str, to_status: str, *, now: datetime, note: str = ""
    ) -> Case:
        case = self.get(actor, number)
        if not can_work(actor, case):
            raise PermissionDenied("只有案件所在辖区的干部或管理员可以办理该案件。")
        workflow = self._workflows[case.case_type]
        to_status = to_status.strip()
        note = note.strip()
        rule = workflow.rule(case.status, to_status)
        if rule is None:
            allowed = workflow.allowed_from(case.status)
            options = "、".join(allowed) if allowed else "无（已办结）"
            raise IllegalTransition(
                f"案件 {case.number} 当前状态为“{case.status}”，不能改为“{to_status}”。"
                f"可以改为：{options}。",
                allowed,
            )
        if rule.note_required and not note:
            raise NoteRequired(f"改为“{to_status}”必须填写理由，请补充说明后再提交。")
        day = now.date()
        if rule.guard is not None:
            refusal = rule.guard(day)
            if refusal:
                raise CaseError(refusal)
        due = dict(rule.sets_due(day)) if rule.sets_due else None
        try:
            return self._cases.transition(
                case.number,
                expected_status=case.status,
                to_status=to_status,
                actor_id=actor.id,
                at=now,
                note=note,
                due_dates=due,
            )
        except ConcurrentUpdateError:
            raise CaseError(
                f"案件 {case.number} 刚刚被其他人更新过，请重新查看后再操作。"
            ) from None

    def list_for(
        self,
        viewer: User,
        *,
        statuses: frozenset[str] | None = None,
        case_type: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> CasePage:
        base = visible_query(viewer)
        query = CaseQuery(
            township=base.township,
            village=base.village,
            submitter_id=base.submitter_id,
            statuses=statuses,
            case_type=case_type,
        )
        return self._cases.list_cases(query, limit=limit, offset=offset)

    def due_soon(self, viewer: User, today: date, within_days: int) -> list[DueItem]:
        """Open deadlines from today up to ``within_days`` days ahead, soonest first."""
        items = self._open_due_items(viewer, today + timedelta(days=within_days + 1), today)
        return [i for i in items if i.due_on >= today]

    def overdue(self, viewer: User, today: date) -> list[DueItem]:
        """Open deadlines already passed, most overdue first."""
        return self._open_due_items(viewer, today, today)

    def _open_due_items(self, viewer: User, before: date, today: date) -> list[DueItem]:
        if viewer.role is Role.FARMER:
            return []
        base = visible_query(viewer)
        open_statuses = frozenset(s for w in self._workflows.values() for s in w.open_dues)
        names = frozenset(
            n for w in self._workflows.values() for v in w.open_dues.values() for n in v
        )
        query = CaseQuery(township=base.township, village=base.village, statuses=open_statuses)
        items: list[DueItem] = []
        for case in self._cases.due_before(query, before, due_names=names):
            workflow = self._workflows.get(case.case_type)
            if workflow is None:
                continue
            for name in sorted(workflow.open_dues.get(case.status, frozenset())):
                due_on = case.due_dates.get(name)
                if due_on is not None and due_on < before:
                    items.append(DueItem(case, name, due_on, (due_on - today).days))
        items.sort(key=lambda i: (i.due_on, i.case.number))
        return items

    def events(self, viewer: User, number: str) -> Sequence[CaseEvent]:
        case = self.get(viewer, number)
        return self._cases.events(case.number)

    # ------------------------------------------------------------------ views

    def render(
        self, case: Case, viewer: User, *, today: date, events: Sequence[CaseEvent] = ()
    ) -> str:
        """The case as text for ``viewer``; ID numbers masked unless the viewer is admin."""
        unmasked = viewer.role is Role.ADMIN
        workflow = self._workflows.get(case.case_type)
        title = workflow.title if workflow else case.case_type
        lines = [
            f"案件 {case.number}（{title}）",
            f"状态：{case.status}",
            f"地点：{case.township} {case.village}",
            f"提交时间：{case.submitted_at:%Y-%m-%d %H:%M}",
        ]
        still_open = workflow.open_dues.get(case.status, frozenset()) if workflow else frozenset()
        for name, due_on in sorted(case.due_dates.items(), key=lambda kv: kv[1]):
            hint = _due_hint(due_on, today) if name in still_open else ""
            lines.append(f"期限·{name}：{due_on.isoformat()}{hint}")
        lines.append("—— 申报内容 ——")
        lines.extend(self._field_lines(case, unmasked=unmasked))
        if events:
            lines.append("—— 办理记录 ——")
            for event in events:
                step = (
                    f"{event.from_status} → {event.to_status}"
                    if event.from_status
                    else f"提交（{event.to_status}）"
                )
                note = f"：{_mask(event.note, unmasked)}" if event.note else ""
                lines.append(f"{event.at:%Y-%m-%d %H:%M} {step}{note}")
        if workflow and can_work(viewer, case):
            allowed = workflow.allowed_from(case.status)
            if allowed:
                lines.append(f"可办理为：{'、'.join(allowed)}")
        return "\n".join(lines)

    def render_list(self, page: CasePage, *, offset: int = 0) -> str:
        if not page.items:
            return "没有找到案件。"
        lines = [f"共 {page.total} 件，第 {offset + 1}-{offset + len(page.items)} 件："]
        for case in page.items:
            workflow = self._workflows.get(case.case_type)
            title = workflow.title if workflow else case.case_type
            lines.append(
                f"{case.number} {title} {case.status} {case.township}{case.village} "
                f"{case.submitted_at:%Y-%m-%d}"
            )
        return "\n".join(lines)

    def render_due(self, items: Sequence[DueItem], *, heading: str) -> str:
        if not items:
            return f"{heading}：无。"
        lines = [f"{heading}："]
        for item in items:
            when = f"已逾期{-item.days_left}天" if item.days_left < 0 else f"剩{item.days_left}天"
            lines.append(
                f"{item.case.number} {item.case.status} {item.due_name} "
                f"{item.due_on.isoformat()}（{when}）{item.case.township}{item.case.village}"
            )
        return "\n".join(lines)

    def _field_lines(self, case: Case, *, unmasked: bool) -> list[str]:
        form = self._forms.get(case.case_type)
        lines: list[str] = []
        shown: set[str] = set()
        if form is not None:
            for spec in form.fields:
                if spec.name in case.fields:
                    value = spec.display(case.fields[spec.name], mask=not unmasked)
                    lines.append(f"{spec.label}：{_mask(value, unmasked)}")
                    shown.add(spec.name)
        for name, raw in case.fields.items():  # derived fields (e.g. 申报批次)
            if name not in shown:
                label = "申报批次" if name == subsidy.ROUND_FIELD else name
                lines.append(f"{label}：{_mask(_plain(raw), unmasked)}")
        return lines


def _mask(text: str, unmasked: bool) -> str:
    return text if unmasked else mask_sensitive(text, mask_phones=False)


def _plain(value: JSONValue) -> str:
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return "（未填）" if value is None else str(value)


def _due_hint(due_on: date, today: date) -> str:
    days = (due_on - today).days
    if days < 0:
        return f"（已逾期{-days}天）"
    if days == 0:
        return "（今天到期）"
    return f"（剩{days}天）"
