"""Roles on a channel: who is an admin (settings), and cadres registered with invite codes.

Admins are named in the settings by their channel user ids; the database role follows the
settings on every message, so removing an id from the settings takes the rights away.
An admin creates a one-time invite code bound to a 乡镇 (and optionally a 村) with
``/invite 乡镇 村``, matched against the place register (:mod:`cadrebot.handlers.places`):
the code, and the cadre who redeems it, carry the register ids, by which access goes. The
cadre sends ``/register 邀请码`` and gets that jurisdiction. ``/places`` lists the register.
Admins list open codes and registered cadres with ``/invites`` and revoke a code (and the
cadre role it granted) with ``/revoke 邀请码``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from cadrebot.handlers.commands import ADMINS, Command, CommandCall
from cadrebot.handlers.places import PlaceRegister, township_refusal
from cadrebot.handlers.ports import (
    ConcurrentUpdateError,
    NewInvite,
    NotFoundError,
    OfficeUnitOfWork,
    Role,
    User,
    UserRepository,
)

log = logging.getLogger(__name__)

# No 0/O, 1/I/L: codes are read out over the phone and typed on small keyboards.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
CODE_PREFIX = "YQ"


def new_invite_code() -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{CODE_PREFIX}-{body}"


def normalize_code(text: str) -> str:
    """What a user typed as a code: case, spaces and a missing dash do not matter."""
    code = "".join(text.split()).upper().replace("－", "-").replace("—", "-")
    if code.startswith(CODE_PREFIX) and not code.startswith(f"{CODE_PREFIX}-"):
        code = f"{CODE_PREFIX}-{code[len(CODE_PREFIX) :]}"
    return code


def jurisdiction_label(township: str | None, village: str | None) -> str:
    return f"{township or ''}{village or ''}" or "（未指定）"


class RoleBook:
    """Resolves the user behind a message and keeps the admin role in step with settings.

    ``admin_ids``: per channel, the channel user ids that are admins.
    """

    def __init__(self, admin_ids: Mapping[str, frozenset[str]] | None = None) -> None:
        self._admin_ids = dict(admin_ids or {})

    def identify_in(
        self, users: UserRepository, channel: str, external_id: str, display_name: str
    ) -> User:
        user = users.get_or_create(channel, external_id, display_name)
        listed = external_id in self._admin_ids.get(channel, frozenset())
        if listed and user.role is not Role.ADMIN:
            user = users.set_role(user.id, Role.ADMIN, None, None)
            log.info("user %s promoted to admin (listed in settings)", user.id)
        elif not listed and user.role is Role.ADMIN:
            user = users.set_role(user.id, Role.FARMER, None, None)
            log.warning("user %s is no longer listed as admin; role removed", user.id)
        return user


class InviteDesk:
    """The invite and registration commands."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime],
        valid_days: int = 7,
        code_factory: Callable[[], str] = new_invite_code,
        places: PlaceRegister | None = None,
    ) -> None:
        self._places = places or PlaceRegister()
        self._clock = clock
        self._valid = timedelta(days=valid_days)
        self._code_factory = code_factory

    def commands(self) -> list[Command]:
        return [
            Command("register", "干部登记", self._register, usage="邀请码", menu=True),
            Command("invite", "生成干部邀请码", self._invite, ADMINS, usage="乡镇 [村]"),
            Command("invites", "邀请码和干部名单", self._overview, ADMINS),
            Command("revoke", "作废邀请码", self._revoke, ADMINS, usage="邀请码"),
            Command("places", "地名册（可登记的乡镇和村）", self._list_places, ADMINS),
        ]

    def _list_places(self, call: CommandCall) -> None:
        call.out.say(self._places.listing())

    def _invite(self, call: CommandCall) -> None:
        call.out.say(self.create(call.uow, call.user, call.argument))

    def _register(self, call: CommandCall) -> None:
        call.out.say(self.register(call.uow, call.user, call.argument))

    def _overview(self, call: CommandCall) -> None:
        call.out.say(self.overview(call.uow))

    def _revoke(self, call: CommandCall) -> None:
        call.out.say(self.revoke(call.uow, call.argument))

    def create(self, uow: OfficeUnitOfWork, admin: User, argument: str) -> str:
        parts = argument.split()
        if not parts or len(parts) > 2:
            return (
                "用法：/invite 乡镇 [村]，例如：/invite 大塘埠镇 长岭村（只写乡镇则为乡镇级干部）。"
            )
        place = self._places.resolve(parts[0], parts[1] if len(parts) == 2 else None)
        if place is None:
            reason, _ = township_refusal(self._places, parts[0])
            return f"{reason}\n发送 /places 查看地名册。"
        township, village = place.township, place.village
        now = self._clock()
        for _ in range(5):  # a collision is astronomically rare; retry a few times anyway
            try:
                invite = uow.invites.create(
                    NewInvite(
                        code=self._code_factory(),
                        township=township,
                        village=village,
                        created_by_id=admin.id,
                        created_at=now,
                        expires_at=now + self._valid,
                        township_id=place.township_id,
                        village_id=place.village_id,
                    )
                )
                break
            except ConcurrentUpdateError:
                continue
        else:
            return "生成邀请码失败，请稍后再试。"
        expires = f"{invite.expires_at:%Y-%m-%d %H:%M}" if invite.expires_at else "长期"
        return (
            f"邀请码：{invite.code}\n"
            f"辖区：{jurisdiction_label(township, village)}\n"
            f"有效期至：{expires}，只能使用一次。\n"
            f"请转交干部本人，在本机器人中发送：/register {invite.code}"
        )

    def register(self, uow: OfficeUnitOfWork, user: User, argument: str) -> str:
        code = normalize_code(argument)
        if not code:
            return "用法：/register 邀请码，例如：/register YQ-ABCD2345（邀请码向管理员索取）。"
        if user.role is Role.ADMIN:
            return "您是管理员，已拥有全部权限，无需登记。"
        now = self._clock()
        refusal = "邀请码无效或已失效，请核对后重试，或向管理员重新索取。"
        invite = uow.invites.get(code)
        if invite is None or not invite.usable(now):
            return refusal
        try:
            uow.invites.redeem(code, user.id, now)
        except (NotFoundError, ConcurrentUpdateError):
            return refusal
        cadre = uow.users.set_role(
            user.id,
            invite.role,
            invite.township,
            invite.village,
            township_id=invite.township_id,
            village_id=invite.village_id,
        )
        log.info("user %s registered as %s", cadre.id, cadre.role)
        place = jurisdiction_label(cadre.township, cadre.village)
        return (
            f"登记成功！您已登记为{place}的干部。\n"
            "发送 /cases 查看辖区案件，/overdue 查看即将到期和已逾期事项，/help 查看全部命令。"
        )

    def overview(self, uow: OfficeUnitOfWork) -> str:
        now = self._clock()
        codes = [c for c in uow.invites.list_codes() if c.usable(now)]
        cadres = uow.users.list_users(roles=frozenset({Role.CADRE}))
        lines = ["未使用的邀请码："]
        lines += [
            f"{c.code} {jurisdiction_label(c.township, c.village)} "
            f"有效期至{c.expires_at:%m-%d %H:%M}"
            if c.expires_at
            else f"{c.code} {jurisdiction_label(c.township, c.village)}"
            for c in codes
        ] or ["（无）"]
        lines.append("已登记的干部：")
        lines += [
            f"{u.display_name or '（无名）'}（{u.channel} {u.external_id}）"
            f"{jurisdiction_label(u.township, u.village)}"
            + ("（不在地名册中，请重新发放邀请码）" if u.township_id is None else "")
            for u in cadres
        ] or ["（无）"]
        lines.append("发送“/revoke 邀请码”作废邀请码，已登记的干部同时取消干部权限。")
        return "\n".join(lines)

    def revoke(self, uow: OfficeUnitOfWork, argument: str) -> str:
        code = normalize_code(argument)
        if not code:
            return "用法：/revoke 邀请码，例如：/revoke YQ-ABCD2345"
        try:
            invite = uow.invites.revoke(code)
        except NotFoundError:
            return f"没有找到邀请码 {code}。"
        demoted = ""
        if invite.used_by_id is not None:
            holder = uow.users.get(invite.used_by_id)
            # Only the role this code granted: the holder may have re-registered since.
            if (
                holder is not None
                and holder.role is Role.CADRE
                and (holder.township_id, holder.village_id, holder.village)
                == (invite.township_id, invite.village_id, invite.village)
            ):
                uow.users.set_role(holder.id, Role.FARMER, None, None)
                demoted = f"，{holder.display_name or '该用户'}的干部权限已取消"
        return f"邀请码 {code} 已作废{demoted}。"
