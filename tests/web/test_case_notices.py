"""A cadre's status change in the web console reaches the farmer: on Telegram through the
notice outbox and a Telegram process's job (the fake Bot API on loopback, a second stack on
the same database, as ``cadrebot web`` and ``cadrebot run`` share one), in the web chat when
the farmer comes back."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from cadrebot.bot.telegram import build_services
from cadrebot.bot.web.routes.chat import BROWSER_COOKIE
from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.ports import NewCase, Role
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import VALID_ID
from tests.support.knowledge import Parts, fresh_dirs, knowledge_for
from tests.support.settings import make_settings
from tests.support.telegram import running
from tests.support.web import WebClient

Maker = Callable[..., WebClient]
TANDONG = "rjxq.tandong"
FARMER_CHAT = 7301


def file_case(stack: ConversationStack, channel: str, external_id: str) -> str:
    """A case of 潭东镇 filed by a farmer of ``channel``, as the intake stores it."""
    now = stack.service.clock()
    with stack.database.unit_of_work() as uow:
        farmer = uow.users.get_or_create(channel, external_id, "农户")
        case = uow.cases.create(
            NewCase(
                case_type="risk_report",
                number_prefix="FX",
                status="已受理",
                fields={"name": "张三", "id_number": VALID_ID, "township": "潭东镇"},
                submitter_id=farmer.id,
                township="潭东镇",
                village="某村",
                submitted_at=now - timedelta(days=1),
                due_dates={"识别认定": now.date() + timedelta(days=10)},
                township_id=TANDONG,
            )
        )
        uow.commit()
    return case.number


def move(client: WebClient, number: str, to_status: str, note: str = "") -> int:
    response = client.post(
        f"/cases/{number}/status",
        data={"to_status": to_status, "note": note, "csrf_token": client.csrf},
        follow_redirects=False,
    )
    return response.status_code


async def test_a_move_in_the_web_console_reaches_the_farmers_telegram_chat(
    web_stack: ConversationStack,
    web_client: Maker,
    server: FakeTelegram,
    parts: Parts,
    prebuilt_data_dir: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    number = file_case(web_stack, "telegram", str(FARMER_CHAT))
    cadre = web_client()
    # The Telegram process: its own stack and data dir, the same database.
    data_dir, knowledge_dir = fresh_dirs(tmp_path / "telegram", prebuilt_data_dir)
    settings = make_settings(
        data_dir,
        knowledge_dir,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        database_url=database_url,
        notice_poll_seconds=0.2,
    )
    with build_services(settings, knowledge=knowledge_for(settings, parts)) as telegram:
        async with running(server, telegram) as bot:
            farmer = bot.user(FARMER_CHAT, "农户")
            assert await asyncio.to_thread(move, cadre, number, "核实中") == 303
            told = await farmer.expect("办理状态已更新为：核实中")
            assert number in told["text"]
            note = f"经入户核实收入稳定，身份证 {VALID_ID}"
            assert await asyncio.to_thread(move, cadre, number, "不予纳入", note) == 303
            told = await farmer.expect("办理状态已更新为：不予纳入")
            assert "经入户核实收入稳定" in told["text"] and VALID_ID not in told["text"]
            await asyncio.sleep(0.8)  # more runs of the job send nothing more
    assert len(farmer.messages()) == 2


def test_a_move_reaches_a_web_chat_farmer_when_they_come_back(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    number = file_case(web_stack, "webchat", "browser-7")
    cadre = web_client()
    assert move(cadre, number, "核实中") == 303
    [told] = web_stack.service.pending_notices("webchat", "browser-7")
    assert number in told and "办理状态已更新为：核实中" in told
    assert web_stack.service.pending_notices("webchat", "browser-7") == []


def test_a_refused_move_tells_the_farmer_nothing(
    web_stack: ConversationStack, web_client: Maker
) -> None:
    number = file_case(web_stack, "webchat", "browser-8")
    cadre = web_client()
    assert move(cadre, number, "不予纳入", "") == 400  # needs a reason
    assert web_stack.service.pending_notices("webchat", "browser-8") == []


def test_the_web_chat_page_shows_the_notice_when_the_farmer_comes_back(
    web_stack: ConversationStack, web_client: Maker, anonymous: WebClient
) -> None:
    anonymous.get("/chat")  # the browser gets its chat cookie
    key = hashlib.sha256(anonymous.cookies[BROWSER_COOKIE].encode("ascii")).hexdigest()
    number = file_case(web_stack, "webchat", key)
    assert move(web_client(), number, "核实中") == 303
    page = anonymous.get("/chat").text
    assert f"{number}" in page and "办理状态已更新为：核实中" in page
    assert web_stack.service.pending_notices("webchat", key) == []


def test_a_move_made_in_the_web_chat_waits_for_the_farmer_in_the_outbox(
    web_stack: ConversationStack, web_app: FastAPI
) -> None:
    """A cadre registered in the web chat (an invite code works on every channel) moves a
    web-chat farmer's case there. The farmer's browser is not the one acting, and the web
    chat cannot reach it: the notice must wait in the database, where any worker, or this
    one after a restart, shows it when the farmer comes back, not in the acting process's
    memory."""
    cadre_browser = WebClient(web_app)
    cadre_browser.get("/chat")
    cadre_key = hashlib.sha256(cadre_browser.cookies[BROWSER_COOKIE].encode("ascii")).hexdigest()
    with web_stack.database.unit_of_work() as uow:
        cadre = uow.users.get_or_create("webchat", cadre_key, "网页干部")
        uow.users.set_role(cadre.id, Role.CADRE, "潭东镇", None, township_id=TANDONG)
        uow.commit()
    number = file_case(web_stack, "webchat", "browser-9")
    page = cadre_browser.get("/chat").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    response = cadre_browser.post(
        "/chat/send",
        data={"text": f"/setstatus {number} 核实中"},
        headers={"HX-Request": "true", "X-CSRF-Token": token[1]},
    )
    assert response.status_code == 200 and "核实中" in response.text
    [told] = web_stack.service.pending_notices("webchat", "browser-9")
    assert number in told and "办理状态已更新为：核实中" in told
