"""Health of a worker: database reachable and migrated, index loaded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine

from cadrebot.ops import check_database, check_health
from cadrebot.ops.probe import main as probe_main
from cadrebot.storage import head_revision, make_engine, upgrade
from tests.support.database import sqlite_file_url


@pytest.fixture
def fresh_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_healthy_worker(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    report = check_health(fresh_engine, lambda: "v20260301T000000-abc123")
    assert report.ok
    assert report.http_status == 200
    body = report.to_json()
    assert body["index"] == {"loaded": True, "version": "v20260301T000000-abc123"}
    assert body["database"]["reachable"] is True
    assert body["database"]["revision"] == head_revision()
    assert body["database"]["schema_current"] is True
    assert body["database"]["backend"] == fresh_engine.dialect.name
    json.dumps(body)  # serialisable as it is


def test_no_index_loaded_is_unhealthy(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    report = check_health(fresh_engine, lambda: None)
    assert not report.ok
    assert report.http_status == 503
    assert report.to_json()["index"] == {"loaded": False, "version": None}


def test_a_searcher_that_raises_counts_as_no_index(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)

    def broken() -> str:
        raise RuntimeError("index half loaded")

    report = check_health(fresh_engine, broken)
    assert not report.index_loaded and not report.ok


def test_unmigrated_database_is_reachable_but_not_ready(fresh_engine: Engine) -> None:
    health = check_database(fresh_engine)
    assert health.reachable
    assert health.revision is None
    assert not health.schema_current
    assert not check_health(fresh_engine, lambda: "v1").ok


def test_unreachable_database() -> None:
    # Nothing listens on port 1; the error is reported by type, never by message.
    engine = make_engine(
        "postgresql+psycopg://cadrebot:secret@127.0.0.1:1/cadrebot?connect_timeout=2"
    )
    try:
        report = check_health(engine, lambda: "v1")
    finally:
        engine.dispose()
    assert not report.ok and report.http_status == 503
    assert report.database.reachable is False
    assert report.database.error == "OperationalError"
    assert "secret" not in json.dumps(report.to_json())


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = json.dumps({"ok": self.status == 200, "path": self.path}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[tuple[HTTPServer, str]]:
    server = HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/healthz"
    server.shutdown()
    server.server_close()
    thread.join()


def test_probe_follows_the_status_of_healthz(
    healthz_server: tuple[HTTPServer, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = healthz_server
    assert probe_main(["--url", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["healthy"] is True and out["body"]["path"] == "/healthz"

    monkeypatch.setattr(_Healthz, "status", 503)
    assert probe_main(["--url", url]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == 503

    monkeypatch.setenv("CADREBOT_HEALTH_URL", url)  # the default when --url is not given
    monkeypatch.setattr(_Healthz, "status", 200)
    assert probe_main([]) == 0
    capsys.readouterr()


def test_probe_without_a_server_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main(["--url", "http://127.0.0.1:1/healthz", "--timeout", "1"]) == 1
    assert json.loads(capsys.readouterr().out)["healthy"] is False


def test_local_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CADREBOT_DATABASE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CADREBOT_DATA_DIR", str(tmp_path))
    engine = make_engine(sqlite_file_url(tmp_path / "cadrebot.sqlite3"))
    upgrade(engine)
    engine.dispose()
    assert probe_main(["--local"]) == 1  # no index published yet
    assert json.loads(capsys.readouterr().out)["index"]["loaded"] is False

    version = "v20260301T000000000000-abc123"
    (tmp_path / "index" / version).mkdir(parents=True)
    (tmp_path / "index" / version / "manifest.json").write_text("{}", encoding="utf-8")
    (tmp_path / "index" / "CURRENT").write_text(version + "\n", encoding="utf-8")
    assert probe_main(["--local"]) == 0
    assert json.loads(capsys.readouterr().out)["index"]["version"] == version
