"""The aiohttp transport PTB sends through: errors mapped as PTB's own, uploads as httpx sends them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from telegram import InputFile
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from cadrebot.bot.telegram.transport import AiohttpRequest


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            fields[name] = value.filename if isinstance(value, web.FileField) else value
        seen.append(fields)
        return web.json_response({"ok": True, "result": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_parameters_arrive_as_a_form(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = server
    async with AiohttpRequest() as request:
        data = RequestData(
            [RequestParameter("chat_id", 7, None), RequestParameter("text", "您好", None)]
        )
        result = await request.post(f"{base}/echo", request_data=data)
    assert result is True
    assert seen == [{"chat_id": "7", "text": "您好"}]


async def test_an_upload_keeps_its_chinese_file_name(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = server
    document = InputFile(b"PK\x03\x04", filename="案件台账-大塘埠镇.xlsx", attach=True)
    data = RequestData(
        [
            RequestParameter("chat_id", 7, None),
            RequestParameter("document", document.attach_uri, input_files=[document]),
        ]
    )
    async with AiohttpRequest() as request:
        await request.post(f"{base}/echo", request_data=data)
    (fields,) = seen
    assert fields["chat_id"] == "7"
    assert document.attach_name is not None
    assert fields[document.attach_name] == "案件台账-大塘埠镇.xlsx"


async def test_a_slow_server_times_out_as_ptb_expects(
    server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, _ = server
    async with AiohttpRequest(read_timeout=0.1, write_timeout=0.1) as request:
        with pytest.raises(TimedOut):
            await request.post(f"{base}/slow")


async def test_an_unreachable_server_is_a_network_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError):
            await request.post(f"http://127.0.0.1:{port}/getMe")


async def test_requests_need_initialize() -> None:
    request = AiohttpRequest()
    # PTB wraps what its transport raises: the cause is kept.
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post("http://127.0.0.1:9/getMe")
