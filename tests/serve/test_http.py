"""The HTTP side of a `cadrebot serve` worker: uvicorn serving the worker's Starlette routes
on a ``SO_REUSEPORT`` socket, here in this process on SQLite, with the real PTB application
answering through the fake Bot API server. Then one real `cadrebot serve` process stopped
by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from cadrebot.bot.telegram.serve import (
    MAX_BODY_BYTES,
    SECRET_HEADER,
    ServeConfig,
    run_worker,
)
from cadrebot.bot.workers import listening_sockets
from cadrebot.settings import Settings
from cadrebot.storage import upgrade
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import FakeTelegram, free_port
from tests.support.knowledge import Parts, fresh_dirs, knowledge_for
from tests.support.processes import bot_env, spawn_serve
from tests.support.settings import make_settings

SECRET = "http-test-secret"
HEADERS = {SECRET_HEADER: SECRET}


def _update(update_id: int, chat: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "message_id": 10_000 + update_id,
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private", "first_name": "农户"},
        "from": {"id": chat, "is_bot": False, "first_name": "农户"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


def _sql(database_url: str, statement: str) -> list[Any]:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement))
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


class RunningWorker:
    """:func:`run_worker` as a task of this event loop, stopped through its event."""

    def __init__(self, settings: Settings, parts: Parts) -> None:
        self.settings = settings
        self.config = ServeConfig.from_settings(settings)
        self.url = f"http://127.0.0.1:{self.config.port}"
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_worker(
                settings,
                self.config,
                knowledge=knowledge_for(settings, parts),
                stop=self.stop,
            )
        )
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)
        self.signals_before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.task.done():
                self.task.result()
                raise AssertionError("the worker stopped while starting")
            try:
                if (await self.http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("the worker did not start")

    async def close(self) -> None:
        self.stop.set()
        await self.http.aclose()
        await asyncio.wait_for(self.task, timeout=60)

    async def post(self, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        given = headers or HEADERS
        if isinstance(body, dict):
            return await self.http.post("/telegram", json=body, headers=given)
        return await self.http.post("/telegram", content=body, headers=given)

    async def metrics(self) -> str:
        return (await self.http.get("/metrics")).text


@pytest.fixture
def settings(tmp_path: Path, prebuilt_data_dir: Path, server: FakeTelegram) -> Settings:
    data_dir, knowledge_dir = fresh_dirs(tmp_path, prebuilt_data_dir)
    database_url = sqlite_file_url(tmp_path / "serve.sqlite3")
    upgrade(database_url)
    return make_settings(
        data_dir,
        knowledge_dir,
        database_url=database_url,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=free_port(),
        telegram_rate_limit=0,
    )


@pytest.fixture
async def worker(settings: Settings, parts: Parts) -> AsyncIterator[RunningWorker]:
    running = RunningWorker(settings, parts)
    try:
        await running.ready()
        yield running
    finally:
        await running.close()


def _database(settings: Settings) -> str:
    return settings.resolved_database_url()


# ---------------------------------------------------------------------- the webhook


async def test_an_update_is_confirmed_at_once_and_processed_after(
    worker: RunningWorker, server: FakeTelegram, settings: Settings
) -> None:
    # The turn's reply gets no answer from Telegram (until released, or PTB's 5 s timeout):
    # a webhook that processed before answering could not answer within 2 s.
    server.hold_replies()
    response = await asyncio.wait_for(worker.post(_update(1, 7001, "/mycases")), timeout=2)
    assert (response.status_code, response.text) == (200, "ok")
    await server.wait_until(lambda: server.chat_messages(7001))  # the turn, after it
    server.release_replies()
    deadline = time.monotonic() + 20
    while _sql(_database(settings), "SELECT status FROM inbound_updates") != [("done",)]:
        assert time.monotonic() < deadline, "the update was not finished"
        await asyncio.sleep(0.05)

    # Telegram delivering it again: confirmed, not processed twice.
    again = await worker.post(_update(1, 7001, "/mycases"))
    assert (again.status_code, again.text) == (200, "ok")
    await asyncio.sleep(0.5)
    assert len(server.chat_messages(7001)) == 1
    assert 'cadrebot_updates_total{kind="message"} 1.0' in await worker.metrics()


async def test_refused_requests_store_nothing(
    worker: RunningWorker, server: FakeTelegram, settings: Settings
) -> None:
    good = _update(2, 7002, "/mycases")
    no_secret = await worker.http.post("/telegram", json=good)
    wrong = await worker.post(good, **{SECRET_HEADER: SECRET + "x"})
    assert [(r.status_code, r.text) for r in (no_secret, wrong)] == [(403, "forbidden")] * 2
    for body in (b"not json", b"\xff\xfe", b"[1, 2]", b'"update"', b'{"message": {}}'):
        refused = await worker.post(body)
        assert (refused.status_code, refused.text) == (400, "not an update"), body
    for update_id in ("x", None, [3]):
        refused = await worker.post({**good, "update_id": update_id})
        assert refused.status_code == 400, update_id
    assert (await worker.http.get("/telegram")).status_code == 405
    assert (await worker.http.get("/nowhere")).status_code == 404

    await asyncio.sleep(0.3)
    assert _sql(_database(settings), "SELECT count(*) FROM inbound_updates") == [(0,)]
    assert server.chat_messages(7002) == []
    assert "cadrebot_updates_total{" not in await worker.metrics()


def _padded(update: dict[str, Any], size: int) -> bytes:
    """``update`` as JSON padded with spaces to exactly ``size`` bytes."""
    raw = json.dumps(update).encode()
    return raw + b" " * (size - len(raw))


async def _raw_post(port: int, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request by hand, the body in parts while the answer may already come; the
    status line of the answer. (An HTTP client may fail writing a body the server refused
    to read instead of reading the refusal.)"""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        try:
            writer.write(head)
            for part in body_parts:
                writer.write(part)
                await writer.drain()
        except ConnectionError:
            pass

    sending = asyncio.create_task(send())
    try:
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()


async def test_bodies_over_one_mebibyte_are_refused(
    worker: RunningWorker, server: FakeTelegram, settings: Settings
) -> None:
    exactly = await worker.post(_padded(_update(3, 7003, "/mycases"), MAX_BODY_BYTES))
    assert (exactly.status_code, exactly.text) == (200, "ok")

    port = worker.config.port
    secret = f"{SECRET_HEADER}: {SECRET}\r\n".encode()
    over = _padded(_update(4, 7004, "/mycases"), MAX_BODY_BYTES + 1)
    declared = (
        b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + secret
        + f"Content-Length: {len(over)}\r\n\r\n".encode()
    )
    assert (await _raw_post(port, declared, [over])).startswith(b"HTTP/1.1 413")
    # Chunked, so the size is only known while reading: refused once past the limit.
    chunked = (
        b"POST /telegram HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + secret
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    pieces = [over[i : i + 65536] for i in range(0, len(over), 65536)]
    framed = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]
    assert (await _raw_post(port, chunked, framed)).startswith(b"HTTP/1.1 413")

    await server.wait_until(lambda: server.chat_messages(7003))
    stored = _sql(_database(settings), "SELECT update_id FROM inbound_updates")
    assert stored == [(3,)]


async def test_an_update_that_cannot_be_stored_gets_503(
    worker: RunningWorker, settings: Settings
) -> None:
    _sql(_database(settings), "DROP TABLE inbound_updates")
    response = await worker.post(_update(5, 7005, "/mycases"))
    assert (response.status_code, response.text) == (503, "try again")
    assert 'cadrebot_errors_total{where="inbox"} 1.0' in await worker.metrics()


# ---------------------------------------------------------------------- health and metrics


async def test_health_metrics_and_signals(worker: RunningWorker, settings: Settings) -> None:
    health = await worker.http.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    version = body["index"]["version"]
    assert body["ok"] is True and body["index"]["loaded"] is True and version
    assert body["database"]["reachable"] is True and body["database"]["schema_current"] is True
    assert body["worker"]["pid"] == os.getpid() and body["worker"]["owner"]

    metrics = await worker.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == CONTENT_TYPE_LATEST
    assert f'cadrebot_index_info{{version="{version}"}} 1.0' in metrics.text

    # uvicorn did not take SIGTERM/SIGINT over: the worker's own stop decides.
    # (pytest-asyncio's runner re-installs its own SIGINT handler for every step.)
    assert signal.getsignal(signal.SIGTERM) == worker.signals_before[signal.SIGTERM]
    for signum in (signal.SIGTERM, signal.SIGINT):
        assert not isinstance(getattr(signal.getsignal(signum), "__self__", None), uvicorn.Server)

    _sql(_database(settings), "DELETE FROM alembic_version")  # a schema not migrated
    unhealthy = await worker.http.get("/healthz")
    assert unhealthy.status_code == 503
    assert unhealthy.json()["ok"] is False
    assert unhealthy.json()["database"]["schema_current"] is False


# ---------------------------------------------------------------------- stopping


async def test_a_stop_closes_the_port_first_then_lets_the_turn_finish(
    settings: Settings, parts: Parts, server: FakeTelegram
) -> None:
    worker = RunningWorker(settings, parts)
    await worker.ready()
    server.hold_replies()
    assert (await worker.post(_update(6, 7006, "/mycases"))).status_code == 200
    await server.wait_until(lambda: server.chat_messages(7006))  # the turn is in process
    worker.stop.set()
    await worker.http.aclose()
    deadline = time.monotonic() + 10
    while True:
        try:
            async with httpx.AsyncClient(timeout=2) as fresh:
                await fresh.get(f"{worker.url}/healthz")
        except httpx.ConnectError:
            break  # no longer listening
        assert time.monotonic() < deadline, "the port stayed open"
        await asyncio.sleep(0.05)
    assert not worker.task.done()  # still waiting for the turn in process
    server.release_replies()
    await asyncio.wait_for(worker.task, timeout=30)
    assert _sql(_database(settings), "SELECT status FROM inbound_updates") == [("done",)]


async def test_the_worker_serves_the_web_console_on_the_same_port(
    worker: RunningWorker,
) -> None:
    login = await worker.http.get("/login")
    assert login.status_code == 200
    assert 'name="username"' in login.text and 'name="csrf_token"' in login.text
    staff_page = await worker.http.get("/users")
    assert staff_page.status_code == 303
    assert staff_page.headers["location"].startswith("/login")


def test_workers_share_a_port() -> None:
    port = free_port()
    first = listening_sockets("127.0.0.1", port)
    second = listening_sockets("127.0.0.1", port)  # another worker's, same port
    try:
        assert [s.getsockname()[1] for s in first + second] == [port, port]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        for sock in first + second:
            sock.close()
    held = listening_sockets("127.0.0.1", port)
    try:
        with socket.socket() as plain, pytest.raises(OSError, match="in use"):  # no SO_REUSEPORT
            plain.bind(("127.0.0.1", port))
    finally:
        for sock in held:
            sock.close()


async def test_sigterm_stops_a_serve_process_cleanly(
    server: FakeTelegram, prebuilt_data_dir: Path, tmp_path: Path
) -> None:
    data_dir, knowledge_dir = fresh_dirs(tmp_path, prebuilt_data_dir)
    env = bot_env(
        data_dir=data_dir,
        knowledge_dir=knowledge_dir,
        database_url=sqlite_file_url(tmp_path / "process.sqlite3"),
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_url="https://bot.example.org/telegram",
        telegram_rate_limit=0,
    )
    port = free_port()
    log_path = tmp_path / "serve.log"
    process = spawn_serve(env, workers=1, port=port, log_path=log_path)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert server.webhook == {
                "url": "https://bot.example.org/telegram",
                "secret_token": SECRET,
            }
            response = await http.post(
                "/telegram", json=_update(8, 7008, "/mycases"), headers=HEADERS
            )
            assert response.status_code == 200
            await server.wait_until(lambda: server.chat_messages(7008), within=30)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "serving /telegram" in log
