"""The TOML files of the knowledge folder that operators and admins edit (places, offers,
corrections, the lexicon): reading them, and locking one for a read-change-write."""

from __future__ import annotations

import fcntl
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def read_toml(path: Path, what: str, error: type[ValueError]) -> dict[str, Any] | None:
    """The table in ``path``; None when there is no such file. A file that does not parse
    raises ``error`` with a Chinese message naming ``what`` (地名册, 申报提示文件) and why."""
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{what} {path} 格式有误：{problem}") from problem


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive across threads and processes (an ``flock`` on ``.<name>.lock`` beside
    ``path``): read, change and write ``path`` as one step."""
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
