"""The notice outbox in SQL: stored masked, claimed exclusively (oldest first, leased),
marked sent, retried or given up, taken by a returning web-chat user, purged; on SQLite and
PostgreSQL, with concurrent claimers and takers on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from cadrebot.handlers.ports import User
from cadrebot.storage import SqlUnitOfWorkFactory
from tests.support.clock import SHANGHAI, at
from tests.support.database import migrated_engine
from tests.support.forms import VALID_ID

T0 = at(2026, 6, 10, 10, 0)
LEASE = timedelta(minutes=5)


@pytest.fixture
def factory(engine: Engine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(engine, tz=SHANGHAI)


def make_user(factory: SqlUnitOfWorkFactory, channel: str, external_id: str) -> User:
    with factory() as uow:
        user = uow.users.get_or_create(channel, external_id, "张三")
        uow.commit()
    return user


def add(factory: SqlUnitOfWorkFactory, user: User, body: str, minutes: int = 0) -> int:
    with factory() as uow:
        notice_id = uow.outbox.add(user, body, T0 + timedelta(minutes=minutes))
        uow.commit()
    return notice_id


def claim(
    factory: SqlUnitOfWorkFactory, channel: str = "telegram", minutes: int = 0, limit: int = 10
) -> list[tuple[int, str, int]]:
    now = T0 + timedelta(minutes=minutes)
    with factory() as uow:
        claimed = uow.outbox.claim(channel, now, until=now + LEASE, limit=limit)
        uow.commit()
    return [(c.id, c.text, c.attempts) for c in claimed]


def test_a_notice_is_stored_masked_for_the_users_channel(factory: SqlUnitOfWorkFactory) -> None:
    farmer = make_user(factory, "telegram", "1001")
    notice_id = add(factory, farmer, f"您的案件已更新。说明：身份证 {VALID_ID}，电话 13812345678")
    with factory(read_only=True) as uow:
        stored = uow.outbox.get(notice_id)
    assert stored is not None
    assert (stored.user_id, stored.channel, stored.attempts) == (farmer.id, "telegram", 0)
    assert VALID_ID not in stored.text and "13812345678" not in stored.text
    assert stored.text.startswith("您的案件已更新。")
    assert stored.created_at == T0 and stored.next_attempt_at == T0 and stored.sent_at is None
    assert stored.created_at.tzinfo is not None


def test_an_uncommitted_notice_is_not_kept(factory: SqlUnitOfWorkFactory) -> None:
    farmer = make_user(factory, "telegram", "1001")
    with factory() as uow:
        uow.outbox.add(farmer, "不会提交", T0)
    assert claim(factory) == []


def test_a_claim_takes_the_channels_due_notices_oldest_first_and_leases_them(
    factory: SqlUnitOfWorkFactory,
) -> None:
    farmer = make_user(factory, "telegram", "1001")
    other = make_user(factory, "telegram", "1002")
    web = make_user(factory, "webchat", "browser-1")
    first = add(factory, farmer, "一")
    second = add(factory, other, "二", minutes=1)
    add(factory, web, "网页")
    later = add(factory, farmer, "以后", minutes=30)

    assert claim(factory, minutes=5, limit=1) == [(first, "一", 1)]
    with factory(read_only=True) as uow:
        held = uow.outbox.get(first)
    assert held is not None and held.next_attempt_at == T0 + timedelta(minutes=10)
    assert claim(factory, minutes=5) == [(second, "二", 1)]
    assert claim(factory, minutes=6) == []  # both leased; the third is not due; web is not ours
    # A lease that lapses (its claimer died) lets the notice be claimed again.
    assert claim(factory, minutes=11) == [(first, "一", 2), (second, "二", 2)]
    assert claim(factory, minutes=15) == []
    assert [c[0] for c in claim(factory, minutes=30)] == [first, second, later]


def test_claimed_notices_carry_their_user(factory: SqlUnitOfWorkFactory) -> None:
    farmer = make_user(factory, "telegram", "1001")
    add(factory, farmer, "一")
    with factory() as uow:
        [claimed] = uow.outbox.claim("telegram", T0, until=T0 + LEASE, limit=5)
        uow.commit()
    assert claimed.user == farmer


def test_sent_and_given_up_notices_are_never_claimed_again(factory: SqlUnitOfWorkFactory) -> None:
    farmer = make_user(factory, "telegram", "1001")
    sent = add(factory, farmer, "已发")
    failed = add(factory, farmer, "重试")
    given_up = add(factory, farmer, "放弃")
    claim(factory)
    with factory() as uow:
        assert uow.outbox.mark_sent(sent, T0 + timedelta(seconds=1))
        assert not uow.outbox.mark_sent(sent, T0 + timedelta(seconds=2))  # recorded already
        uow.outbox.retry(failed, T0 + timedelta(minutes=1))
        uow.outbox.retry(given_up, None)
        uow.commit()
    assert claim(factory, minutes=1) == [(failed, "重试", 2)]
    assert claim(factory, minutes=60 * 24) == [(failed, "重试", 3)]  # its lease lapsed
    with factory(read_only=True) as uow:
        done = uow.outbox.get(sent)
        dropped = uow.outbox.get(given_up)
    assert done is not None and done.sent_at == T0 + timedelta(seconds=1)
    assert done.next_attempt_at is None
    assert dropped is not None and dropped.sent_at is None and dropped.next_attempt_at is None
    with factory() as uow:
        uow.outbox.retry(sent, T0)  # a sent notice is not made due again
        uow.commit()
    assert sent not in [c[0] for c in claim(factory, minutes=60 * 48)]


def test_a_returning_user_takes_their_notices_once(factory: SqlUnitOfWorkFactory) -> None:
    web = make_user(factory, "webchat", "browser-1")
    other = make_user(factory, "webchat", "browser-2")
    add(factory, web, "第一条")
    add(factory, web, "第二条", minutes=1)
    add(factory, other, "别人的")
    with factory(read_only=True) as uow:
        assert uow.outbox.has_pending(web.id)
    with factory() as uow:
        assert list(uow.outbox.take_for_user(web.id, T0 + timedelta(minutes=2))) == [
            "第一条",
            "第二条",
        ]
        uow.commit()
    with factory() as uow:
        assert not uow.outbox.has_pending(web.id)
        assert list(uow.outbox.take_for_user(web.id, T0 + timedelta(minutes=3))) == []
        assert uow.outbox.has_pending(other.id)


def test_old_notices_are_deleted_sent_or_not(factory: SqlUnitOfWorkFactory) -> None:
    farmer = make_user(factory, "telegram", "1001")
    old_sent = add(factory, farmer, "旧的已发")
    old_pending = add(factory, farmer, "旧的未发", minutes=1)
    fresh = add(factory, farmer, "新的", minutes=10)
    with factory() as uow:
        uow.outbox.mark_sent(old_sent, T0)
        assert uow.outbox.delete_before(T0 + timedelta(minutes=5)) == 2
        uow.commit()
    with factory(read_only=True) as uow:
        assert uow.outbox.get(old_sent) is None and uow.outbox.get(old_pending) is None
        assert uow.outbox.get(fresh) is not None


def test_deleting_a_user_deletes_their_notices(
    factory: SqlUnitOfWorkFactory, engine: Engine
) -> None:
    farmer = make_user(factory, "telegram", "1001")
    notice_id = add(factory, farmer, "一")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": farmer.id})
    with factory(read_only=True) as uow:
        assert uow.outbox.get(notice_id) is None


# ---------------------------------------------------------------------- PostgreSQL: concurrency


@pytest.fixture
def pg_factory(pg_url: str) -> Iterator[SqlUnitOfWorkFactory]:
    with migrated_engine(pg_url) as engine:
        yield SqlUnitOfWorkFactory(engine, tz=SHANGHAI)


@pytest.mark.postgres
def test_a_claim_skips_the_rows_another_open_claim_holds(
    pg_factory: SqlUnitOfWorkFactory,
) -> None:
    farmer = make_user(pg_factory, "telegram", "1001")
    ids = [add(pg_factory, farmer, f"第{n}条") for n in range(4)]
    with pg_factory() as holder:
        first = holder.outbox.claim("telegram", T0, until=T0 + LEASE, limit=2)
        # Not committed: the rows are locked. Another worker does not wait for them.
        assert [c[0] for c in claim(pg_factory, limit=10)] == ids[2:]
        holder.commit()
    assert [c.id for c in first] == ids[:2]
    assert claim(pg_factory, minutes=1) == []


@pytest.mark.postgres
def test_concurrent_claimers_never_get_the_same_notice(pg_factory: SqlUnitOfWorkFactory) -> None:
    users = [make_user(pg_factory, "telegram", str(2000 + n)) for n in range(5)]
    with pg_factory() as uow:
        ids = [uow.outbox.add(users[n % 5], f"第{n}条", T0) for n in range(200)]
        uow.commit()
    workers = 8
    start = threading.Barrier(workers)
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        while True:
            batch = claim(pg_factory, limit=7)
            if not batch:
                return
            with lock:
                got.extend(c[0] for c in batch)

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(worker) for _ in range(workers)]:
            future.result()
    assert Counter(got) == Counter(ids)  # every notice exactly once


@pytest.mark.postgres
def test_concurrent_takes_hand_each_notice_to_one_page(pg_factory: SqlUnitOfWorkFactory) -> None:
    web = make_user(pg_factory, "webchat", "browser-1")
    for n in range(50):
        add(pg_factory, web, f"第{n}条")
    workers = 6
    start = threading.Barrier(workers)

    def take() -> list[str]:
        start.wait()
        with pg_factory() as uow:
            texts = list(uow.outbox.take_for_user(web.id, T0))
            uow.commit()
        return texts

    with ThreadPoolExecutor(workers) as pool:
        results = [f.result() for f in [pool.submit(take) for _ in range(workers)]]
    taken = [t for texts in results for t in texts]
    assert sorted(taken) == sorted(f"第{n}条" for n in range(50))
