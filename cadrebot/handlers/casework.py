"""The cadre case desk for chat channels: paged lists, case views with the allowed next steps,
transitions that tell the farmer, due-date digests and the Excel ledger.

Channel-free and synchronous like the conversation service; a channel turns
:class:`CaseListView` / :class:`CaseView` into buttons and sends :class:`Notice`\\ s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cadrebot.handlers.cases import WORKFLOWS, CaseDesk, CaseError, Workflow, can_work
from cadrebot.handlers.export import cases_workbook
from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.invites import CADRE_ONLY, is_staff
from cadrebot.handlers.ports import (
    Case,
    OfficeUnitOfWork,
    OfficeUnitOfWorkFactory,
    Role,
    User,
)

PAGE_SIZE = 5
EXPORT_BATCH = 500


@dataclass(frozen=True)
class Notice:
    """A message to send to someone other than the person acting (e.g. the farmer)."""

    user: User
    text: str


@dataclass(frozen=True)
class CaseListView:
    text: str
    numbers: tuple[str, ...] = ()  # the cases on this page, for buttons
    offset: int = 0
    total: int = 0
    page_size: int = PAGE_SIZE
    status: str = ""  # the status filter ("" = all)

    @property
    def has_previous(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + self.page_size < self.total


@dataclass(frozen=True)
class NextStep:
    to_status: str
    note_required: bool


@dataclass(frozen=True)
class CaseView:
    text: str
    number: str = ""
    steps: tuple[NextStep, ...] = ()  # what the viewer may change the status to


@dataclass(frozen=True)
class TransitionOutcome:
    ok: bool
    text: str
    view: CaseView | None = None  # the case after the change
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class ExportFile:
    file_name: str
    data: bytes
    count: int


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


class CaseWork:
    def __init__(
        self,
        uow_factory: OfficeUnitOfWorkFactory,
        forms: FormRegistry,
        *,
        clock: Callable[[], datetime],
        due_soon_days: int = 3,
        workflows: Mapping[str, Workflow] = WORKFLOWS,
    ) -> None:
        self._uow_factory = uow_factory
        self._forms = forms
        self._clock = clock
        self._due_soon_days = due_soon_days
        self._workflows = workflows

    def _desk(self, uow: OfficeUnitOfWork) -> CaseDesk:
        return CaseDesk(uow.cases, self._forms, self._workflows)

    def statuses(self) -> list[str]:
        seen: dict[str, None] = {}
        for workflow in self._workflows.values():
            for status in workflow.statuses:
                seen.setdefault(status)
        return list(seen)

    # ------------------------------------------------------------------ lists

    def list_cases(self, viewer: User, status: str = "", offset: int = 0) -> CaseListView:
        if not is_staff(viewer):
            return CaseListView(CADRE_ONLY)
        status = status.strip()
        known = self.statuses()
        if status and status not in known:
            return CaseListView(f"没有“{status}”这个状态。可选：{'、'.join(known)}。")
        offset = max(0, offset)
        with self._uow_factory() as uow:
            desk = self._desk(uow)
            statuses = frozenset({status}) if status else None
            page = desk.list_for(viewer, statuses=statuses, limit=PAGE_SIZE, offset=offset)
            if not page.items and offset and page.total:
                offset = max(0, (page.total - 1) // PAGE_SIZE * PAGE_SIZE)
                page = desk.list_for(viewer, statuses=statuses, limit=PAGE_SIZE, offset=offset)
            text = desk.render_list(page, offset=offset)
        heading = f"【{status}】" if status else "【全部案件】"
        if viewer.role is Role.CADRE:
            heading += f" 辖区：{viewer.township or ''}{viewer.village or ''}"
        return CaseListView(
            f"{heading}\n{text}",
            numbers=tuple(c.number for c in page.items),
            offset=offset,
            total=page.total,
            status=status,
        )

    def due_digest(self, viewer: User) -> str:
        if not is_staff(viewer):
            return CADRE_ONLY
        today = self._clock().date()
        with self._uow_factory() as uow:
            desk = self._desk(uow)
            overdue = desk.overdue(viewer, today)
            soon = desk.due_soon(viewer, today, self._due_soon_days)
            return "\n\n".join(
                (
                    desk.render_due(overdue, heading="已逾期"),
                    desk.render_due(soon, heading=f"{self._due_soon_days}天内到期"),
                )
            )

    def daily_digests(self, channel: str) -> list[Digest]:
        """For every cadre and admin on ``channel``: what is overdue or due soon."""
        today = self._clock().date()
        digests: list[Digest] = []
        with self._uow_factory() as uow:
            desk = self._desk(uow)
            staff = uow.users.list_users(roles=frozenset({Role.CADRE, Role.ADMIN}), channel=channel)
            for user in staff:
                if user.role is Role.CADRE and user.township is None:
                    continue
                overdue = desk.overdue(user, today)
                soon = desk.due_soon(user, today, self._due_soon_days)
                if not overdue and not soon:
                    digests.append(Digest(user, ""))
                    continue
                text = "\n\n".join(
                    (
                        f"每日提醒（{today.isoformat()}）：",
                        desk.render_due(overdue, heading="已逾期"),
                        desk.render_due(soon, heading=f"{self._due_soon_days}天内到期"),
                        "发送 /case 编号 办理，/overdue 随时查看。",
                    )
                )
                digests.append(Digest(user, text, len(overdue) + len(soon)))
        return digests

    # ------------------------------------------------------------------ one case

    def show(self, viewer: User, number: str) -> CaseView:
        number = number.strip().split()[0] if number.strip() else ""
        if not number:
            return CaseView("请在命令后写上案件编号，例如：/case FX-2026-000001")
        with self._uow_factory() as uow:
            return self._view(uow, viewer, number)

    def _view(self, uow: OfficeUnitOfWork, viewer: User, number: str) -> CaseView:
        desk = self._desk(uow)
        try:
            case = desk.get(viewer, number)
            events = desk.events(viewer, number)
        except CaseError as refusal:
            return CaseView(refusal.message)
        text = desk.render(case, viewer, today=self._clock().date(), events=events)
        steps: list[NextStep] = []
        workflow = self._workflows.get(case.case_type)
        if workflow is not None and can_work(viewer, case):
            for to_status in workflow.allowed_from(case.status):
                rule = workflow.rule(case.status, to_status)
                steps.append(NextStep(to_status, bool(rule and rule.note_required)))
        return CaseView(text, case.number, tuple(steps))

    def transition(
        self, actor: User, number: str, to_status: str, note: str = ""
    ) -> TransitionOutcome:
        if not is_staff(actor):
            return TransitionOutcome(False, CADRE_ONLY)
        now = self._clock()
        with self._uow_factory() as uow:
            desk = self._desk(uow)
            try:
                case = desk.transition(actor, number, to_status, now=now, note=note)
            except CaseError as refusal:
                return TransitionOutcome(False, refusal.message)
            submitter = uow.users.get(case.submitter_id)
            uow.commit()
            view = self._view(uow, actor, case.number)
        workflow = self._workflows.get(case.case_type)
        title = workflow.title if workflow else "申报"
        notices: tuple[Notice, ...] = ()
        if submitter is not None and submitter.id != actor.id:
            notices = (Notice(submitter, status_update_text(case, title, note.strip())),)
        due = "".join(
            f"\n{name}期限：{day.isoformat()}" for name, day in sorted(case.due_dates.items())
        )
        return TransitionOutcome(
            True, f"案件 {case.number} 已改为“{case.status}”。{due}", view, notices
        )

    def needs_note(self, actor: User, number: str, to_status: str) -> bool:
        """Whether moving the case to ``to_status`` requires a reason (asked before acting)."""
        with self._uow_factory() as uow:
            try:
                case = self._desk(uow).get(actor, number)
            except CaseError:
                return False
        workflow = self._workflows.get(case.case_type)
        rule = workflow.rule(case.status, to_status) if workflow else None
        return bool(rule and rule.note_required)

    # ------------------------------------------------------------------ export

    def export(self, viewer: User) -> ExportFile | str:
        """The viewer's cases as an .xlsx ledger, or a refusal text."""
        if not is_staff(viewer):
            return CADRE_ONLY
        cases: list[Case] = []
        with self._uow_factory() as uow:
            desk = self._desk(uow)
            while True:
                page = desk.list_for(viewer, limit=EXPORT_BATCH, offset=len(cases))
                cases.extend(page.items)
                if not page.items or len(cases) >= page.total:
                    break
        data = cases_workbook(
            cases, self._forms, unmasked=viewer.role is Role.ADMIN, workflows=self._workflows
        )
        today = self._clock().date()
        place = (
            "全部"
            if viewer.role is Role.ADMIN
            else f"{viewer.township or ''}{viewer.village or ''}"
        )
        return ExportFile(f"案件台账-{place}-{today:%Y%m%d}.xlsx", data, len(cases))
