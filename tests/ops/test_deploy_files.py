"""What can be checked of the deployment files without a Docker engine."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from cadrebot.bot.cli import _parser
from tests.support.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
NGINX = REPO / "deploy" / "nginx.conf"


def _instructions(stage: str | None = None) -> list[dict[str, Any]]:
    """The Dockerfile's instructions, of one stage (by its ``AS`` name) or of all."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    out: list[dict[str, Any]] = []
    current = None
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            current = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
        if stage is None or current == stage:
            out.append(item)
    return out


def _exec_form(value: str) -> list[str]:
    """``["a", "b"]`` (exec form) or shell form, as an argument list."""
    value = value.strip()
    if value.startswith("["):
        parsed: list[str] = json.loads(value)
        return parsed
    return shlex.split(value)


def _last(instruction: str, stage: str = "runtime") -> str:
    found = [i["value"] for i in _instructions(stage) if i["instruction"] == instruction]
    assert found, f"no {instruction} in stage {stage}"
    return str(found[-1])


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    froms = [i["value"] for i in parser.structure if i["instruction"] == "FROM"]
    assert len(froms) >= 2
    assert froms[-1].split()[-1] == "runtime"
    # The base image is a global ARG (before the first FROM), used by every stage.
    global_args = dict(
        i["value"].split("=", 1)
        for i in parser.structure[: [i["instruction"] for i in parser.structure].index("FROM")]
        if i["instruction"] == "ARG"
    )
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", global_args["PYTHON_IMAGE"])
    assert all(f.startswith("${PYTHON_IMAGE} AS ") for f in froms)
    assert any(
        i["instruction"] == "COPY" and "--from=build" in i["value"]
        for i in _instructions("runtime")
    )


def test_runtime_runs_as_a_non_root_user() -> None:
    user = _last("USER").split(":")[0]
    assert user not in ("root", "0", "")
    # The user is created in the image before it is switched to.
    runs = " ".join(i["value"] for i in _instructions("runtime") if i["instruction"] == "RUN")
    assert "useradd" in runs and user in runs


def test_the_command_is_a_cadrebot_subcommand() -> None:
    command = _exec_form(_last("CMD"))
    assert command[0] == "cadrebot"
    _parser().parse_args(command[1:])  # SystemExit if the subcommand or a flag is unknown


def test_the_index_is_built_at_image_build_time() -> None:
    runs = [i["value"] for i in _instructions("build") if i["instruction"] == "RUN"]
    assert any("cadrebot index" in r for r in runs)


def test_healthcheck_runs_the_probe(tmp_path: Path) -> None:
    value = _last("HEALTHCHECK")
    assert value.startswith("--") or value.startswith("CMD")
    command = _exec_form(value[value.index("CMD") + 3 :])
    assert command[:3] == ["python", "-m", "cadrebot.ops.probe"]
    # The probe runs in a plain venv and reports an unreachable worker as unhealthy.
    done = subprocess.run(
        [sys.executable, *command[1:], "--url", "http://127.0.0.1:1/healthz"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["healthy"] is False


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".env", ".venv", "var", ".git"):
        assert entry in ignored
    copied = [i["value"].split()[0] for i in _instructions() if i["instruction"] == "COPY"]
    for source in copied:
        if not source.startswith("--"):
            assert source not in ignored, f"{source} is copied but .dockerignore drops it"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "bot", "nginx"} <= set(services)
    bot = services["bot"]
    assert bot["deploy"]["replicas"] not in (None, 1)  # N workers
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in bot["environment"]["DATABASE_URL"]
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    _parser().parse_args(bot["command"][1:])
    assert bot["command"][0] == "cadrebot"
    # Every worker sees the same published index versions.
    assert any(v.startswith("index:") and v.endswith("/var/index") for v in bot["volumes"])
    assert "index" in compose["volumes"] and "pgdata" in compose["volumes"]
    assert services["nginx"]["ports"] == ["443:443"]
    assert "ports" not in bot  # workers are reached through nginx only
    assert any("nginx.conf:/etc/nginx/nginx.conf" in v for v in services["nginx"]["volumes"])


def test_compose_port_matches_nginx_upstream(compose: dict[str, Any]) -> None:
    port = compose["services"]["bot"]["environment"]["CADREBOT_TELEGRAM_WEBHOOK_PORT"]
    nginx = NGINX.read_text(encoding="utf-8")
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", nginx, re.S)
    assert upstream is not None
    name, body = upstream.groups()
    assert re.search(rf"server\s+bot:{port}\b", body)
    assert re.search(rf"proxy_pass\s+http://{name};", nginx)
    path = compose["services"]["bot"]["environment"]["CADREBOT_TELEGRAM_WEBHOOK_PATH"]
    assert re.search(rf"location\s+=\s+/{path}\s*\{{", nginx)
    # Braces balance: a cheap syntax check in the absence of `nginx -t`.
    assert nginx.count("{") == nginx.count("}")
