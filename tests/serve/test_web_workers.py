"""`cadrebot web --workers N`: real worker processes on one port and one PostgreSQL, under
the supervisor `serve` uses (a web-only deployment, no Telegram, still uses every core)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cadrebot.bot.web.server import serve_web
from cadrebot.bot.wiring import build_knowledge
from cadrebot.settings import Settings
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import free_port
from tests.support.processes import answering_pids, bot_env

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _status_of_one_response(connection: socket.socket) -> bytes:
    """Read one whole HTTP response (headers, then content-length bytes); its status line."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        body += chunk
    return head.split(b"\r\n", 1)[0]


def _answers_again_on_the_same_connection(port: int, after: float) -> bool:
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        first = _status_of_one_response(connection)
        time.sleep(after)
        try:
            connection.sendall(request)
            again = _status_of_one_response(connection)
        except OSError:
            return False
    return first == again == b"HTTP/1.1 200 OK"


def test_web_workers_share_the_port_answer_and_are_restarted(
    pg_schema_url: str, serve_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, knowledge_dir = serve_dirs
    env = bot_env(data_dir=data_dir, knowledge_dir=knowledge_dir, database_url=pg_schema_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadrebot.bot.cli",
                "web",
                "--workers",
                "2",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        first = answering_pids(url, want=2, within=90)
        assert len(first) == 2, log_path.read_text("utf-8")[-3000:]
        assert supervisor.pid not in first

        # A farmer's browser asks a question (its connection stays on one worker).
        with httpx.Client(base_url=url, timeout=30) as browser:
            token = CSRF.search(browser.get("/chat").text)
            assert token is not None
            reply = browser.post(
                "/chat/send",
                data={"text": "监测对象识别认定要多少天？"},
                headers={"HX-Request": "true", "X-CSRF-Token": token[1]},
            )
            assert reply.status_code == 200 and 'class="bubble bot"' in reply.text
            assert "15天" in reply.text

        # A phone that typed a minute ago keeps its connection, so it stays with its worker
        # (its short transcript and its allowance are that worker's).
        assert _answers_again_on_the_same_connection(port, after=6.0)

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        now: set[int] = set()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (now - first):
            now = answering_pids(url, want=2, within=5)
        assert now - first, "no new worker took the dead one's place"
        assert victim not in now and supervisor.poll() is None
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=60)
    assert supervisor.returncode == 0  # SIGTERM: every worker stopped gracefully
    assert not answering_pids(url, want=1, within=1)


def test_several_web_workers_need_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=sqlite_file_url(tmp_path / "cases.sqlite3"))
    code = serve_web(
        settings, host="127.0.0.1", port=free_port(), knowledge=build_knowledge(settings), workers=2
    )
    assert code == 2
    assert "多个工作进程需要共享 PostgreSQL 数据库" in capsys.readouterr().err
    assert not (tmp_path / "cases.sqlite3").exists()  # refused before anything was opened
