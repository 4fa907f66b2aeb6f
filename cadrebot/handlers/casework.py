"""The case desk: farmers follow their cases; cadres list, open and move the cases of their
jurisdiction, see what is due, export the ledger; the farmer is told of every status change.

One desk for every channel. Its commands run inside the turn's unit of work; views come back
as replies whose actions (open a case, page, change the status) are commands themselves, so
a button and a typed command do the same thing. Access rules, workflows and deadlines are in
:mod:`cadrebot.handlers.cases`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cadrebot.handlers.cases import (
    CaseError,
    CaseNotFound,
    DueItem,
    IllegalTransition,
    NoteRequired,
    PermissionDenied,
    can_view,
    can_work,
    visible_query,
    workflows_of,
)
from cadrebot.handlers.commands import ADMINS, STAFF, Command, CommandCall
from cadrebot.handlers.export import cases_workbook
from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.masking import mask_sensitive, quotable
from cadrebot.handlers.places import PlaceRegister, township_refusal
from cadrebot.handlers.ports import (
    Action,
    ActionKind,
    Case,
    CaseEvent,
    CasePage,
    CaseQuery,
    CaseRepository,
    ConcurrentUpdateError,
    JSONValue,
    NotFoundError,
    OfficeUnitOfWork,
    Reply,
    Role,
    User,
)
from cadrebot.handlers.turns import Notice, OutgoingFile

PAGE_SIZE = 5
EXPORT_BATCH = 500
SETSTATUS_USAGE = "用法：/setstatus 编号 新状态 [理由]，如：/setstatus FX-2026-000001 核实中"
_NOTE_PROMPT = "请填写将案件 {number} 改为“{status}”的理由（直接回复本消息）："
_NOTE_PROMPT_PATTERN = re.compile(r"请填写将案件 (\S+) 改为“(.+?)”的理由")
_OFFSET = re.compile(r"\+(\d{1,7})")
UNASSIGNED = "未分配"
"""``/cases 未分配``: the admins' queue of cases whose township the register did not know."""
ASSIGN_USAGE = "用法：/assign 编号 乡镇 [村]，如：/assign FX-2026-000001 潭东镇 龙井村"


@dataclass(frozen=True)
class Digest:
    """A cadre's daily reminder (``text`` is empty when nothing is due)."""

    user: User
    text: str
    count: int = 0


def status_update_text(case: Case, title: str, note: str) -> str:
    """What the farmer is told when their case changes status."""
    reason = f"\n说明：{note}" if note else ""
    return (
        f"您的{title}（编号 {case.number}）办理状态已更新为：{case.status}。{reason}\n"
        f"发送 /mycases {case.number} 查看详情；如有疑问请联系村（社区）干部。"
    )


class CaseDesk:
    def __init__(
        self,
        forms: FormRegistry,
        *,
        clock: Callable[[], datetime],
        due_soon_days: int = 3,
        places: PlaceRegister | None = None,
    ) -> None:
        self._places = places or PlaceRegister()
        self._forms = forms
        self._workflows = workflows_of(forms)
        self._clock = clock
        self._due_soon_days = due_soon_days

    def commands(self) -> list[Command]:
        return [
            Command("mycases", "查看我的申报和办理进度", self._my_cases, usage="[编号]", menu=True),
            Command("case", "查看案件和可办理的操作", self._show, usage="编号"),
            Command("cases", "辖区案件（可翻页、点按钮办理）", self._list, STAFF, usage="[状态]"),
            Command("overdue", "即将到期和已逾期事项", self._overdue, STAFF),
            Command("setstatus", "办理案件", self._set_status, STAFF, usage="编号 新状态 [理由]"),
            Command("export", "导出案件台账（Excel）", self._export, STAFF),
            Command(
                "assign", "把未分配的案件分到乡镇", self._assign, ADMINS, usage="编号 乡镇 [村]"
            ),
        ]

    def statuses(self) -> list[str]:
        seen: dict[str, None] = {}
        for workflow in self._workflows.values():
            for status in workflow.statuses:
                seen.setdefault(status)
        return list(seen)

    # ------------------------------------------------------------------ commands

    def _my_cases(self, call: CommandCall) -> None:
        if call.argument.strip():
            self._show(call)
            return
        user, cases = call.user, call.uow.cases
        page = self.list_for(cases, user, limit=10)
        if user.role is Role.FARMER:
            if not page.items:
                call.out.say("您还没有提交过申报。发送 /report 或 /subsidy 开始申报。")
                return
            call.out.say(self.render_list(page) + "\n发送 /mycases 编号 查看详情。")
            return
        today = call.now.date()
        call.out.say(self.render_list(page), *self._due_texts(cases, user, today))

    def _show(self, call: CommandCall) -> None:
        argument = call.argument.strip()
        number = argument.split()[0] if argument else ""
        if not number:
            call.out.say("请在命令后写上案件编号，例如：/case FX-2026-000001")
            return
        call.out.say(self._view(call.uow.cases, call.user, number, call.now.date()))

    def _list(self, call: CommandCall) -> None:
        words = call.argument.split()
        offsets = [w for w in words if _OFFSET.fullmatch(w)]
        status = " ".join(w for w in words if w not in offsets)
        offset = int(offsets[-1][1:]) if offsets else 0
        unassigned = status == UNASSIGNED
        if unassigned and call.user.role is not Role.ADMIN:
            call.out.say("未分配的案件由管理员分到乡镇后，才会出现在干部的案件列表中。")
            return
        known = self.statuses()
        if status and status not in known and not unassigned:
            named = f"“{status}”这个" if quotable(status) else "这样的"
            call.out.say(f"没有{named}状态。可选：{'、'.join(known)}。")
            return
        statuses = frozenset({status}) if status and not unassigned else None
        cases, user = call.uow.cases, call.user

        def fetch(at: int) -> CasePage:
            if unassigned:
                return cases.list_cases(CaseQuery(unassigned=True), limit=PAGE_SIZE, offset=at)
            return self.list_for(cases, user, statuses=statuses, limit=PAGE_SIZE, offset=at)

        page = fetch(offset)
        if not page.items and offset and page.total:
            offset = max(0, (page.total - 1) // PAGE_SIZE * PAGE_SIZE)
            page = fetch(offset)
        heading = f"【{status}】" if status else "【全部案件】"
        if unassigned:
            heading += " 乡镇不在地名册中，请用 /assign 编号 乡镇 [村] 分到乡镇"
        if user.role is Role.CADRE:
            heading += f" 辖区：{user.township or ''}{user.village or ''}"
            if user.township_id is None:
                heading += "（辖区未登记在地名册中，请联系管理员重新发放邀请码）"
        elif user.role is Role.ADMIN and not status:
            waiting = cases.list_cases(CaseQuery(unassigned=True), limit=1).total
            if waiting:
                heading += f"\n另有 {waiting} 件未分配乡镇，发送 /cases {UNASSIGNED} 查看。"
        actions = [Action(f"查看 {c.number}", f"/case {c.number}") for c in page.items]
        prefix = f"/cases {status} " if status else "/cases "
        if offset > 0:
            actions.append(Action("◀ 上一页", f"{prefix}+{max(0, offset - PAGE_SIZE)}"))
        if offset + PAGE_SIZE < page.total:
            actions.append(Action("下一页 ▶", f"{prefix}+{offset + PAGE_SIZE}"))
        text = f"{heading}\n{self.render_list(page, offset=offset)}"
        call.out.say(Reply(text, actions=tuple(actions), replaces_origin=call.via_button))

    def _overdue(self, call: CommandCall) -> None:
        call.out.say("\n\n".join(self._due_texts(call.uow.cases, call.user, call.now.date())))

    def _set_status(self, call: CommandCall) -> None:
        parts = call.argument.split(maxsplit=2)
        if len(parts) < 2:
            call.out.say(SETSTATUS_USAGE)
            return
        number, to_status = parts[0], parts[1]
        # A note is free text that goes to the farmer and into the history: stored masked.
        note = mask_sensitive(parts[2]) if len(parts) > 2 else ""
        uow, actor = call.uow, call.user
        try:
            case = self.transition(uow.cases, actor, number, to_status, now=call.now, note=note)
        except NoteRequired as refusal:
            if call.via_button:  # ask for the reason; the answer comes back as a reply
                prompt = _NOTE_PROMPT.format(number=number.strip().upper(), status=to_status)
                call.out.say(Reply(prompt, expects_reply=True))
            else:
                call.out.say(refusal.message)
            return
        except CaseError as refusal:
            call.out.say(refusal.message)
            return
        if call.via_button:
            call.out.say(self._view(uow.cases, actor, case.number, call.now.date(), origin=True))
        due = "".join(
            f"\n{name}期限：{day.isoformat()}" for name, day in sorted(case.due_dates.items())
        )
        call.out.say(f"案件 {case.number} 已改为“{case.status}”。{due}")
        submitter = uow.users.get(case.submitter_id)
        if submitter is not None and submitter.id != actor.id:
            title = self._title(case.case_type)
            call.out.notices.append(
                Notice(submitter, status_update_text(case, title, note.strip()))
            )

    def _export(self, call: CommandCall) -> None:
        viewer = call.user
        cases: list[Case] = []
        while True:
            page = self.list_for(call.uow.cases, viewer, limit=EXPORT_BATCH, offset=len(cases))
            cases.extend(page.items)
            if not page.items or len(cases) >= page.total:
                break
        admin = viewer.role is Role.ADMIN
        data = cases_workbook(cases, self._forms, unmasked=admin)
        place = "全部" if admin else f"{viewer.township or ''}{viewer.village or ''}"
        caption = f"案件台账：共 {len(cases)} 件。" + ("" if admin else "身份证号已脱敏。")
        name = f"案件台账-{place}-{call.now.date():%Y%m%d}.xlsx"
        call.out.files.append(OutgoingFile(name, data, caption))

    def _assign(self, call: CommandCall) -> None:
        parts = call.argument.split()
        if len(parts) not in (2, 3):
            call.out.say(ASSIGN_USAGE)
            return
        number, township = parts[0].upper(), parts[1]
        village = parts[2] if len(parts) == 3 else None
        place = self._places.resolve(township, village)
        if place is None:
            call.out.say(township_refusal(self._places, township)[0] + "\n" + ASSIGN_USAGE)
            return
        case = call.uow.cases.get(number)
        if case is None:
            call.out.say(f"没有找到编号为 {mask_sensitive(number)} 的案件。")
            return
        try:
            case = call.uow.cases.assign(
                case.number,
                township=place.township,
                township_id=place.township_id,
                village=place.village if place.village is not None else case.village,
                village_id=place.village_id,
                actor_id=call.user.id,
                at=call.now,
            )
        except NotFoundError:
            call.out.say(f"没有找到编号为 {mask_sensitive(number)} 的案件。")
            return
        call.out.say(
            Reply(
                f"案件 {case.number} 已分配至{case.township}{case.village}，"
                "该辖区的干部现在可以查看和办理。",
                actions=(Action(f"查看 {case.number}", f"/case {case.number}"),),
            )
        )

    @staticmethod
    def note_reply(replying_to: str, text: str) -> str | None:
        """The command a reply to the "请填写…理由" prompt stands for, else None."""
        target = _NOTE_PROMPT_PATTERN.search(replying_to)
        if target is None:
            return None
        return f"/setstatus {target[1]} {target[2]} {text}"

    # ------------------------------------------------------------------ digests

    def daily_digests(self, uow: OfficeUnitOfWork, channel: str) -> list[Digest]:
        """For every cadre and admin on ``channel``: what is overdue or due soon."""
        today = self._clock().date()
        digests: list[Digest] = []
        staff = uow.users.list_users(roles=STAFF, channel=channel)
        for user in staff:
            if user.role is Role.CADRE and user.township_id is None:
                continue
            overdue = self.overdue(uow.cases, user, today)
            soon = self.due_soon(uow.cases, user, today, self._due_soon_days)
            if not overdue and not soon:
                digests.append(Digest(user, ""))
                continue
            text = "\n\n".join(
                (
                    f"每日提醒（{today.isoformat()}）：",
                    self.render_due(overdue, heading="已逾期"),
                    self.render_due(soon, heading=f"{self._due_soon_days}天内到期"),
                    "发送 /case 编号 办理，/overdue 随时查看。",
                )
            )
            digests.append(Digest(user, text, len(overdue) + len(soon)))
        return digests

    # ------------------------------------------------------------------ operations

    def get(self, cases: CaseRepository, viewer: User, number: str) -> Case:
        case = cases.get(number.strip().upper())
        # Same answer for "no such case" and "not yours": numbers must not be probeable.
        if case is None or not can_view(viewer, case):
            # Masked: what was typed as a case number may be someone's ID number.
            raise CaseNotFound(
                f"没有找到编号为 {mask_sensitive(number.strip())} 的案件，或您无权查看。"
            )
        return case

    def transition(
        self,
        cases: CaseRepository,
        actor: User,
        number: str,
        to_status: str,
        *,
        now: datetime,
        note: str = "",
    ) -> Case:
        case = self.get(cases, actor, number)
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
            return cases.transition(
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
        cases: CaseRepository,
        viewer: User,
        *,
        statuses: frozenset[str] | None = None,
        case_type: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> CasePage:
        query = dataclasses.replace(visible_query(viewer), statuses=statuses, case_type=case_type)
        return cases.list_cases(query, limit=limit, offset=max(0, offset))

    def due_soon(
        self, cases: CaseRepository, viewer: User, today: date, within_days: int
    ) -> list[DueItem]:
        """Open deadlines from today up to ``within_days`` days ahead, soonest first."""
        items = self._open_due_items(cases, viewer, today + timedelta(days=within_days + 1), today)
        return [i for i in items if i.due_on >= today]

    def overdue(self, cases: CaseRepository, viewer: User, today: date) -> list[DueItem]:
        """Open deadlines already passed, most overdue first."""
        return self._open_due_items(cases, viewer, today, today)

    def _open_due_items(
        self, cases: CaseRepository, viewer: User, before: date, today: date
    ) -> list[DueItem]:
        if viewer.role is Role.FARMER:
            return []
        base = visible_query(viewer)
        open_statuses = frozenset(s for w in self._workflows.values() for s in w.open_dues)
        names = frozenset(
            n for w in self._workflows.values() for v in w.open_dues.values() for n in v
        )
        query = dataclasses.replace(base, statuses=open_statuses)
        items: list[DueItem] = []
        for case in cases.due_before(query, before, due_names=names):
            workflow = self._workflows.get(case.case_type)
            if workflow is None:
                continue
            for name in sorted(workflow.open_dues.get(case.status, frozenset())):
                due_on = case.due_dates.get(name)
                if due_on is not None and due_on < before:
                    items.append(DueItem(case, name, due_on, (due_on - today).days))
        items.sort(key=lambda i: (i.due_on, i.case.number))
        return items

    def events(self, cases: CaseRepository, viewer: User, number: str) -> Sequence[CaseEvent]:
        case = self.get(cases, viewer, number)
        return cases.events(case.number)

    # ------------------------------------------------------------------ views

    def _title(self, case_type: str) -> str:
        workflow = self._workflows.get(case_type)
        return workflow.title if workflow else case_type

    def _due_texts(self, cases: CaseRepository, user: User, today: date) -> tuple[str, str]:
        return (
            self.render_due(self.overdue(cases, user, today), heading="已逾期"),
            self.render_due(
                self.due_soon(cases, user, today, self._due_soon_days),
                heading=f"{self._due_soon_days}天内到期",
            ),
        )

    def _view(
        self, cases: CaseRepository, viewer: User, number: str, today: date, *, origin: bool = False
    ) -> Reply:
        """The case as a reply with a button for each status the viewer may move it to."""
        try:
            case = self.get(cases, viewer, number)
            events = cases.events(case.number)
        except CaseError as refusal:
            return Reply(refusal.message)
        text = self.render(case, viewer, today=today, events=events)
        actions: list[Action] = []
        workflow = self._workflows.get(case.case_type)
        if workflow is not None and can_work(viewer, case):
            for to_status in workflow.allowed_from(case.status):
                rule = workflow.rule(case.status, to_status)
                hint = "（需填理由）" if rule and rule.note_required else ""
                actions.append(
                    Action(
                        f"改为：{to_status}{hint}",
                        f"/setstatus {case.number} {to_status}",
                        ActionKind.STEP,
                    )
                )
        return Reply(text, actions=tuple(actions), replaces_origin=origin)

    def render(
        self, case: Case, viewer: User, *, today: date, events: Sequence[CaseEvent] = ()
    ) -> str:
        """The case as text for ``viewer``; ID numbers masked unless the viewer is admin."""
        unmasked = viewer.role is Role.ADMIN
        workflow = self._workflows.get(case.case_type)
        lines = [
            f"案件 {case.number}（{self._title(case.case_type)}）",
            f"状态：{case.status}",
            f"地点：{case.township} {case.village}"
            + ("（乡镇不在地名册中，待管理员分配）" if case.township_id is None else ""),
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
                note = f"：{staff_masked(event.note, unmasked)}" if event.note else ""
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
            lines.append(
                f"{case.number} {self._title(case.case_type)} {case.status} "
                f"{case.township}{case.village} {case.submitted_at:%Y-%m-%d}"
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
        extra_labels = form.extra_field_labels if form is not None else {}
        if form is not None:
            for spec in form.fields:
                if spec.name in case.fields:
                    value = spec.display(case.fields[spec.name], mask=not unmasked)
                    lines.append(f"{spec.label}：{staff_masked(value, unmasked)}")
                    shown.add(spec.name)
        for name, raw in case.fields.items():  # derived fields (e.g. 申报批次)
            if name not in shown:
                label = extra_labels.get(name, name)
                lines.append(f"{label}：{staff_masked(plain_value(raw), unmasked)}")
        return lines


def staff_masked(text: str, unmasked: bool) -> str:
    """``text`` as staff see it: ID numbers masked unless ``unmasked``; phone numbers shown,
    because cadres call the farmer to verify."""
    return text if unmasked else mask_sensitive(text, mask_phones=False)


def plain_value(value: JSONValue) -> str:
    """A form answer as one line of text (a list joined with 、; none as 未填)."""
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
