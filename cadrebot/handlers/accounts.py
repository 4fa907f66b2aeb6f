"""Web console accounts: who may log in, as what, and for which jurisdiction.

An account is a username and an argon2 password hash tied to a core ``users`` row on channel
``web``; that row carries the role (cadre or admin) and the jurisdiction, so every page is
checked by the same rules as the chat commands. A person who also uses Telegram has a second
``users`` row there (registered with an invite code as before).

Sessions are server-side: the browser holds a random token, the database its SHA-256. A
session ends after :attr:`AccountDesk.idle` without a request, at the latest after
:attr:`AccountDesk.lifetime`, and at once on logout, password reset or deactivation.
Failed logins are counted per username and per address; past the limit the password is not
even checked until the window has passed (throttling guessing, not only slowing it).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from cadrebot.handlers.access import NotFound, Refusal, require_admin
from cadrebot.handlers.account_ports import (
    AccountUnitOfWork,
    AccountUnitOfWorkFactory,
    AuditEvent,
    SessionRecord,
    WebAccount,
)
from cadrebot.handlers.commands import ADMINS, DeskPage
from cadrebot.handlers.masking import quotable
from cadrebot.handlers.places import PlaceRegister, township_refusal
from cadrebot.handlers.ports import Role, User

CHANNEL = "web"
USERNAME = re.compile(r"[\w.\-]{2,32}")
MIN_PASSWORD = 8
MAX_PASSWORD = 128
WEB_ROLES = {"admin": Role.ADMIN, "cadre": Role.CADRE}

BAD_LOGIN = "用户名或密码不正确。"
THROTTLED = "登录失败次数过多，请 {minutes} 分钟后再试。"

# Audit actions (``audit_events.action``).
LOGIN = "login"
LOGIN_FAILED = "login_failed"
ACCOUNT_CREATED = "account_created"
PASSWORD_RESET = "password_reset"
ACCOUNT_DISABLED = "account_disabled"
ACCOUNT_ENABLED = "account_enabled"
ID_REVEALED = "id_revealed"


class AccountError(Refusal):
    """Invalid input for an account; ``message`` says what to fix, in Chinese."""


class LoginRefused(Refusal):
    pass


class LoginThrottled(LoginRefused):
    """Too many failures: the password was not even checked."""


@dataclass(frozen=True)
class OpenedSession:
    """A new login: ``token`` goes into the cookie and nowhere else."""

    token: str
    csrf_token: str
    account: WebAccount
    user: User


@dataclass(frozen=True)
class AccountView:
    username: str
    role: Role
    township: str | None
    village: str | None
    active: bool
    created_at: datetime


def session_id_of(token: str) -> str:
    """What the database stores for a cookie's token."""
    return hashlib.sha256(token.encode()).hexdigest()


def clean_username(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


class AccountDesk:
    def __init__(
        self,
        uow_factory: AccountUnitOfWorkFactory,
        *,
        places: PlaceRegister,
        clock: Callable[[], datetime],
        hasher: PasswordHasher | None = None,
        idle: timedelta = timedelta(hours=8),
        lifetime: timedelta = timedelta(days=7),
        max_user_failures: int = 5,
        max_address_failures: int = 30,
        failure_window: timedelta = timedelta(minutes=15),
    ) -> None:
        self._uow = uow_factory
        self._places = places
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self.idle = idle
        self.lifetime = lifetime
        self._max_user_failures = max_user_failures
        self._max_address_failures = max_address_failures
        self._window = failure_window
        self._dummy: str | None = None

    def pages(self) -> list[DeskPage]:
        return [DeskPage("users", "用户管理", "/users", ADMINS)]

    # ------------------------------------------------------------------ accounts

    def create(
        self,
        actor: User | None,
        username: str,
        password: str,
        role: str,
        *,
        township: str | None = None,
        village: str | None = None,
    ) -> AccountView:
        """Create an account. ``actor`` None is the operator at the command line."""
        if actor is not None:
            require_admin(actor)
        name = self._valid_username(username)
        self._check_password(password)
        web_role = WEB_ROLES.get(role.strip().lower())
        if web_role is None:
            raise AccountError("角色只能是 admin（管理员）或 cadre（干部）。")
        township_id = village_id = None
        place_township, place_village = township, village
        if township and township.strip():
            place = self._places.resolve(township, village)
            if place is None:
                raise AccountError(township_refusal(self._places, township)[0])
            township_id, village_id = place.township_id, place.village_id
            place_township, place_village = place.township, place.village
        elif web_role is Role.CADRE:
            raise AccountError("干部账号需要填写所辖乡镇（可再加村）。")
        else:
            place_township = place_village = None
        password_hash = self._hasher.hash(password)
        now = self._clock()
        with self._uow() as uow:
            if uow.accounts.by_username(name) is not None:
                raise AccountError(f"用户名“{name}”已被使用，请换一个。")
            user = uow.users.get_or_create(CHANNEL, name, name)
            user = uow.users.set_role(
                user.id,
                web_role,
                place_township,
                place_village,
                township_id=township_id,
                village_id=village_id,
            )
            try:
                account = uow.accounts.create(user.id, name, password_hash, now)
            except ValueError as exc:
                raise AccountError(f"用户名“{name}”已被使用，请换一个。") from exc
            uow.audit.record(now, actor.id if actor else None, ACCOUNT_CREATED, name, web_role)
            uow.commit()
        return _view(account, user)

    def list_accounts(self, actor: User | None) -> list[AccountView]:
        if actor is not None:
            require_admin(actor)
        with self._uow(read_only=True) as uow:
            return [_view(account, user) for account, user in uow.accounts.list_accounts()]

    def reset_password(self, actor: User | None, username: str, password: str) -> None:
        if actor is not None:
            require_admin(actor)
        self._check_password(password)
        password_hash = self._hasher.hash(password)
        now = self._clock()
        with self._uow() as uow:
            account = self._existing(uow, username)
            uow.accounts.set_password(account.id, password_hash, now)
            uow.accounts.delete_sessions_of(account.id)
            uow.audit.record(now, actor.id if actor else None, PASSWORD_RESET, account.username)
            uow.commit()

    def set_active(self, actor: User | None, username: str, active: bool) -> None:
        """Deactivate (ending every session at once) or reactivate an account."""
        if actor is not None:
            require_admin(actor)
            if not active and clean_username(username) == actor.external_id:
                raise AccountError("不能停用自己正在使用的账号。")
        now = self._clock()
        with self._uow() as uow:
            account = self._existing(uow, username)
            uow.accounts.set_active(account.id, active)
            if not active:
                uow.accounts.delete_sessions_of(account.id)
            action = ACCOUNT_ENABLED if active else ACCOUNT_DISABLED
            uow.audit.record(now, actor.id if actor else None, action, account.username)
            uow.commit()

    def audit_trail(self, actor: User, limit: int = 50) -> Sequence[AuditEvent]:
        require_admin(actor)
        with self._uow(read_only=True) as uow:
            return uow.audit.recent(limit)

    def record(self, actor: User, action: str, subject: str, detail: str = "") -> None:
        """Write an audit event (an admin revealing an ID number, say)."""
        with self._uow() as uow:
            uow.audit.record(self._clock(), actor.id, action, subject, detail)
            uow.commit()

    # ------------------------------------------------------------------ sessions

    def login(self, username: str, password: str, address: str) -> OpenedSession:
        """Open a session, or raise :class:`LoginRefused` (wrong name or password, an
        inactive account, or too many failures; the message does not say which)."""
        name = clean_username(username)[:64]
        now = self._clock()
        user_key, address_key = f"user:{name}", f"ip:{address}"[:128]
        with self._uow() as uow:
            failures = uow.accounts.failures_since({user_key, address_key}, now - self._window)
            if (
                failures.get(user_key, 0) >= self._max_user_failures
                or failures.get(address_key, 0) >= self._max_address_failures
            ):
                minutes = int(self._window.total_seconds() // 60)
                raise LoginThrottled(THROTTLED.format(minutes=minutes))
            account = uow.accounts.by_username(name)
            if not self._verify(account, password[:MAX_PASSWORD]) or account is None:
                uow.accounts.record_failure(user_key, now)
                uow.accounts.record_failure(address_key, now)
                uow.commit()
                raise LoginRefused(BAD_LOGIN)
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            expires = min(now + self.idle, now + self.lifetime)
            uow.accounts.open_session(session_id_of(token), account.id, csrf, now, expires)
            uow.accounts.clear_failures(user_key)
            user = uow.users.get(account.user_id)
            assert user is not None  # the foreign key cascades
            uow.audit.record(now, user.id, LOGIN, account.username)
            if self._hasher.check_needs_rehash(account.password_hash):
                uow.accounts.set_password(account.id, self._hasher.hash(password), now)
            uow.commit()
        return OpenedSession(token, csrf, account, user)

    def session(self, token: str) -> SessionRecord | None:
        """The live session of a cookie's token, or None (unknown, expired, inactive)."""
        if not token or len(token) > 128:
            return None
        session_id = session_id_of(token)
        now = self._clock()
        with self._uow(read_only=True) as uow:
            record = uow.accounts.session(session_id)
        if record is None or not record.account.active or record.expires_at <= now:
            return None
        if record.user.role not in WEB_ROLES.values():
            return None
        # Slide the idle expiry at most once a minute: one write per minute, not per page.
        if now - record.last_seen_at >= timedelta(minutes=1):
            cap = record.created_at + self.lifetime
            with self._uow() as uow:
                uow.accounts.touch_session(session_id, now, min(now + self.idle, cap))
                uow.commit()
        return record

    def logout(self, token: str) -> None:
        with self._uow() as uow:
            uow.accounts.delete_session(session_id_of(token))
            uow.commit()

    def purge_expired(self) -> int:
        """Delete ended sessions and failed logins older than the throttling window (rows
        only; an ended session is refused whether or not its row is still there)."""
        now = self._clock()
        with self._uow() as uow:
            removed = uow.accounts.delete_expired_sessions(now)
            removed += uow.accounts.delete_failures_before(now - self._window)
            uow.commit()
        return removed

    # ------------------------------------------------------------------ helpers

    def _dummy_hash(self) -> str:
        # Verified against when the username does not exist, so an unknown name takes as
        # long to refuse as a wrong password (no username probing by timing). Made on first
        # use: hashing costs tens of milliseconds, and most stacks never see a login.
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _verify(self, account: WebAccount | None, password: str) -> bool:
        stored = account.password_hash if account is not None and account.active else None
        try:
            return (
                self._hasher.verify(stored or self._dummy_hash(), password) and stored is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def _existing(self, uow: AccountUnitOfWork, username: str) -> WebAccount:
        account = uow.accounts.by_username(clean_username(username))
        if account is None:
            named = f"“{clean_username(username)}”" if quotable(username) else ""
            raise NotFound(f"没有找到用户{named}。")
        return account

    @staticmethod
    def _valid_username(username: str) -> str:
        name = clean_username(username)
        if not USERNAME.fullmatch(name) or name.isdigit():
            raise AccountError(
                "用户名需为 2 到 32 个字符，可用汉字、字母、数字、点、下划线和连字符，"
                "不能全是数字。"
            )
        return name

    @staticmethod
    def _check_password(password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AccountError(f"密码长度需为 {MIN_PASSWORD} 到 {MAX_PASSWORD} 个字符。")
        if password.strip() != password or not password.strip():
            raise AccountError("密码首尾不能是空格。")


def _view(account: WebAccount, user: User) -> AccountView:
    return AccountView(
        username=account.username,
        role=user.role,
        township=user.township,
        village=user.village,
        active=account.active,
        created_at=account.created_at,
    )
