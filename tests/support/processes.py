"""Bot processes: their environment, and ``cadrebot serve`` in a child process (the serve
and restart tests, ``bench/serve_load.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

# Read by Settings besides the CADREBOT_* variables (see cadrebot.settings).
_UNPREFIXED = ("DATABASE_URL", "TELEGRAM_BOT_TOKEN")


def bot_env(**settings: object) -> dict[str, str]:
    """This process's environment without any bot setting, plus ``settings`` as the
    ``CADREBOT_<NAME>`` variables (``data_dir=p`` gives ``CADREBOT_DATA_DIR=str(p)``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CADREBOT_") and k not in _UNPREFIXED
    }
    env.update({f"CADREBOT_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def spawn_serve(
    env: dict[str, str], *, workers: int, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """`cadrebot serve --workers N --port P` in a new process, its output into ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadrebot.bot.cli",
                "serve",
                "--workers",
                str(workers),
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def answering_pids(url: str, want: int, within: float) -> set[int]:
    """The pids answering ``url``/healthz, asked on new connections (which the kernel spreads
    over the workers sharing the port) until ``want`` of them answered or ``within`` s."""
    seen: set[int] = set()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and len(seen) < want:
        try:
            response = httpx.get(f"{url}/healthz", headers={"Connection": "close"}, timeout=2)
            if response.status_code == 200:
                seen.add(int(response.json()["worker"]["pid"]))
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return seen
