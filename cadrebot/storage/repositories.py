"""SQL implementations of the repository protocols in :mod:`cadrebot.handlers.ports`.

One :class:`SqlUnitOfWork` is one database transaction shared by all its repositories. The
repositories use SQLAlchemy Core statements on the mapped tables (no ORM session): every
read goes to the database, so there is no identity map that could hand back stale rows
after another worker's commit, and the optimistic checks are explicit ``WHERE`` clauses.

Concurrency
-----------
* PostgreSQL: :meth:`SqlDialogStateRepository.locked` takes a row lock
  (``SELECT ... FOR UPDATE``) on the conversation's row in ``conversation_locks``, created on
  first use with ``INSERT ... ON CONFLICT DO NOTHING``. Different conversations lock
  different rows and never wait for each other.
* SQLite: every unit-of-work transaction starts with ``BEGIN IMMEDIATE`` (see
  :data:`cadrebot.storage.engines.SQLITE_BEGIN_OPTION`), so writers are serialised database-wide;
  a unit of work holds the write lock from its first statement until commit or rollback.
* Case numbers come from ``case_counters``, bumped by one upsert that row-locks the counter
  until commit: two workers never get the same number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, tzinfo
from itertools import pairwise
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Row,
    Table,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from cadrebot.handlers.account_ports import AccountRepository, AuditLog
from cadrebot.handlers.outbox_ports import NoticeOutbox
from cadrebot.handlers.ports import (
    Case,
    CaseBoardRepository,
    CaseEvent,
    CasePage,
    CaseQuery,
    CaseSearch,
    ConcurrentUpdateError,
    ConversationKey,
    DialogPhase,
    DialogState,
    DialogStateRepository,
    DueEntry,
    DueWindow,
    Exchange,
    ExchangeKind,
    ExchangeRecords,
    Feedback,
    InviteCode,
    InviteRepository,
    KbVersion,
    KbVersionRepository,
    LoggedExchange,
    NewCase,
    NewInvite,
    NotFoundError,
    OfficeUnitOfWork,
    OfficeUnitOfWorkFactory,
    QuestionLogPage,
    QuestionStat,
    QuestionView,
    Role,
    UnitOfWork,
    UnitOfWorkFactory,
    User,
    UserDirectory,
)
from cadrebot.storage.accounts import SqlAccountRepository, SqlAuditLog
from cadrebot.storage.engines import reader_engine, writer_engine
from cadrebot.storage.models import (
    Base,
    CaseCounterRow,
    CaseDueDateRow,
    CaseEventRow,
    CaseRow,
    ConversationLockRow,
    DialogStateRow,
    ExchangeRow,
    InviteCodeRow,
    KbVersionRow,
    UserRow,
)
from cadrebot.storage.outbox import SqlNoticeOutbox
from cadrebot.storage.rows import user_of


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]


_users = _table(UserRow)
_exchanges = _table(ExchangeRow)
_locks = _table(ConversationLockRow)
_dialogs = _table(DialogStateRow)
_counters = _table(CaseCounterRow)
_cases = _table(CaseRow)
_due_dates = _table(CaseDueDateRow)
_events = _table(CaseEventRow)
_invites = _table(InviteCodeRow)
_kb_versions = _table(KbVersionRow)


# The statements every conversation turn runs are built once: building one and computing its
# cache key cost more Python time than executing it (measured under load).
def _same_key(table: Table) -> ColumnElement[bool]:
    return (table.c.channel == bindparam("key_channel", type_=table.c.channel.type)) & (
        table.c.chat_id == bindparam("key_chat", type_=table.c.chat_id.type)
    )


def _key_parameters(key: ConversationKey) -> dict[str, str]:
    return {"key_channel": key.channel, "key_chat": key.chat_id}


_LOCK_CONVERSATION = select(_locks.c.channel).where(_same_key(_locks)).with_for_update()
_FIND_USER = select(_users).where(
    (_users.c.channel == bindparam("find_channel", type_=_users.c.channel.type))
    & (_users.c.external_id == bindparam("find_external", type_=_users.c.external_id.type))
)
_LOAD_DIALOG = select(_dialogs).where(_same_key(_dialogs))
_DELETE_DIALOG = delete(_dialogs).where(_same_key(_dialogs))
_UPDATE_DIALOG = update(_dialogs).where(
    _same_key(_dialogs)
    & (_dialogs.c.version == bindparam("read_version", type_=_dialogs.c.version.type))
)
_RECORD_EXCHANGE = _exchanges.insert()


def _upsert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` that supports ``ON CONFLICT`` on the connection's backend."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database backend {name!r} is not supported")


def case_number(prefix: str, year: int, sequence: int) -> str:
    """``case_number("FX", 2026, 123) == "FX-2026-000123"``."""
    return f"{prefix}-{year}-{sequence:06d}"


# --------------------------------------------------------------------------- unit of work


class SqlUnitOfWork:
    """One transaction spanning all repositories (implements ``ports.UnitOfWork``).

    The database connection is taken from the pool on first use, not on ``__enter__``.
    ``__exit__`` rolls back whatever was not committed and returns the connection.

    ``read_only``: no transaction. On PostgreSQL every statement runs in autocommit (no
    BEGIN / ROLLBACK round trips; under READ COMMITTED a transaction's reads would not see
    one snapshot either); on SQLite the transaction starts DEFERRED, so reads do not queue
    for the write lock. Taking a conversation lock or committing is an error.
    """

    # Typed as the protocols (whose attributes are invariant) so this class is a UnitOfWork
    # and an OfficeUnitOfWork.
    users: UserDirectory
    dialogs: DialogStateRepository
    cases: CaseBoardRepository
    exchanges: ExchangeRecords
    invites: InviteRepository
    kb_versions: KbVersionRepository
    accounts: AccountRepository
    audit: AuditLog
    outbox: NoticeOutbox

    def __init__(self, engine: Engine, *, tz: tzinfo = UTC, read_only: bool = False) -> None:
        self._engine = reader_engine(engine) if read_only else writer_engine(engine)
        self._read_only = read_only
        self._tz = tz
        self._connection: Connection | None = None
        self._held_locks: list[ConversationKey] = []
        self.users = SqlUserRepository(self)
        self.dialogs = SqlDialogStateRepository(self)
        self.cases = SqlCaseRepository(self)
        self.exchanges = SqlExchangeLog(self)
        self.invites = SqlInviteRepository(self)
        self.kb_versions = SqlKbVersionRepository(self)
        self.accounts = SqlAccountRepository(self)
        self.audit = SqlAuditLog(self)
        self.outbox = SqlNoticeOutbox(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def commit(self) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work has nothing to commit")
        if self._connection is None:
            return
        self._connection.commit()
        self._reacquire_locks()

    def rollback(self) -> None:
        if self._connection is None:
            return
        self._connection.rollback()
        self._reacquire_locks()

    def close(self) -> None:
        """Roll back anything uncommitted and give the connection back to the pool."""
        connection, self._connection = self._connection, None
        self._held_locks.clear()
        if connection is not None:
            try:
                connection.rollback()
            finally:
                connection.close()

    # -- for the repositories

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def aware(self, value: datetime) -> datetime:
        """A stored UTC timestamp in the zone this unit of work reports times in."""
        return value.astimezone(self._tz)

    @contextmanager
    def conversation_lock(self, key: ConversationKey) -> Iterator[None]:
        self._lock(key)
        self._held_locks.append(key)
        try:
            yield
        finally:
            if key in self._held_locks:  # close() may have released everything already
                self._held_locks.remove(key)

    def _reacquire_locks(self) -> None:
        # A commit or rollback ends the transaction and with it the row locks; the protocol
        # promises the lock until the ``locked()`` block exits, so take it again at once.
        for key in dict.fromkeys(self._held_locks):
            self._lock(key)

    def _lock(self, key: ConversationKey) -> None:
        if self._read_only:
            raise RuntimeError("a read-only unit of work takes no conversation lock")
        connection = self.connection()
        if connection.dialect.name != "postgresql":
            # SQLite: the transaction starts with BEGIN IMMEDIATE, which takes the database
            # write lock; running any statement starts it.
            connection.exec_driver_sql("SELECT 1")
            return
        if connection.execute(_LOCK_CONVERSATION, _key_parameters(key)).first() is None:
            connection.execute(
                _upsert(connection, _locks)
                .values(channel=key.channel, chat_id=key.chat_id)
                .on_conflict_do_nothing(index_elements=[_locks.c.channel, _locks.c.chat_id])
            )
            # Either our new row or a concurrent inserter's (now committed) one.
            connection.execute(_LOCK_CONVERSATION, _key_parameters(key)).one()


class SqlUnitOfWorkFactory:
    """Makes units of work on one engine (implements ``ports.UnitOfWorkFactory``).

    ``tz`` is the zone datetimes are handed back in (they are stored in UTC); pass the
    service's zone (Asia/Shanghai) so read-back values print the way they were entered.
    """

    def __init__(self, engine: Engine, *, tz: tzinfo = UTC) -> None:
        self._engine = engine
        # Both set up once (the units of work find them so and use them as they are).
        self._writer = writer_engine(engine)
        self._reader = reader_engine(engine)
        self._tz = tz

    def __call__(self, *, read_only: bool = False) -> SqlUnitOfWork:
        engine = self._reader if read_only else self._writer
        return SqlUnitOfWork(engine, tz=self._tz, read_only=read_only)


# --------------------------------------------------------------------------- users


class SqlUserRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def get(self, user_id: int) -> User | None:
        row = self._uow.connection().execute(select(_users).where(_users.c.id == user_id)).first()
        return user_of(row) if row is not None else None

    def find(self, channel: str, external_id: str) -> User | None:
        row = self._find_row(channel, external_id)
        return user_of(row) if row is not None else None

    def get_or_create(self, channel: str, external_id: str, display_name: str) -> User:
        connection = self._uow.connection()
        row = self._find_row(channel, external_id)
        if row is None:
            # Two first messages from a new user may race; the loser's insert is a no-op.
            connection.execute(
                _upsert(connection, _users)
                .values(
                    channel=channel,
                    external_id=external_id,
                    display_name=display_name,
                    role=Role.FARMER.value,
                    created_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(index_elements=[_users.c.channel, _users.c.external_id])
            )
            row = self._find_row(channel, external_id)
            assert row is not None
        if row.display_name != display_name:
            connection.execute(
                update(_users).where(_users.c.id == row.id).values(display_name=display_name)
            )
            return dataclasses.replace(user_of(row), display_name=display_name)
        return user_of(row)

    def set_role(
        self,
        user_id: int,
        role: Role,
        township: str | None,
        village: str | None,
        *,
        township_id: str | None = None,
        village_id: str | None = None,
    ) -> User:
        connection = self._uow.connection()
        result = connection.execute(
            update(_users)
            .where(_users.c.id == user_id)
            .values(
                role=Role(role).value,
                township=township,
                village=village,
                township_id=township_id,
                village_id=village_id,
            )
            .returning(*_users.c)
        )
        row = result.first()
        if row is None:
            raise NotFoundError(f"no user with id {user_id}")
        return user_of(row)

    def list_users(self, *, roles: frozenset[Role], channel: str | None = None) -> Sequence[User]:
        conditions: list[ColumnElement[bool]] = [
            _users.c.role.in_(sorted(Role(r).value for r in roles))
        ]
        if channel is not None:
            conditions.append(_users.c.channel == channel)
        statement = select(_users).where(*conditions).order_by(_users.c.id)
        return [user_of(row) for row in self._uow.connection().execute(statement)]

    def _find_row(self, channel: str, external_id: str) -> Row[Any] | None:
        parameters = {"find_channel": channel, "find_external": external_id}
        return self._uow.connection().execute(_FIND_USER, parameters).first()


# --------------------------------------------------------------------------- dialogs


class SqlDialogStateRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def load(self, key: ConversationKey) -> DialogState | None:
        row = self._uow.connection().execute(_LOAD_DIALOG, _key_parameters(key)).first()
        if row is None:
            return None
        return DialogState(
            key=ConversationKey(row.channel, row.chat_id),
            form_name=row.form_name,
            current_field=row.current_field,
            phase=DialogPhase(row.phase),
            answers=row.answers,
            started_at=self._uow.aware(row.started_at),
            updated_at=self._uow.aware(row.updated_at),
            scratch=row.scratch,
            version=row.version,
        )

    def save(self, state: DialogState) -> DialogState:
        connection = self._uow.connection()
        values = {
            "form_name": state.form_name,
            "current_field": state.current_field,
            "phase": DialogPhase(state.phase).value,
            "answers": state.answers,
            "scratch": state.scratch,
            "started_at": state.started_at,
            "updated_at": state.updated_at,
            "version": state.version + 1,
        }
        if state.version == 0:
            # rowcount is unreliable for INSERT; RETURNING yields no row when it conflicted.
            inserted = connection.execute(
                _upsert(connection, _dialogs)
                .values(channel=state.key.channel, chat_id=state.key.chat_id, **values)
                .on_conflict_do_nothing(index_elements=[_dialogs.c.channel, _dialogs.c.chat_id])
                .returning(_dialogs.c.id)
            ).first()
            saved = inserted is not None
        else:
            parameters = {**values, **_key_parameters(state.key), "read_version": state.version}
            result = connection.execute(_UPDATE_DIALOG, parameters)
            saved = result.rowcount == 1
        if not saved:
            raise ConcurrentUpdateError(
                f"dialog state of {state.key} changed since version {state.version} was read"
            )
        return dataclasses.replace(state, version=state.version + 1)

    def delete(self, key: ConversationKey) -> None:
        self._uow.connection().execute(_DELETE_DIALOG, _key_parameters(key))

    def idle_since(self, before: datetime, *, limit: int = 100) -> Sequence[DialogState]:
        rows = self._uow.connection().execute(
            select(_dialogs.c.channel, _dialogs.c.chat_id)
            .where(_dialogs.c.updated_at < before)
            .order_by(_dialogs.c.updated_at)
            .limit(limit)
        )
        keys = [ConversationKey(row.channel, row.chat_id) for row in rows]
        return [state for key in keys if (state := self.load(key)) is not None]

    def locked(self, key: ConversationKey) -> AbstractContextManager[None]:
        return self._uow.conversation_lock(key)


# --------------------------------------------------------------------------- cases


def _case_conditions(query: CaseQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.township is not None:
        conditions.append(_cases.c.township == query.township)
    if query.village is not None:
        conditions.append(_cases.c.village == query.village)
    if query.statuses is not None:
        conditions.append(_cases.c.status.in_(sorted(query.statuses)))
    if query.case_type is not None:
        conditions.append(_cases.c.case_type == query.case_type)
    if query.submitter_id is not None:
        conditions.append(_cases.c.submitter_id == query.submitter_id)
    if query.township_id is not None:
        conditions.append(_cases.c.township_id == query.township_id)
    if query.village_id is not None:
        conditions.append(_cases.c.village_id == query.village_id)
    if query.unassigned:
        conditions.append(_cases.c.township_id.is_(None))
    return conditions


# The case board's statements carry their values (townships, statuses, dates) written into
# the SQL, all but the text a user typed: PostgreSQL then plans each one for its township and
# dates. As parameters, a statement psycopg has prepared (after five uses) may be given one
# generic plan for every township, and those are bad here: measured on 100,000 cases, a
# cadre's due list took 273 ms with the generic plan and 5 ms with its own.


def _const(column: ColumnElement[Any], value: object) -> BindParameter[Any]:
    """``value`` for comparing with ``column``, rendered into the statement."""
    return bindparam(None, value, type_=column.type, literal_execute=True)


def _const_in(column: ColumnElement[Any], values: Iterable[str]) -> ColumnElement[bool]:
    return column.in_(
        bindparam(None, sorted(values), type_=column.type, expanding=True, literal_execute=True)
    )


def _board_scope(query: CaseQuery) -> list[ColumnElement[bool]]:
    """:func:`_case_conditions` with the values written into the statement."""
    conditions: list[ColumnElement[bool]] = []
    for column, value in (
        (_cases.c.township, query.township),
        (_cases.c.village, query.village),
        (_cases.c.case_type, query.case_type),
        (_cases.c.submitter_id, query.submitter_id),
        (_cases.c.township_id, query.township_id),
        (_cases.c.village_id, query.village_id),
    ):
        if value is not None:
            conditions.append(column == _const(column, value))
    if query.statuses is not None:
        conditions.append(_const_in(_cases.c.status, query.statuses))
    if query.unassigned:
        conditions.append(_cases.c.township_id.is_(None))
    return conditions


def _open_due(window: DueWindow, due: FromClause) -> list[ColumnElement[bool]]:
    """``due`` (a ``case_due_dates`` row joined to its case) is open and inside ``window``."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item in window.open_dues:
        groups.setdefault((item.case_type, item.status), []).append(item.name)
    conditions: list[ColumnElement[bool]] = [
        or_(
            false(),
            *(
                (_cases.c.case_type == _const(_cases.c.case_type, case_type))
                & (_cases.c.status == _const(_cases.c.status, status))
                & _const_in(due.c.name, names)
                for (case_type, status), names in sorted(groups.items())
            ),
        )
    ]
    if window.start is not None:
        conditions.append(due.c.due_on >= _const(due.c.due_on, window.start))
    if window.end is not None:
        conditions.append(due.c.due_on < _const(due.c.due_on, window.end))
    return conditions


def _search_conditions(search: CaseSearch) -> list[ColumnElement[bool]]:
    conditions = _board_scope(search.scope)
    if search.text:
        # What a user typed stays a parameter. Numbers are upper case; LIKE wildcards typed
        # by the user are matched literally.
        matches = [_cases.c.number.contains(search.text.upper(), autoescape=True)]
        matches += [
            _cases.c.fields[name].as_string().contains(search.text, autoescape=True)
            for name in search.name_fields
        ]
        conditions.append(or_(*matches))
    if search.filed_from is not None:
        conditions.append(_cases.c.submitted_at >= _const(_cases.c.submitted_at, search.filed_from))
    if search.filed_before is not None:
        conditions.append(
            _cases.c.submitted_at < _const(_cases.c.submitted_at, search.filed_before)
        )
    if search.due is not None:
        due = _due_dates.alias("due_window")
        conditions.append(
            exists()
            .where(due.c.case_id == _cases.c.id, *_open_due(search.due, due))
            .correlate(_cases)
        )
    return conditions


class SqlCaseRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def create(self, new: NewCase) -> Case:
        connection = self._uow.connection()
        year = new.submitted_at.year  # in the zone the service filed it in
        sequence = connection.execute(
            _upsert(connection, _counters)
            .values(prefix=new.number_prefix, year=year, last_value=1)
            .on_conflict_do_update(
                index_elements=[_counters.c.prefix, _counters.c.year],
                set_={"last_value": _counters.c.last_value + 1},
            )
            .returning(_counters.c.last_value)
        ).scalar_one()
        number = case_number(new.number_prefix, year, sequence)
        case_id = connection.execute(
            _cases.insert()
            .values(
                case_type=new.case_type,
                number=number,
                status=new.status,
                fields=new.fields,
                submitter_id=new.submitter_id,
                township=new.township,
                village=new.village,
                township_id=new.township_id,
                village_id=new.village_id,
                submitted_at=new.submitted_at,
                updated_at=new.submitted_at,
            )
            .returning(_cases.c.id)
        ).scalar_one()
        self._merge_due_dates(case_id, new.due_dates)
        self._append_event(
            case_id,
            actor_id=new.submitter_id,
            at=new.submitted_at,
            from_status=None,
            to_status=new.status,
            note="",
        )
        return self._load_one(_cases.c.id == case_id)

    def get(self, number: str) -> Case | None:
        cases = self._load(select(_cases).where(_cases.c.number == number))
        return cases[0] if cases else None

    def list_cases(self, query: CaseQuery, *, limit: int = 20, offset: int = 0) -> CasePage:
        return self._page(_case_conditions(query), limit=limit, offset=offset)

    def transition(
        self,
        number: str,
        *,
        expected_status: str,
        to_status: str,
        actor_id: int | None,
        at: datetime,
        note: str = "",
        due_dates: Mapping[str, date] | None = None,
    ) -> Case:
        connection = self._uow.connection()
        # Compare-and-set on the status: of two cadres acting at once, one wins.
        case_id = connection.execute(
            update(_cases)
            .where((_cases.c.number == number) & (_cases.c.status == expected_status))
            .values(status=to_status, updated_at=at)
            .returning(_cases.c.id)
        ).scalar_one_or_none()
        if case_id is None:
            current = connection.execute(
                select(_cases.c.status).where(_cases.c.number == number)
            ).scalar_one_or_none()
            if current is None:
                raise NotFoundError(f"no case numbered {number}")
            raise ConcurrentUpdateError(
                f"case {number} is {current!r}, not {expected_status!r} as expected"
            )
        self._merge_due_dates(case_id, due_dates or {})
        self._append_event(
            case_id,
            actor_id=actor_id,
            at=at,
            from_status=expected_status,
            to_status=to_status,
            note=note,
        )
        return self._load_one(_cases.c.id == case_id)

    def events(self, number: str) -> Sequence[CaseEvent]:
        statement = (
            select(_events)
            .join(_cases, _cases.c.id == _events.c.case_id)
            .where(_cases.c.number == number)
            .order_by(_events.c.id)
        )
        return [
            CaseEvent(
                case_id=row.case_id,
                actor_id=row.actor_id,
                at=self._uow.aware(row.at),
                from_status=row.from_status,
                to_status=row.to_status,
                note=row.note,
            )
            for row in self._uow.connection().execute(statement)
        ]

    def due_before(
        self, query: CaseQuery, before: date, *, due_names: frozenset[str] | None = None
    ) -> Sequence[Case]:
        due_filter = [_due_dates.c.due_on < before]
        if due_names is not None:
            due_filter.append(_due_dates.c.name.in_(sorted(due_names)))
        earliest = (
            select(_due_dates.c.case_id, func.min(_due_dates.c.due_on).label("earliest"))
            .where(*due_filter)
            .group_by(_due_dates.c.case_id)
            .subquery()
        )
        statement = (
            select(_cases)
            .join(earliest, earliest.c.case_id == _cases.c.id)
            .where(*_case_conditions(query))
            .order_by(earliest.c.earliest, _cases.c.id)
        )
        return self._load(statement)

    def assign(
        self,
        number: str,
        *,
        township: str,
        township_id: str,
        village: str,
        village_id: str | None,
        actor_id: int | None,
        at: datetime,
    ) -> Case:
        row = (
            self._uow.connection()
            .execute(
                update(_cases)
                .where(_cases.c.number == number)
                .values(
                    township=township,
                    township_id=township_id,
                    village=village,
                    village_id=village_id,
                    updated_at=at,
                )
                .returning(_cases.c.id, _cases.c.status)
            )
            .first()
        )
        if row is None:
            raise NotFoundError(f"no case numbered {number}")
        self._append_event(
            row.id,
            actor_id=actor_id,
            at=at,
            from_status=row.status,
            to_status=row.status,
            note=f"分配至{township}{village}",
        )
        return self._load_one(_cases.c.id == row.id)

    # -- the case board (filtered, counted and paged in SQL)

    def search(self, search: CaseSearch, *, limit: int, offset: int) -> CasePage:
        return self._page(_search_conditions(search), limit=limit, offset=offset)

    def status_counts(self, search: CaseSearch) -> Sequence[tuple[str, str, int]]:
        statement = (
            select(_cases.c.case_type, _cases.c.status, func.count())
            .where(*_search_conditions(search))
            .group_by(_cases.c.case_type, _cases.c.status)
            .order_by(_cases.c.case_type, _cases.c.status)
        )
        return [(t, s, n) for t, s, n in self._uow.connection().execute(statement)]

    def township_counts(self, search: CaseSearch) -> Sequence[tuple[str | None, int]]:
        statement = (
            select(_cases.c.township_id, func.count())
            .where(*_search_conditions(search))
            .group_by(_cases.c.township_id)
        )
        return [(t, n) for t, n in self._uow.connection().execute(statement)]

    def due_entries(
        self, search: CaseSearch, window: DueWindow, *, limit: int
    ) -> tuple[Sequence[DueEntry], int]:
        joined = _cases.join(_due_dates, _due_dates.c.case_id == _cases.c.id)
        conditions = [*_search_conditions(search), *_open_due(window, _due_dates)]
        connection = self._uow.connection()
        # Two statements, not one with ``count(*) OVER ()``: the window keeps PostgreSQL from
        # stopping at the first rows in due-date order, which is what makes the list cheap.
        total = connection.execute(
            select(func.count()).select_from(joined).where(*conditions)
        ).scalar_one()
        rows = connection.execute(
            select(
                _cases.c.number,
                _cases.c.case_type,
                _cases.c.status,
                _cases.c.township,
                _cases.c.village,
                _due_dates.c.name,
                _due_dates.c.due_on,
            )
            .select_from(joined)
            .where(*conditions)
            .order_by(_due_dates.c.due_on, _cases.c.number, _due_dates.c.name)
            .limit(limit)
        ).all()
        return [DueEntry(*row) for row in rows], total

    def weekly_counts(
        self,
        search: CaseSearch,
        bounds: Sequence[datetime],
        closing: frozenset[tuple[str, str]],
    ) -> tuple[list[int], list[int]]:
        if len(bounds) < 2:
            return [], []
        periods = list(pairwise(bounds))
        connection = self._uow.connection()
        conditions = _search_conditions(search)

        def bucketed(column: Any) -> list[Any]:
            # One pass over the rows, one sum per period (portable: no date_trunc on SQLite,
            # and the periods are cut in the service's time zone by the caller).
            return [
                func.coalesce(
                    func.sum(
                        case(
                            ((column >= _const(column, lo)) & (column < _const(column, hi)), 1),
                            else_=0,
                        )
                    ),
                    0,
                )
                for lo, hi in periods
            ]

        filed = connection.execute(
            select(*bucketed(_cases.c.submitted_at)).where(
                *conditions,
                _cases.c.submitted_at >= _const(_cases.c.submitted_at, bounds[0]),
                _cases.c.submitted_at < _const(_cases.c.submitted_at, bounds[-1]),
            )
        ).one()
        groups: dict[str, list[str]] = {}
        for case_type, status in closing:
            groups.setdefault(case_type, []).append(status)
        closed_to = or_(
            false(),
            *(
                (_cases.c.case_type == _const(_cases.c.case_type, case_type))
                & _const_in(_events.c.to_status, statuses)
                for case_type, statuses in sorted(groups.items())
            ),
        )
        closed = connection.execute(
            select(*bucketed(_events.c.at))
            .select_from(_events.join(_cases, _cases.c.id == _events.c.case_id))
            .where(
                *conditions,
                # All the final statuses at once: one range of the (to_status, at, …) index,
                # read alone (index-only); ``closed_to`` then keeps each type's own.
                _const_in(_events.c.to_status, {status for _, status in closing}),
                closed_to,
                # A status change, not the record of an assignment (same status on both sides).
                _events.c.from_status != _events.c.to_status,
                _events.c.at >= _const(_events.c.at, bounds[0]),
                _events.c.at < _const(_events.c.at, bounds[-1]),
            )
        ).one()
        return [int(n) for n in filed], [int(n) for n in closed]

    # -- helpers

    def _merge_due_dates(self, case_id: int, due_dates: Mapping[str, date]) -> None:
        if not due_dates:
            return
        connection = self._uow.connection()
        insert = _upsert(connection, _due_dates)
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=[_due_dates.c.case_id, _due_dates.c.name],
                set_={"due_on": insert.excluded.due_on},
            ),
            [
                {"case_id": case_id, "name": name, "due_on": due_on}
                for name, due_on in sorted(due_dates.items())
            ],
        )

    def _append_event(
        self,
        case_id: int,
        *,
        actor_id: int | None,
        at: datetime,
        from_status: str | None,
        to_status: str,
        note: str,
    ) -> None:
        self._uow.connection().execute(
            _events.insert().values(
                case_id=case_id,
                actor_id=actor_id,
                at=at,
                from_status=from_status,
                to_status=to_status,
                note=note,
            )
        )

    def _page(
        self, conditions: Sequence[ColumnElement[bool]], *, limit: int, offset: int
    ) -> CasePage:
        """The cases matching ``conditions``, newest submitted first, and how many match."""
        total = (
            self._uow.connection()
            .execute(select(func.count()).select_from(_cases).where(*conditions))
            .scalar_one()
        )
        page = (
            select(_cases)
            .where(*conditions)
            .order_by(_cases.c.submitted_at.desc(), _cases.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return CasePage(items=self._load(page), total=total)

    def _load_one(self, condition: ColumnElement[bool]) -> Case:
        return self._load(select(_cases).where(condition))[0]

    def _load(self, statement: Any) -> list[Case]:
        connection = self._uow.connection()
        rows = connection.execute(statement).all()
        due = self._due_dates_of(row.id for row in rows)
        return [
            Case(
                id=row.id,
                number=row.number,
                case_type=row.case_type,
                status=row.status,
                fields=row.fields,
                submitter_id=row.submitter_id,
                township=row.township,
                village=row.village,
                submitted_at=self._uow.aware(row.submitted_at),
                updated_at=self._uow.aware(row.updated_at),
                due_dates=due.get(row.id, {}),
                township_id=row.township_id,
                village_id=row.village_id,
            )
            for row in rows
        ]

    def _due_dates_of(self, case_ids: Iterable[int]) -> dict[int, dict[str, date]]:
        ids = list(case_ids)
        if not ids:
            return {}
        statement = (
            select(_due_dates)
            .where(_due_dates.c.case_id.in_(ids))
            .order_by(_due_dates.c.case_id, _due_dates.c.due_on, _due_dates.c.name)
        )
        result: dict[int, dict[str, date]] = {}
        for row in self._uow.connection().execute(statement):
            result.setdefault(row.case_id, {})[row.name] = row.due_on
        return result


# --------------------------------------------------------------------------- exchanges


class SqlExchangeLog:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def record(self, exchange: Exchange) -> int:
        row = {
            "user_id": exchange.user_id,
            "channel": exchange.channel,
            "chat_id": exchange.chat_id,
            "kind": ExchangeKind(exchange.kind).value,
            "inbound_text": exchange.inbound_text,
            "reply_text": exchange.reply_text,
            "found": exchange.found,
            "cited_chunk_ids": list(exchange.chunk_ids),
            "latency_ms": exchange.latency_ms,
            "kb_version": exchange.kb_version,
            "created_at": exchange.at,
        }
        result = self._uow.connection().execute(_RECORD_EXCHANGE, row)
        # PostgreSQL hands the id back with the INSERT (RETURNING), SQLite as lastrowid.
        inserted = result.inserted_primary_key
        assert inserted is not None
        return int(inserted[0])

    def latest(self, key: ConversationKey, kinds: frozenset[ExchangeKind]) -> LoggedExchange | None:
        statement = (
            select(_exchanges)
            .where(
                _same_key(_exchanges)
                & _exchanges.c.kind.in_(sorted(ExchangeKind(k).value for k in kinds))
            )
            .order_by(_exchanges.c.id.desc())
            .limit(1)
        )
        row = self._uow.connection().execute(statement, _key_parameters(key)).first()
        return self._logged(row) if row is not None else None

    def get(self, exchange_id: int) -> LoggedExchange | None:
        statement = select(_exchanges).where(_exchanges.c.id == exchange_id)
        row = self._uow.connection().execute(statement).first()
        return self._logged(row) if row is not None else None

    def set_feedback(self, exchange_id: int, feedback: Feedback) -> None:
        result = self._uow.connection().execute(
            update(_exchanges)
            .where(_exchanges.c.id == exchange_id)
            .values(feedback=Feedback(feedback).value)
        )
        if result.rowcount != 1:
            raise NotFoundError(f"no exchange with id {exchange_id}")

    def questions_since(self, since: datetime) -> Sequence[QuestionStat]:
        statement = (
            select(_exchanges.c.created_at, _exchanges.c.found, _exchanges.c.feedback)
            .where(_QUESTION_KINDS & (_exchanges.c.created_at >= since))
            .order_by(_exchanges.c.created_at, _exchanges.c.id)
        )
        return [
            QuestionStat(
                at=self._uow.aware(row.created_at),
                found=row.found,
                feedback=Feedback(row.feedback) if row.feedback else None,
            )
            for row in self._uow.connection().execute(statement)
        ]

    def top_unanswered(self, since: datetime, limit: int = 5) -> Sequence[tuple[str, int]]:
        count = func.count().label("n")
        statement = (
            select(_exchanges.c.inbound_text, count)
            .where(
                _QUESTION_KINDS
                & (_exchanges.c.found.is_(False))
                & (_exchanges.c.created_at >= since)
            )
            .group_by(_exchanges.c.inbound_text)
            .order_by(count.desc(), _exchanges.c.inbound_text)
            .limit(limit)
        )
        return [(row.inbound_text, int(row.n)) for row in self._uow.connection().execute(statement)]

    def question_log(
        self, view: QuestionView, *, limit: int = 20, offset: int = 0
    ) -> QuestionLogPage:
        condition: ColumnElement[bool] = _QUESTION_KINDS
        if view is QuestionView.UNANSWERED:
            condition = condition & _exchanges.c.found.is_(False)
        elif view is QuestionView.THUMBS_DOWN:
            condition = condition & (_exchanges.c.feedback == Feedback.DOWN.value)
        connection = self._uow.connection()
        counted = select(func.count()).select_from(_exchanges).where(condition)
        total = connection.execute(counted).scalar_one()
        rows = connection.execute(
            select(_exchanges)
            .where(condition)
            .order_by(_exchanges.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return QuestionLogPage([self._logged(row) for row in rows], int(total))

    def _logged(self, row: Row[Any]) -> LoggedExchange:
        exchange = Exchange(
            channel=row.channel,
            chat_id=row.chat_id,
            user_id=row.user_id,
            at=self._uow.aware(row.created_at),
            inbound_text=row.inbound_text,
            reply_text=row.reply_text,
            kind=ExchangeKind(row.kind),
            found=row.found,
            chunk_ids=tuple(row.cited_chunk_ids or ()),
            latency_ms=row.latency_ms,
            kb_version=row.kb_version,
        )
        feedback = Feedback(row.feedback) if row.feedback else None
        return LoggedExchange(id=row.id, exchange=exchange, feedback=feedback)


_QUESTION_KINDS = _exchanges.c.kind.in_([ExchangeKind.QA.value, ExchangeKind.FORM_QA.value])


# --------------------------------------------------------------------------- invites


class SqlInviteRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def create(self, invite: NewInvite) -> InviteCode:
        connection = self._uow.connection()
        inserted = connection.execute(
            _upsert(connection, _invites)
            .values(
                code=invite.code,
                township=invite.township,
                village=invite.village,
                township_id=invite.township_id,
                village_id=invite.village_id,
                role=Role(invite.role).value,
                created_by_id=invite.created_by_id,
                created_at=invite.created_at,
                expires_at=invite.expires_at,
                revoked=False,
            )
            .on_conflict_do_nothing(index_elements=[_invites.c.code])
            .returning(_invites.c.id)
        ).first()
        if inserted is None:
            raise ConcurrentUpdateError(f"invite code {invite.code!r} exists already")
        created = self.get(invite.code)
        assert created is not None
        return created

    def get(self, code: str) -> InviteCode | None:
        row = (
            self._uow.connection().execute(select(_invites).where(_invites.c.code == code)).first()
        )
        return self._invite(row) if row is not None else None

    def redeem(self, code: str, user_id: int, at: datetime) -> InviteCode:
        result = self._uow.connection().execute(
            update(_invites)
            .where(
                (_invites.c.code == code)
                & _invites.c.used_by_id.is_(None)
                & (_invites.c.revoked.is_(False))
            )
            .values(used_by_id=user_id, used_at=at)
        )
        if result.rowcount != 1:
            if self.get(code) is None:
                raise NotFoundError(f"no invite code {code!r}")
            raise ConcurrentUpdateError(f"invite code {code!r} was used or revoked")
        redeemed = self.get(code)
        assert redeemed is not None
        return redeemed

    def revoke(self, code: str) -> InviteCode:
        self._uow.connection().execute(
            update(_invites).where(_invites.c.code == code).values(revoked=True)
        )
        revoked = self.get(code)
        if revoked is None:
            raise NotFoundError(f"no invite code {code!r}")
        return revoked

    def list_codes(self, *, include_closed: bool = False) -> Sequence[InviteCode]:
        statement = select(_invites).order_by(_invites.c.created_at.desc(), _invites.c.id.desc())
        if not include_closed:
            statement = statement.where(
                _invites.c.used_by_id.is_(None) & (_invites.c.revoked.is_(False))
            )
        return [self._invite(row) for row in self._uow.connection().execute(statement)]

    def _invite(self, row: Row[Any]) -> InviteCode:
        return InviteCode(
            code=row.code,
            township=row.township or "",
            village=row.village,
            role=Role(row.role),
            created_by_id=row.created_by_id,
            created_at=self._uow.aware(row.created_at),
            expires_at=self._uow.aware(row.expires_at) if row.expires_at else None,
            used_by_id=row.used_by_id,
            used_at=self._uow.aware(row.used_at) if row.used_at else None,
            revoked=bool(row.revoked),
            township_id=row.township_id,
            village_id=row.village_id,
        )


# --------------------------------------------------------------------------- kb versions


class SqlKbVersionRepository:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def record(self, version: KbVersion) -> None:
        connection = self._uow.connection()
        if version.status == "active":
            connection.execute(
                update(_kb_versions)
                .where(_kb_versions.c.version_id != version.version_id)
                .values(status="superseded")
            )
        values = {
            "built_at": version.built_at,
            "doc_count": version.doc_count,
            "chunk_count": version.chunk_count,
            "status": version.status,
        }
        connection.execute(
            _upsert(connection, _kb_versions)
            .values(version_id=version.version_id, **values)
            .on_conflict_do_update(index_elements=[_kb_versions.c.version_id], set_=values)
        )

    def recent(self, limit: int = 5) -> Sequence[KbVersion]:
        statement = (
            select(_kb_versions)
            .order_by(_kb_versions.c.built_at.desc(), _kb_versions.c.version_id.desc())
            .limit(limit)
        )
        return [
            KbVersion(
                version_id=row.version_id,
                built_at=self._uow.aware(row.built_at),
                doc_count=row.doc_count,
                chunk_count=row.chunk_count,
                status=row.status,
            )
            for row in self._uow.connection().execute(statement)
        ]


if TYPE_CHECKING:
    # Static proof (checked by mypy) that these classes implement the ports.
    def _implements_ports(
        uow: SqlUnitOfWork, factory: SqlUnitOfWorkFactory
    ) -> tuple[UnitOfWork, UnitOfWorkFactory, OfficeUnitOfWork, OfficeUnitOfWorkFactory]:
        return uow, factory, uow, factory
