"""Bot processes: their environment, and ``cadrebot serve`` in a child process (the serve
and restart tests, ``bench/serve_load.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
