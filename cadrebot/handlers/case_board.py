"""The case board: the cadres' and admins' case desk and dashboard of the web console.

The chat case desk (:mod:`cadrebot.handlers.casework`) shows five cases at a time; the
board lists, filters, counts and exports whole jurisdictions, so everything that grows with
the number of cases (filtering, counting, paging, the weekly figures) runs in the database
(:class:`~cadrebot.handlers.ports.CaseBoardRepository`), never over rows loaded into Python.

Access is the case desk's: :func:`~cadrebot.handlers.cases.visible_query`, ``can_view`` and
``can_work``. A cadre sees the cases of their jurisdiction whatever filter they ask for (a
township filter outside it gives an empty list); a case outside it is *not found*, never
*forbidden*, so case numbers cannot be probed. Farmers have no board. Status changes go
through :meth:`CaseDesk.transition` (the workflow's rules, required notes, guards and due
dates), the same code as ``/setstatus``.

ID and phone numbers are masked in every view and export. An admin may ask to see a case or
an export unmasked (``reveal``); each such request is written to the audit log first.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol

from cadrebot.handlers.access import Refusal, require_admin, require_staff
from cadrebot.handlers.account_ports import AuditLog
from cadrebot.handlers.cases import can_work, visible_query, workflows_of
from cadrebot.handlers.casework import CaseDesk, plain_value, staff_masked, status_update_text
from cadrebot.handlers.commands import STAFF, DeskPage
from cadrebot.handlers.export import cases_workbook
from cadrebot.handlers.forms.engine import FormRegistry
from cadrebot.handlers.forms.fields import FieldKind
from cadrebot.handlers.masking import mask_sensitive
from cadrebot.handlers.outbox_ports import NoticeOutbox
from cadrebot.handlers.places import PlaceRegister
from cadrebot.handlers.ports import (
    Case,
    CaseBoardUnitOfWork,
    CaseEvent,
    CaseQuery,
    CaseSearch,
    DueEntry,
    DueWindow,
    OpenDue,
    Role,
    User,
)
from cadrebot.handlers.turns import Notice, OutgoingFile

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
TOP_DUE = 10  # cases in each of the dashboard's due lists
WEEKS = 12  # weeks in the dashboard's filed/closed chart
MAX_EXPORT = 20_000  # cases in one export: an .xlsx of more is slow to build and to open
EXPORT_BATCH = 500
MAX_NOTE = 500
MAX_SEARCH = 40
MAX_DUE_DAYS = 366
UNASSIGNED = "unassigned"
"""The township filter value of the admins' queue: cases the place register did not place."""

ID_REVEALED = "id_revealed"  # the audit action (the same as the accounts desk's)

SEARCH_LOOKS_PERSONAL = (
    "搜索内容中有身份证号或手机号，已忽略（不保存、不显示）。请按姓名或案件编号搜索。"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f]")


class BoardUnitOfWork(CaseBoardUnitOfWork, Protocol):
    @property
    def audit(self) -> AuditLog: ...

    @property
    def outbox(self) -> NoticeOutbox: ...


class BoardUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> BoardUnitOfWork: ...


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class CaseFilter:
    """What a list is narrowed to. Empty values mean "any"."""

    statuses: frozenset[str] = frozenset()
    case_type: str | None = None
    township_id: str | None = None  # a register id, or UNASSIGNED (admins)
    village_id: str | None = None
    overdue: bool = False
    due_within: int | None = None  # an open due date within this many days from today
    filed_from: date | None = None
    filed_to: date | None = None  # inclusive
    text: str = ""  # a case number or an applicant's name (part of either)

    def params(self) -> list[tuple[str, str]]:
        """The filter as query parameters (for links that keep it: paging, export)."""
        pairs = [("status", s) for s in sorted(self.statuses)]
        single = {
            "type": self.case_type,
            "township": self.township_id,
            "village": self.village_id,
            "overdue": "1" if self.overdue else None,
            "due_within": str(self.due_within) if self.due_within is not None else None,
            "from": self.filed_from.isoformat() if self.filed_from else None,
            "to": self.filed_to.isoformat() if self.filed_to else None,
            "q": self.text or None,
        }
        pairs += [(k, v) for k, v in single.items() if v]
        return pairs

    @property
    def is_empty(self) -> bool:
        return self == CaseFilter()


@dataclass(frozen=True)
class ParsedFilter:
    filter: CaseFilter
    problems: tuple[str, ...] = ()  # what was ignored, said politely


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class FilterChoices:
    """What the filter form offers this actor."""

    statuses: tuple[Choice, ...]
    case_types: tuple[Choice, ...]
    townships: tuple[Choice, ...]
    villages: tuple[Choice, ...]  # of the chosen (or the cadre's) township


def clean_text(text: str, limit: int) -> str:
    """``text`` as one line of plain text: NFKC, no control or invisible characters."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join(_CONTROL.sub("", text).split())[:limit]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DueView:
    name: str
    due_on: date
    open: bool  # still to be met in the case's current status
    days_left: int  # negative when overdue
    basis: str  # the policy text the date comes from ("" if none is known)

    @property
    def overdue(self) -> bool:
        return self.open and self.days_left < 0


@dataclass(frozen=True)
class CaseRow:
    """A case in a list: only what the list shows, masked."""

    number: str
    case_type: str
    title: str
    status: str
    township: str
    village: str
    unassigned: bool
    applicant: str
    submitted_at: datetime
    next_due: DueView | None  # the soonest open due date


@dataclass(frozen=True)
class CaseTable:
    rows: tuple[CaseRow, ...]
    total: int
    page: int
    per_page: int
    filter: CaseFilter

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str  # who did it (their display name), "系统" if nobody
    from_status: str | None  # None: the case was filed
    to_status: str
    note: str  # masked unless revealed


@dataclass(frozen=True)
class TransitionOption:
    to_status: str
    note_required: bool
    blocked: str | None = None  # why the workflow refuses it today (a guard), else None


@dataclass(frozen=True)
class CaseView:
    number: str
    case_type: str
    title: str
    status: str
    township: str
    village: str
    unassigned: bool
    submitted_at: datetime
    updated_at: datetime
    fields: tuple[tuple[str, str], ...]  # (label, value), ID numbers masked unless revealed
    dues: tuple[DueView, ...]  # soonest first
    timeline: tuple[TimelineEntry, ...]  # oldest first
    notes: tuple[TimelineEntry, ...]  # the entries with a note, newest first
    transitions: tuple[TransitionOption, ...]  # empty when the actor may not move it
    revealed: bool = False
    can_reveal: bool = False  # an admin may ask to see the ID number


@dataclass(frozen=True)
class Moved:
    """A status change made: the case, what to tell the actor, and the farmer's notice
    (None when the actor filed the case). The notice is in the outbox already, committed
    with the change; the channel the farmer is on delivers it (handlers/outbox_ports.py)."""

    case: Case
    message: str
    notice: Notice | None


@dataclass(frozen=True)
class StatusCount:
    case_type: str
    title: str
    status: str
    count: int
    closed: bool  # a final status


@dataclass(frozen=True)
class TownshipCount:
    township_id: str | None
    name: str
    count: int


@dataclass(frozen=True)
class DueCase:
    number: str
    title: str
    status: str
    township: str
    village: str
    due_name: str
    due_on: date
    days_left: int


@dataclass(frozen=True)
class WeekCount:
    start: date  # the Monday
    label: str  # ISO week, e.g. 2026-W49
    filed: int
    closed: int


@dataclass(frozen=True)
class Dashboard:
    today: date
    total: int
    by_status: tuple[StatusCount, ...]
    by_township: tuple[TownshipCount, ...]  # most cases first
    overdue: tuple[DueCase, ...]  # most overdue first (at most TOP_DUE)
    overdue_total: int
    due_soon: tuple[DueCase, ...]  # soonest first
    due_soon_total: int
    due_soon_days: int
    weeks: tuple[WeekCount, ...]  # oldest first
    counted_at: datetime | None = None  # when the figures were read (they may be cached)


# --------------------------------------------------------------------------- the board


class CaseBoard:
    def __init__(
        self,
        uow_factory: BoardUnitOfWorkFactory,
        forms: FormRegistry,
        *,
        places: PlaceRegister,
        clock: Callable[[], datetime],
        due_soon_days: int = 3,
        dashboard_ttl: timedelta = timedelta(seconds=30),
    ) -> None:
        self._uow = uow_factory
        # A dashboard is a summary read every few clicks by every cadre of a township, and
        # it is the board's costliest page (five aggregate queries). Its figures are kept
        # per jurisdiction for ``dashboard_ttl`` (the page says when they were counted); a
        # move made through this board clears them at once, other processes' after the TTL.
        self._dashboard_ttl = dashboard_ttl
        self._dashboards: dict[tuple[CaseQuery, date], Dashboard] = {}
        self._dashboards_lock = threading.Lock()
        self._forms = forms
        self._workflows = workflows_of(forms)
        self._places = places
        self._clock = clock
        self._due_soon_days = due_soon_days
        self._desk = CaseDesk(forms, clock=clock, due_soon_days=due_soon_days, places=places)
        self._open_dues = frozenset(
            OpenDue(w.case_type, status, name)
            for w in self._workflows.values()
            for status, names in w.open_dues.items()
            for name in names
        )
        # A final status: one the workflow leads to and never out of.
        self._closing = frozenset(
            (w.case_type, s)
            for w in self._workflows.values()
            for s in w.statuses
            if not w.allowed_from(s)
        )
        self._name_fields = tuple(
            dict.fromkeys(
                spec.name
                for form in forms.all()
                for spec in form.fields
                if spec.kind is FieldKind.PERSON_NAME
            )
        )

    def pages(self) -> list[DeskPage]:
        return [
            DeskPage("cases", "案件办理", "/cases", STAFF),
            DeskPage("dashboard", "统计看板", "/dashboard", STAFF),
        ]

    # ------------------------------------------------------------------ filters

    def statuses(self) -> list[str]:
        return self._desk.statuses()

    def choices(self, actor: User, chosen: CaseFilter | None = None) -> FilterChoices:
        require_staff(actor)
        chosen = chosen or CaseFilter()
        statuses = tuple(Choice(s, s) for s in self.statuses())
        types = tuple(Choice(w.case_type, w.title) for w in self._workflows.values())
        if actor.role is Role.ADMIN:
            townships = tuple(Choice(t.id, t.label) for t in self._places.townships())
            townships += (Choice(UNASSIGNED, "未分配乡镇"),)
            township = self._places.township(chosen.township_id)
        else:
            township = self._places.township(actor.township_id)
            townships = (Choice(township.id, township.label),) if township else ()
        villages: tuple[Choice, ...] = ()
        if township is not None:
            # A village cadre's own village only (none if it is not registered).
            village_cadre = actor.role is Role.CADRE and actor.village is not None
            villages = tuple(
                Choice(v.id, v.name)
                for v in township.villages
                if not village_cadre or v.id == actor.village_id
            )
        return FilterChoices(statuses, types, townships, villages)

    def parse_filter(self, params: Mapping[str, Sequence[str]]) -> ParsedFilter:
        """A filter from query parameters (as :meth:`CaseFilter.params` writes them).
        Unknown or malformed values are left out, with a polite word for each."""
        problems: list[str] = []

        def one(name: str) -> str:
            values = params.get(name) or ()
            return clean_text(values[-1], 100) if values else ""

        known = set(self.statuses())
        statuses = {clean_text(s, 40) for s in params.get("status", ()) if s.strip()}
        if statuses - known:
            problems.append("忽略了不存在的状态。")
        case_type = one("type") or None
        if case_type is not None and case_type not in self._workflows:
            problems.append("忽略了不存在的案件类型。")
            case_type = None
        township_id = one("township") or None
        if (
            township_id is not None
            and township_id != UNASSIGNED
            and self._places.township(township_id) is None
        ):
            problems.append("忽略了地名册中没有的乡镇。")
            township_id = None
        village_id = one("village") or None
        if village_id is not None:
            # A village stands for its township too; one outside the township asked is dropped.
            home = next(
                (
                    t
                    for t in self._places.townships()
                    if any(v.id == village_id for v in t.villages)
                ),
                None,
            )
            if home is None or township_id not in (None, home.id):
                problems.append("忽略了地名册中没有的村。")
                village_id = None
            else:
                township_id = home.id
        due_within: int | None = None
        raw_due = one("due_within")
        if raw_due:
            if raw_due.isdigit() and int(raw_due) <= MAX_DUE_DAYS:
                due_within = int(raw_due)
            else:
                problems.append(f"“到期天数”应为 0 到 {MAX_DUE_DAYS} 之间的整数，已忽略。")
        filed_from = _parse_date(one("from"), "提交日期（起）", problems)
        filed_to = _parse_date(one("to"), "提交日期（止）", problems)
        if filed_from and filed_to and filed_from > filed_to:
            problems.append("提交日期的起止颠倒了，已按先后对调。")
            filed_from, filed_to = filed_to, filed_from
        text = one("q")[:MAX_SEARCH]
        if text and mask_sensitive(text) != text:
            # Never kept, shown back or searched: it stays out of every link and page.
            problems.append(SEARCH_LOOKS_PERSONAL)
            text = ""
        return ParsedFilter(
            CaseFilter(
                statuses=frozenset(statuses & known),
                case_type=case_type,
                township_id=township_id,
                village_id=village_id,
                overdue=one("overdue") in {"1", "on", "true"},
                due_within=due_within,
                filed_from=filed_from,
                filed_to=filed_to,
                text=text,
            ),
            tuple(problems),
        )

    # ------------------------------------------------------------------ the list

    def search(
        self, actor: User, filters: CaseFilter, page: int = 1, per_page: int = DEFAULT_PER_PAGE
    ) -> CaseTable:
        require_staff(actor)
        per_page = min(max(per_page, 1), MAX_PER_PAGE)
        page = max(page, 1)
        search = self._search(actor, filters)
        if search is None:
            return CaseTable((), 0, 1, per_page, filters)
        today = self._clock().date()
        with self._uow(read_only=True) as uow:
            found = uow.cases.search(search, limit=per_page, offset=(page - 1) * per_page)
            if not found.items and found.total and page > 1:
                # Past the end (the list shrank, or a typed page number): the last page.
                page = math.ceil(found.total / per_page)
                found = uow.cases.search(search, limit=per_page, offset=(page - 1) * per_page)
        rows = tuple(self._row(case, today) for case in found.items)
        return CaseTable(rows, found.total, page, per_page, filters)

    def export(self, actor: User, filters: CaseFilter, *, reveal: bool = False) -> OutgoingFile:
        """The filtered list as the .xlsx ledger (the chat's ``/export`` workbook)."""
        require_staff(actor)
        if reveal:
            require_admin(actor)
        search = self._search(actor, filters)
        cases: list[Case] = []
        if search is not None:
            with self._uow(read_only=True) as uow:
                while True:
                    page = uow.cases.search(search, limit=EXPORT_BATCH, offset=len(cases))
                    if page.total > MAX_EXPORT:
                        raise Refusal(
                            f"符合条件的案件有 {page.total} 件，超过一次导出的上限 "
                            f"{MAX_EXPORT} 件。请缩小筛选范围（如按乡镇、状态或提交日期）后再导出。"
                        )
                    cases.extend(page.items)
                    if not page.items or len(cases) >= page.total:
                        break
        now = self._clock()
        if reveal:
            self._audit(actor, "export", f"{len(cases)} 件")
        data = cases_workbook(cases, self._forms, unmasked=reveal)
        place = (
            "全部" if actor.role is Role.ADMIN else f"{actor.township or ''}{actor.village or ''}"
        )
        caption = f"案件台账：共 {len(cases)} 件。" + ("" if reveal else "身份证号已脱敏。")
        return OutgoingFile(f"案件台账-{place}-{now:%Y%m%d}.xlsx", data, caption)

    # ------------------------------------------------------------------ one case

    def view(self, actor: User, number: str, *, reveal: bool = False) -> CaseView:
        require_staff(actor)
        if reveal:
            require_admin(actor)
        today = self._clock().date()
        with self._uow(read_only=True) as uow:
            case = self._desk.get(uow.cases, actor, clean_text(number, 40))
            events = uow.cases.events(case.number)
            names = {}
            for actor_id in {e.actor_id for e in events if e.actor_id is not None}:
                user = uow.users.get(actor_id)
                names[actor_id] = user.display_name if user else "（已删除的用户）"
        if reveal:
            self._audit(actor, case.number, "查看案件")
        workflow = self._workflows.get(case.case_type)
        timeline = tuple(self._entry(e, names, unmasked=reveal) for e in events)
        transitions: list[TransitionOption] = []
        if workflow is not None and can_work(actor, case):
            for to_status in workflow.allowed_from(case.status):
                rule = workflow.rule(case.status, to_status)
                assert rule is not None
                blocked = rule.guard(today) if rule.guard else None
                transitions.append(TransitionOption(to_status, rule.note_required, blocked))
        return CaseView(
            number=case.number,
            case_type=case.case_type,
            title=self._title(case.case_type),
            status=case.status,
            township=case.township,
            village=case.village,
            unassigned=case.township_id is None,
            submitted_at=case.submitted_at,
            updated_at=case.updated_at,
            fields=tuple(self._fields(case, unmasked=reveal)),
            dues=self._dues(case, today),
            timeline=timeline,
            notes=tuple(reversed([e for e in timeline if e.note])),
            transitions=tuple(transitions),
            revealed=reveal,
            can_reveal=actor.role is Role.ADMIN and not reveal,
        )

    def move(self, actor: User, number: str, to_status: str, note: str = "") -> Moved:
        """Change the case's status by the workflow's rules (:meth:`CaseDesk.transition`).

        The farmer's notice is queued in the outbox in the same transaction.

        Raises :class:`~cadrebot.handlers.access.NotFound` (not visible),
        :class:`PermissionDenied` (visible but not the actor's to work) and
        :class:`~cadrebot.handlers.access.Refusal` (the workflow refuses; nothing changed).
        """
        require_staff(actor)
        note = clean_note(note)
        now = self._clock()
        with self._uow() as uow:
            case = self._desk.transition(
                uow.cases,
                actor,
                clean_text(number, 40),
                clean_text(to_status, 40),
                now=now,
                note=note,
            )
            submitter = uow.users.get(case.submitter_id)
            notice = None
            if submitter is not None and submitter.id != actor.id:
                text = status_update_text(case, self._title(case.case_type), note)
                notice = Notice(submitter, text)
                # The web console cannot reach the farmer: the notice waits in the outbox,
                # committed with the change, for the farmer's channel to deliver.
                uow.outbox.add(submitter, text, now)
            uow.commit()
        with self._dashboards_lock:
            self._dashboards.clear()  # the counts moved
        due = "".join(
            f" {name}期限：{day.isoformat()}。" for name, day in sorted(case.due_dates.items())
        )
        return Moved(case, f"案件 {case.number} 已改为“{case.status}”。{due}", notice)

    # ------------------------------------------------------------------ dashboard

    def dashboard(self, actor: User, today: date | None = None) -> Dashboard:
        require_staff(actor)
        now = self._clock()
        today = today or now.date()
        key = (visible_query(actor), today)
        with self._dashboards_lock:
            kept = self._dashboards.get(key)
        if kept is not None and self._fresh(kept, now):
            return kept
        counted = dataclasses.replace(self._count_dashboard(key[0], today), counted_at=now)
        with self._dashboards_lock:
            if len(self._dashboards) > 1000:  # stale jurisdictions and days: start afresh
                self._dashboards.clear()
            self._dashboards[key] = counted
        return counted

    def _fresh(self, dashboard: Dashboard, now: datetime) -> bool:
        counted = dashboard.counted_at
        return counted is not None and timedelta(0) <= now - counted < self._dashboard_ttl

    def _count_dashboard(self, scope: CaseQuery, today: date) -> Dashboard:
        zone = self._clock().tzinfo
        search = CaseSearch(scope)
        monday = today - timedelta(days=today.weekday())
        starts = [monday - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS + 1)]
        bounds = [datetime.combine(day, time(), tzinfo=zone) for day in starts]
        overdue_window = DueWindow(self._open_dues, end=today)
        soon_window = DueWindow(
            self._open_dues, start=today, end=today + timedelta(days=self._due_soon_days + 1)
        )
        with self._uow(read_only=True) as uow:
            statuses = uow.cases.status_counts(search)
            # A cadre's jurisdiction is one township: its count is the total.
            townships = (
                uow.cases.township_counts(search)
                if search.scope.township_id is None
                else [(search.scope.township_id, sum(n for _, _, n in statuses))]
            )
            overdue, overdue_total = uow.cases.due_entries(search, overdue_window, limit=TOP_DUE)
            soon, soon_total = uow.cases.due_entries(search, soon_window, limit=TOP_DUE)
            filed, closed = uow.cases.weekly_counts(search, bounds, self._closing)
        weeks = tuple(
            WeekCount(day, f"{day.isocalendar().year}-W{day.isocalendar().week:02d}", f, c)
            for day, f, c in zip(starts, filed, closed, strict=False)
        )
        return Dashboard(
            today=today,
            total=sum(n for _, _, n in statuses),
            by_status=self._status_counts(statuses),
            by_township=tuple(
                sorted(
                    (self._township_count(t, n) for t, n in townships),
                    key=lambda c: (-c.count, c.name),
                )
            ),
            overdue=tuple(self._due_case(e, today) for e in overdue),
            overdue_total=overdue_total,
            due_soon=tuple(self._due_case(e, today) for e in soon),
            due_soon_total=soon_total,
            due_soon_days=self._due_soon_days,
            weeks=weeks,
        )

    # ------------------------------------------------------------------ helpers

    def _search(self, actor: User, filters: CaseFilter) -> CaseSearch | None:
        """The actor's scope narrowed by ``filters``; None when nothing can match (a cadre
        asking for a place outside their jurisdiction)."""
        scope = visible_query(actor)
        if filters.township_id == UNASSIGNED:
            if actor.role is not Role.ADMIN:
                return None
            scope = dataclasses.replace(scope, unassigned=True)
        elif filters.township_id is not None:
            if scope.township_id not in (None, filters.township_id):
                return None
            if scope.submitter_id is not None:  # a cadre with no registered jurisdiction
                return None
            scope = dataclasses.replace(scope, township_id=filters.township_id)
        if filters.village_id is not None:
            if scope.village_id not in (None, filters.village_id) or scope.unassigned:
                return None
            scope = dataclasses.replace(scope, village_id=filters.village_id)
        scope = dataclasses.replace(
            scope,
            statuses=filters.statuses or None,
            case_type=filters.case_type,
        )
        zone = self._clock().tzinfo
        today = self._clock().date()
        due: DueWindow | None = None
        if filters.overdue or filters.due_within is not None:
            end = today if filters.due_within is None else today + timedelta(filters.due_within + 1)
            start = None if filters.overdue else today
            due = DueWindow(self._open_dues, start=start, end=end)
        return CaseSearch(
            scope=scope,
            text=filters.text or None,
            name_fields=self._name_fields,
            filed_from=(
                datetime.combine(filters.filed_from, time(), tzinfo=zone)
                if filters.filed_from
                else None
            ),
            filed_before=(
                datetime.combine(filters.filed_to + timedelta(days=1), time(), tzinfo=zone)
                if filters.filed_to
                else None
            ),
            due=due,
        )

    def _title(self, case_type: str) -> str:
        workflow = self._workflows.get(case_type)
        return workflow.title if workflow else case_type

    def _dues(self, case: Case, today: date) -> tuple[DueView, ...]:
        workflow = self._workflows.get(case.case_type)
        still_open = workflow.open_dues.get(case.status, frozenset()) if workflow else frozenset()
        return tuple(
            DueView(
                name,
                due_on,
                name in still_open,
                (due_on - today).days,
                workflow.due_basis.get(name, "") if workflow else "",
            )
            for name, due_on in sorted(case.due_dates.items(), key=lambda kv: (kv[1], kv[0]))
        )

    def _row(self, case: Case, today: date) -> CaseRow:
        open_dues = [d for d in self._dues(case, today) if d.open]
        applicant = next(
            (plain_value(case.fields[f]) for f in self._name_fields if f in case.fields), ""
        )
        return CaseRow(
            number=case.number,
            case_type=case.case_type,
            title=self._title(case.case_type),
            status=case.status,
            township=case.township,
            village=case.village,
            unassigned=case.township_id is None,
            applicant=mask_sensitive(applicant),
            submitted_at=case.submitted_at,
            next_due=open_dues[0] if open_dues else None,
        )

    def _fields(self, case: Case, *, unmasked: bool) -> list[tuple[str, str]]:
        form = self._forms.get(case.case_type)
        shown: set[str] = set()
        pairs: list[tuple[str, str]] = []
        if form is not None:
            for spec in form.fields:
                if spec.name in case.fields:
                    value = spec.display(case.fields[spec.name], mask=not unmasked)
                    pairs.append((spec.label, staff_masked(value, unmasked)))
                    shown.add(spec.name)
        labels = form.extra_field_labels if form is not None else {}
        for name, raw in case.fields.items():  # derived fields (申报批次) and older data
            if name not in shown:
                pairs.append((labels.get(name, name), staff_masked(plain_value(raw), unmasked)))
        return pairs

    @staticmethod
    def _entry(event: CaseEvent, names: Mapping[int, str], *, unmasked: bool) -> TimelineEntry:
        actor = names.get(event.actor_id, "") if event.actor_id is not None else "系统"
        return TimelineEntry(
            at=event.at,
            actor=mask_sensitive(actor),
            from_status=event.from_status,
            to_status=event.to_status,
            note=staff_masked(event.note, unmasked) if event.note else "",
        )

    def _status_counts(self, rows: Sequence[tuple[str, str, int]]) -> tuple[StatusCount, ...]:
        counts = {(t, s): n for t, s, n in rows}
        ordered: list[StatusCount] = []
        for workflow in self._workflows.values():
            for status in workflow.statuses:
                key = (workflow.case_type, status)
                ordered.append(
                    StatusCount(
                        workflow.case_type,
                        workflow.title,
                        status,
                        counts.pop(key, 0),
                        key in self._closing,
                    )
                )
        # Statuses no workflow declares any more (older data) still count.
        ordered += [
            StatusCount(t, self._title(t), s, n, False) for (t, s), n in sorted(counts.items())
        ]
        return tuple(ordered)

    def _township_count(self, township_id: str | None, count: int) -> TownshipCount:
        township = self._places.township(township_id)
        if township_id is None:
            name = "未分配乡镇"
        else:
            name = township.label if township is not None else township_id
        return TownshipCount(township_id, name, count)

    def _due_case(self, entry: DueEntry, today: date) -> DueCase:
        return DueCase(
            number=entry.number,
            title=self._title(entry.case_type),
            status=entry.status,
            township=entry.township,
            village=entry.village,
            due_name=entry.name,
            due_on=entry.due_on,
            days_left=(entry.due_on - today).days,
        )

    def _audit(self, actor: User, subject: str, detail: str) -> None:
        """Record an admin's reveal before anything is shown (no record, no reveal)."""
        with self._uow() as uow:
            uow.audit.record(self._clock(), actor.id, ID_REVEALED, subject, detail)
            uow.commit()


def clean_note(note: str) -> str:
    """A status note as stored: one plain text, ID and phone numbers masked (it goes to the
    farmer and into the history); too long is refused, not cut."""
    text = unicodedata.normalize("NFKC", note)
    text = "\n".join(" ".join(_CONTROL.sub("", line).split()) for line in text.splitlines())
    text = text.strip()
    if len(text) > MAX_NOTE:
        raise Refusal(f"理由最多 {MAX_NOTE} 个字，请精简后再提交。")
    return mask_sensitive(text)


def _parse_date(text: str, label: str, problems: list[str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"“{label}”不是有效日期（格式如 2026-05-01），已忽略。")
        return None
