"""Roles: refusals in Chinese, invite codes, registration, revocation, role-aware help."""

from __future__ import annotations

import re

from cadrebot.handlers.commands import ADMIN_ONLY, CADRE_ONLY
from cadrebot.handlers.ports import Role
from tests.support.telegram import Harness


async def test_farmer_is_refused_admin_and_cadre_commands(bot: Harness) -> None:
    farmer = bot.user(3001, "张三")
    for command in ("/kb", "/stats", "/invite 大塘埠镇", "/search 监测"):
        farmer.say(command)
        await farmer.expect(ADMIN_ONLY)
    farmer.say("/cases")
    await farmer.expect(CADRE_ONLY)
    farmer.say("/export")
    await farmer.expect(CADRE_ONLY)
    farmer.send_document(
        "policy.txt", "关于印发某某办法的通知\n正文内容很长很长很长很长很长很长。".encode()
    )
    await farmer.expect("只有管理员可以")
    assert bot.server.documents == []


async def test_invite_register_list_and_revoke(bot: Harness) -> None:
    admin = bot.admin()
    admin.say("/invite 大塘埠镇 长岭村")
    invite = await admin.expect("邀请码：")
    code = re.search(r"YQ-[A-Z0-9]{8}", invite["text"])
    assert code is not None

    cadre = bot.user(3002, "刘干部")
    cadre.say(f"/register {code[0].lower()}")  # case does not matter
    await cadre.expect("登记成功")
    with bot.services.database.unit_of_work() as uow:
        user = uow.users.find("telegram", "3002")
    assert user is not None
    assert (user.role, user.township, user.village) == (Role.CADRE, "大塘埠镇", "长岭村")
    cadre.say("/cases")
    await cadre.expect("辖区：大塘埠镇长岭村")
    cadre.say("/help")
    await cadre.expect("/cases")

    intruder = bot.user(3003, "路人")
    intruder.say(f"/register {code[0]}")
    await intruder.expect("邀请码无效或已失效")

    admin.say("/invites")
    listing = await admin.expect("已登记的干部")
    assert "刘干部" in listing["text"]

    admin.say(f"/revoke {code[0]}")
    await admin.expect("干部权限已取消")
    cadre.say("/cases")
    await cadre.expect(CADRE_ONLY)


async def test_admin_role_follows_settings_and_help_shows_admin_commands(bot: Harness) -> None:
    admin = bot.admin()
    admin.say("/help")
    await admin.expect("/kbremove")
    with bot.services.database.unit_of_work() as uow:
        user = uow.users.find("telegram", str(admin.id))
    assert user is not None and user.role is Role.ADMIN
