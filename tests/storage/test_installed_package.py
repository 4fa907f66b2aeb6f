"""The migrations work from a built and installed wheel, not only from the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from cadrebot.storage import head_revision
from tests.support.database import sqlite_file_url
from tests.support.paths import REPO

MIGRATE_AND_REPORT = """
import sys
import cadrebot.storage as storage
assert storage.__file__.startswith(sys.argv[2]), storage.__file__
storage.upgrade(sys.argv[1])
print(storage.current_revision(sys.argv[1]))
"""


def test_wheel_ships_the_migrations_and_upgrade_runs_from_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copytree(
        REPO / "cadrebot", source / "cadrebot", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        cwd=source,
    )
    (wheel,) = wheels.glob("cadrebot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "cadrebot/storage/migrations/env.py" in names
    assert "cadrebot/storage/migrations/script.py.mako" in names
    assert any(n.startswith("cadrebot/storage/migrations/versions/0001_") for n in names)
    assert any(n.startswith("cadrebot/storage/migrations/versions/0002_") for n in names)
    # The web console's templates and static files (htmx with its licence) ship too.
    assert "cadrebot/bot/web/templates/base.html" in names
    assert "cadrebot/bot/web/templates/auth/login.html" in names
    assert "cadrebot/bot/web/static/htmx-2.0.11.min.js" in names
    assert "cadrebot/bot/web/static/htmx-LICENSE.txt" in names

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = sqlite_file_url(tmp_path / "installed.sqlite3")
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", MIGRATE_AND_REPORT, url, str(site)],
        check=True,
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == head_revision()
