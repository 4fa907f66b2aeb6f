"""In-memory implementations of every protocol in ``cadrebot.handlers.ports``.

They keep the documented semantics that the handlers rely on (optimistic versions, atomic
units of work with rollback, per-conversation locks, case numbering) so the handler tests
exercise real behaviour; ``cadrebot.storage`` is tested against SQLite/PostgreSQL separately.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from types import TracebackType
from typing import Self

from cadrebot.handlers.ports import (
    Case,
    CaseEvent,
    CasePage,
    CaseQuery,
    ConcurrentUpdateError,
    ConversationKey,
    DialogState,
    Exchange,
    NewCase,
    NotFoundError,
    Role,
    User,
)


@dataclass
class StoreData:
    users: dict[int, User] = field(default_factory=dict)
    dialogs: dict[ConversationKey, DialogState] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)
    events: list[CaseEvent] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    number_sequences: dict[str, int] = field(default_factory=dict)


class InMemoryStore:
    """The "database": committed data plus the per-conversation locks."""

    def __init__(self) -> None:
        self.data = StoreData()
        self._locks: dict[ConversationKey, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fail_next_commit = False

    def lock_for(self, key: ConversationKey) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def uow(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)


class InMemoryUsers:
    def __init__(self, data: StoreData) -> None:
        self._data = data

    def get(self, user_id: int) -> User | None:
        return self._data.users.get(user_id)

    def find(self, channel: str, external_id: str) -> User | None:
        return next(
            (
                u
                for u in self._data.users.values()
                if u.channel == channel and u.external_id == external_id
            ),
            None,
        )

    def get_or_create(self, channel: str, external_id: str, display_name: str) -> User:
        existing = self.find(channel, external_id)
        if existing is not None:
            if existing.display_name != display_name:
                existing = dataclasses.replace(existing, display_name=display_name)
                self._data.users[existing.id] = existing
            return existing
        user = User(len(self._data.users) + 1, channel, external_id, display_name)
        self._data.users[user.id] = user
        return user

    def set_role(self, user_id: int, role: Role, township: str | None, village: str | None) -> User:
        user = self._data.users.get(user_id)
        if user is None:
            raise NotFoundError(user_id)
        updated = dataclasses.replace(user, role=role, township=township, village=village)
        self._data.users[user_id] = updated
        return updated


class InMemoryDialogs:
    def __init__(
        self, data: StoreData, store: InMemoryStore, release_at_end: list[threading.Lock]
    ) -> None:
        self._data = data
        self._store = store
        # Locks whose block was left: held, like a database row lock, until the unit of
        # work's transaction ends.
        self._release_at_end = release_at_end

    def load(self, key: ConversationKey) -> DialogState | None:
        return self._data.dialogs.get(key)

    def save(self, state: DialogState) -> DialogState:
        stored = self._data.dialogs.get(state.key)
        stored_version = stored.version if stored is not None else 0
        if state.version != stored_version:
            raise ConcurrentUpdateError(f"{state.key}: {state.version} != {stored_version}")
        # Round-trip through JSON-like copies: what storage hands back is never the same object.
        saved = dataclasses.replace(
            state,
            answers=copy.deepcopy(state.answers),
            scratch=copy.deepcopy(state.scratch),
            version=stored_version + 1,
        )
        self._data.dialogs[state.key] = saved
        return saved

    def delete(self, key: ConversationKey) -> None:
        self._data.dialogs.pop(key, None)

    @contextmanager
    def locked(self, key: ConversationKey) -> Iterator[None]:
        lock = self._store.lock_for(key)
        if not lock.acquire(timeout=5):
            raise TimeoutError(f"conversation {key} stayed locked")
        try:
            yield
        finally:
            self._release_at_end.append(lock)


class InMemoryCases:
    def __init__(self, data: StoreData) -> None:
        self._data = data

    def create(self, new: NewCase) -> Case:
        prefix = f"{new.number_prefix}-{new.submitted_at.year}"
        sequence = self._data.number_sequences.get(prefix, 0) + 1
        self._data.number_sequences[prefix] = sequence
        case = Case(
            id=len(self._data.cases) + 1,
            number=f"{prefix}-{sequence:06d}",
            case_type=new.case_type,
            status=new.status,
            fields=copy.deepcopy(new.fields),
            submitter_id=new.submitter_id,
            township=new.township,
            village=new.village,
            submitted_at=new.submitted_at,
            updated_at=new.submitted_at,
            due_dates=dict(new.due_dates),
        )
        self._data.cases[case.number] = case
        self._data.events.append(
            CaseEvent(case.id, new.submitter_id, new.submitted_at, None, new.status)
        )
        return case

    def get(self, number: str) -> Case | None:
        return self._data.cases.get(number)

    def _matching(self, query: CaseQuery) -> list[Case]:
        def matches(case: Case) -> bool:
            return (
                (query.township is None or case.township == query.township)
                and (query.village is None or case.village == query.village)
                and (query.statuses is None or case.status in query.statuses)
                and (query.case_type is None or case.case_type == query.case_type)
                and (query.submitter_id is None or case.submitter_id == query.submitter_id)
            )

        return [c for c in self._data.cases.values() if matches(c)]

    def list_cases(self, query: CaseQuery, *, limit: int = 20, offset: int = 0) -> CasePage:
        found = sorted(self._matching(query), key=lambda c: (c.submitted_at, c.id), reverse=True)
        return CasePage(items=found[offset : offset + limit], total=len(found))

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
        case = self._data.cases.get(number)
        if case is None:
            raise NotFoundError(number)
        if case.status != expected_status:
            raise ConcurrentUpdateError(f"{number}: {case.status} != {expected_status}")
        updated = dataclasses.replace(
            case,
            status=to_status,
            updated_at=at,
            due_dates={**case.due_dates, **(due_dates or {})},
        )
        self._data.cases[number] = updated
        self._data.events.append(CaseEvent(case.id, actor_id, at, case.status, to_status, note))
        return updated

    def events(self, number: str) -> Sequence[CaseEvent]:
        case = self._data.cases.get(number)
        if case is None:
            return []
        return [e for e in self._data.events if e.case_id == case.id]

    def due_before(
        self, query: CaseQuery, before: date, *, due_names: frozenset[str] | None = None
    ) -> Sequence[Case]:
        def earliest(case: Case) -> date | None:
            days = [d for n, d in case.due_dates.items() if due_names is None or n in due_names]
            early = [d for d in days if d < before]
            return min(early) if early else None

        hits = [(earliest(c), c) for c in self._matching(query)]
        return [c for d, c in sorted((h for h in hits if h[0] is not None), key=_by_due)]


def _by_due(hit: tuple[date | None, Case]) -> tuple[date, int]:
    day, case = hit
    assert day is not None
    return day, case.id


class InMemoryExchanges:
    def __init__(self, data: StoreData) -> None:
        self._data = data

    def record(self, exchange: Exchange) -> int:
        self._data.exchanges.append(exchange)
        return len(self._data.exchanges)


class InMemoryUnitOfWork:
    """Works on a copy of the committed data; ``commit`` publishes it, exit discards the rest."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._release_at_end: list[threading.Lock] = []
        self._begin()

    def _begin(self) -> None:
        self._work = copy.deepcopy(self._store.data)
        self.users = InMemoryUsers(self._work)
        self.dialogs = InMemoryDialogs(self._work, self._store, self._release_at_end)
        self.cases = InMemoryCases(self._work)
        self.exchanges = InMemoryExchanges(self._work)

    def __enter__(self) -> Self:
        self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        if self._store.fail_next_commit:
            self._store.fail_next_commit = False
            raise RuntimeError("simulated database failure")
        self._store.data = copy.deepcopy(self._work)
        self._end_transaction()

    def rollback(self) -> None:
        self._end_transaction()
        self._begin()

    def _end_transaction(self) -> None:
        while self._release_at_end:
            self._release_at_end.pop().release()


@dataclass(frozen=True)
class FakeAnswer:
    text: str
    found: bool
    chunk_ids: tuple[str, ...] = ()
    kb_version: str = "test-kb"


class FakeAnswerer:
    """Answers every question with a canned, cited text and remembers what was asked."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def answer(self, question: str) -> FakeAnswer:
        self.questions.append(question)
        if "识别认定" in question:
            return FakeAnswer(
                "一般不超过15天。\n出处：《…2023年工作要点》（赣党农字〔2023〕2号）",
                True,
                ("c-0001",),
            )
        return FakeAnswer("抱歉，现有政策文件中没有找到相关规定。", False)
