"""Real `cadrebot serve` worker processes on one PostgreSQL, and the fake Bot API server.

The fake server runs on its own event loop in a background thread, so the tests (plain
functions) can start, kill and wait for worker processes while it answers the workers'
Bot API calls. Updates are POSTed straight to the workers' webhook ports, round-robin, and
to the next worker when one does not answer (what nginx's ``proxy_next_upstream`` does).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.fake_telegram import FakeTelegram, free_port
from tests.support.processes import bot_env, spawn_serve
from tests.support.settings import ADMIN_ID

SECRET = "serve-test-secret"
Json = dict[str, Any]


class FakeServerThread:
    """A :class:`FakeTelegram` on an event loop of its own thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server = FakeTelegram()
        self.call(self.server.start())

    def call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def texts(self, chat_id: int) -> list[str]:
        async def read() -> list[str]:
            return [m.get("text", "") for m in self.server.chat_messages(chat_id)]

        result: list[str] = self.call(read())
        return result


@dataclass
class Worker:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Cluster:
    fake: FakeServerThread
    env: dict[str, str]
    log_dir: Path
    workers: list[Worker] = field(default_factory=list)
    _message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(500_000))
    _update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _next: Iterator[int] = field(default_factory=lambda: itertools.count())

    def __post_init__(self) -> None:
        self.http = httpx.Client(timeout=10)

    def start_worker(self, *, workers: int = 1) -> Worker:
        port = free_port()
        log_path = self.log_dir / f"worker-{port}.log"
        process = spawn_serve(self.env, workers=workers, port=port, log_path=log_path)
        worker = Worker(port, process, log_path)
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: Worker, within: float = 90.0) -> Json:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not worker.alive():
                raise AssertionError(f"worker died:\n{worker.log_path.read_text()[-3000:]}")
            try:
                response = self.http.get(f"{worker.url}/healthz", timeout=2)
                if response.status_code == 200:
                    body: Json = response.json()
                    return body
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready:\n{worker.log_path.read_text()[-3000:]}")

    def kill(self, worker: Worker) -> None:
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=10)

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.alive():
                worker.process.terminate()
        for worker in self.workers:
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        self.http.close()

    # -- users' side

    def update(self, user_id: int, text: str) -> Json:
        message: Json = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": f"用户{user_id}"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"用户{user_id}"},
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def post(self, update: Json, *, to: Worker | None = None) -> Worker:
        """POST ``update`` to ``to`` or the next live worker; on to the next one if it fails."""
        candidates = [to] if to is not None else self._rotation()
        for worker in candidates:
            try:
                response = self.http.post(
                    f"{worker.url}/telegram",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                return worker
        raise AssertionError(f"no worker took update {update['update_id']}")

    def say(self, user_id: int, text: str, *, to: Worker | None = None) -> Worker:
        return self.post(self.update(user_id, text), to=to)

    def _rotation(self) -> list[Worker]:
        live = [w for w in self.workers if w.alive()]
        start = next(self._next) % max(1, len(live))
        return live[start:] + live[:start]

    def wait_for(self, predicate: Callable[[], Any], within: float = 60.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            time.sleep(0.2)


def worker_env(
    *, data_dir: Path, knowledge_dir: Path, database_url: str, api_url: str, token: str
) -> dict[str, str]:
    env = bot_env(
        data_dir=data_dir,
        knowledge_dir=knowledge_dir,
        database_url=database_url,
        telegram_bot_token=token,
        telegram_api_url=api_url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_admin_ids=ADMIN_ID,
        telegram_rate_limit=0,
        flood_max_messages=1000,
        serve_lease_seconds=3,
        serve_sweep_seconds=0.5,
        index_poll_seconds=0.5,
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env
