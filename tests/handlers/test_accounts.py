"""The accounts desk on a real database: validation, sessions and their ends, throttling,
the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher

from cadrebot.handlers.access import NotFound, PermissionDenied
from cadrebot.handlers.accounts import (
    ACCOUNT_CREATED,
    LOGIN,
    AccountDesk,
    AccountError,
    LoginRefused,
    session_id_of,
)
from cadrebot.handlers.places import PlaceRegister, Township, Village
from cadrebot.handlers.ports import Role
from cadrebot.storage import CaseDatabase
from tests.support.clock import FixedClock, at

PASSWORD = "correct-horse-9"
PLACES = PlaceRegister(
    [Township("tandong", "潭东镇", "蓉江新区", villages=(Village("tandong-changling", "长岭村"),))]
)
# Cheap hashing parameters: the tests check the desk, not argon2's cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at(2026, 12, 1))


@pytest.fixture
def desk(database: CaseDatabase, clock: FixedClock) -> AccountDesk:
    return AccountDesk(database.unit_of_work, places=PLACES, clock=clock, hasher=FAST)


def test_a_cadre_account_gets_the_registers_jurisdiction(
    desk: AccountDesk, database: CaseDatabase
) -> None:
    view = desk.create(None, " Li.Wei ", PASSWORD, "cadre", township="潭东", village="长岭")
    assert (view.username, view.role, view.township, view.village) == (
        "li.wei",
        Role.CADRE,
        "潭东镇",
        "长岭村",
    )
    with database.unit_of_work(read_only=True) as uow:
        user = uow.users.find("web", "li.wei")
        account = uow.accounts.by_username("li.wei")
    assert user is not None and user.township_id == "tandong"
    assert user.village_id == "tandong-changling"
    assert account is not None and account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash


@pytest.mark.parametrize(
    ("name", "password", "role", "township", "says"),
    [
        ("x", PASSWORD, "cadre", "潭东", "用户名需为"),
        ("123456", PASSWORD, "cadre", "潭东", "不能全是数字"),
        ("a b", PASSWORD, "cadre", "潭东", "用户名需为"),
        ("<b>li</b>", PASSWORD, "cadre", "潭东", "用户名需为"),
        ("li", "short", "cadre", "潭东", "密码长度"),
        ("li", " padded-pass ", "cadre", "潭东", "首尾不能是空格"),
        ("li", PASSWORD, "farmer", "潭东", "角色只能是"),
        ("li", PASSWORD, "cadre", None, "需要填写所辖乡镇"),
        ("li", PASSWORD, "cadre", "火星镇", "没有找到“火星镇”这个乡镇"),
    ],
)
def test_bad_account_input_is_refused_politely_and_nothing_is_created(
    desk: AccountDesk,
    name: str,
    password: str,
    role: str,
    township: str | None,
    says: str,
) -> None:
    with pytest.raises(AccountError) as refused:
        desk.create(None, name, password, role, township=township)
    assert says in refused.value.message
    assert desk.list_accounts(None) == []


def test_a_taken_username_is_refused(desk: AccountDesk) -> None:
    desk.create(None, "li", PASSWORD, "admin")
    with pytest.raises(AccountError, match="已被使用"):
        desk.create(None, "LI", PASSWORD, "cadre", township="潭东")


def test_only_admins_manage_accounts(desk: AccountDesk) -> None:
    desk.create(None, "boss", PASSWORD, "admin")
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    cadre = desk.login("li", PASSWORD, "10.0.0.1").user
    admin = desk.login("boss", PASSWORD, "10.0.0.1").user
    for attempt in (
        lambda: desk.create(cadre, "wang", PASSWORD, "admin"),
        lambda: desk.list_accounts(cadre),
        lambda: desk.reset_password(cadre, "boss", "new-password-1"),
        lambda: desk.set_active(cadre, "boss", False),
        lambda: desk.audit_trail(cadre),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    desk.create(admin, "wang", PASSWORD, "cadre", township="潭东")
    with pytest.raises(AccountError, match="不能停用自己"):
        desk.set_active(admin, "boss", False)
    with pytest.raises(NotFound):
        desk.reset_password(admin, "nobody", "new-password-1")


def test_a_session_slides_while_used_and_ends_when_idle_or_too_old(
    desk: AccountDesk, clock: FixedClock
) -> None:
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    opened = desk.login("li", PASSWORD, "10.0.0.1")
    assert desk.session(opened.token) is not None
    # Used every 7 hours, the 8-hour idle limit never hits, but the 7-day lifetime does.
    for _ in range(23):
        clock.now += timedelta(hours=7)
        assert desk.session(opened.token) is not None
    clock.now += timedelta(hours=7)
    assert desk.session(opened.token) is None
    second = desk.login("li", PASSWORD, "10.0.0.1")
    clock.now += timedelta(hours=8, seconds=1)
    assert desk.session(second.token) is None


def test_the_database_holds_only_the_tokens_hash(desk: AccountDesk, database: CaseDatabase) -> None:
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    opened = desk.login("li", PASSWORD, "10.0.0.1")
    with database.unit_of_work(read_only=True) as uow:
        assert uow.accounts.session(opened.token) is None
        assert uow.accounts.session(session_id_of(opened.token)) is not None


def test_logout_reset_and_deactivation_end_sessions(desk: AccountDesk) -> None:
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    first = desk.login("li", PASSWORD, "10.0.0.1")
    desk.logout(first.token)
    assert desk.session(first.token) is None
    second = desk.login("li", PASSWORD, "10.0.0.1")
    desk.reset_password(None, "li", "new-password-1")
    assert desk.session(second.token) is None
    with pytest.raises(LoginRefused):
        desk.login("li", PASSWORD, "10.0.0.1")
    third = desk.login("li", "new-password-1", "10.0.0.1")
    desk.set_active(None, "li", False)
    assert desk.session(third.token) is None
    with pytest.raises(LoginRefused, match="用户名或密码不正确"):
        desk.login("li", "new-password-1", "10.0.0.1")
    desk.set_active(None, "li", True)
    assert desk.session(desk.login("li", "new-password-1", "10.0.0.1").token) is not None


def test_failures_throttle_per_name_and_per_address_until_the_window_passes(
    database: CaseDatabase, clock: FixedClock
) -> None:
    desk = AccountDesk(
        database.unit_of_work,
        places=PLACES,
        clock=clock,
        hasher=FAST,
        max_user_failures=3,
        max_address_failures=5,
    )
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    for _ in range(3):
        with pytest.raises(LoginRefused, match="不正确"):
            desk.login("li", "wrong-password", "10.0.0.1")
    with pytest.raises(LoginRefused, match="15 分钟后再试"):
        desk.login("li", PASSWORD, "10.0.0.2")
    clock.now += timedelta(minutes=16)
    assert desk.login("li", PASSWORD, "10.0.0.2").user.role is Role.CADRE
    # Guessing many names from one address is throttled by the address.
    for n in range(5):
        with pytest.raises(LoginRefused, match="不正确"):
            desk.login(f"user{n}", "wrong-password", "10.9.9.9")
    with pytest.raises(LoginRefused, match="分钟后再试"):
        desk.login("li", PASSWORD, "10.9.9.9")


def test_the_audit_trail_records_account_changes_and_logins(desk: AccountDesk) -> None:
    desk.create(None, "boss", PASSWORD, "admin")
    admin = desk.login("boss", PASSWORD, "10.0.0.1").user
    desk.create(admin, "li", PASSWORD, "cadre", township="潭东")
    trail = desk.audit_trail(admin)
    assert [(e.action, e.subject) for e in trail][:3] == [
        (ACCOUNT_CREATED, "li"),
        (LOGIN, "boss"),
        (ACCOUNT_CREATED, "boss"),
    ]
    assert all(PASSWORD not in e.detail for e in trail)


def test_purge_removes_ended_sessions_and_old_failures_only(
    desk: AccountDesk, database: CaseDatabase, clock: FixedClock
) -> None:
    desk.create(None, "li", PASSWORD, "cadre", township="潭东")
    old = desk.login("li", PASSWORD, "10.0.0.1")
    with pytest.raises(LoginRefused):
        desk.login("li", "wrong-password", "10.0.0.1")
    clock.now += timedelta(hours=9)
    fresh = desk.login("li", PASSWORD, "10.0.0.1")
    # The idle session, and the address's failure (the name's went with the good login).
    assert desk.purge_expired() == 2
    with database.unit_of_work(read_only=True) as uow:
        assert uow.accounts.session(session_id_of(old.token)) is None
        assert uow.accounts.session(session_id_of(fresh.token)) is not None
