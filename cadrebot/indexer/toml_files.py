"""Reading the TOML files of the knowledge folder that operators edit (places, offers)."""

from __future__ import annotations

import tomllib
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
