"""Reads the place register (``places.toml`` in the knowledge folder) at start.

The file lists, per county (``[[county]]``), its townships with a stable id, the official
name, former names (``aliases``) and optionally the registered villages::

    [[county]]
    name = "信丰县"
    townships = [
      { id = "xf.datangbu", name = "大塘埠镇", villages = [{ id = "xf.dtb.x", name = "…村" }] },
    ]

A missing file gives an open register (townships accepted as typed); a malformed one is an
error at start, with the reason in Chinese, so a typo never silently opens the register.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cadrebot.handlers.places import PlaceRegister, Township, Village
from cadrebot.indexer.toml_files import read_toml

log = logging.getLogger(__name__)

PLACES_FILE = "places.toml"


class PlacesFileError(ValueError):
    """The place file cannot be used; the message says what to fix (Chinese)."""


def places_path(knowledge_dir: Path) -> Path:
    return knowledge_dir / PLACES_FILE


def load_places(path: Path) -> PlaceRegister:
    """The register in ``path`` (an open register if there is no such file)."""
    data = read_toml(path, "地名册", PlacesFileError)
    if data is None:
        log.warning("no place register at %s: townships are accepted as typed", path)
        return PlaceRegister()
    register = parse_places(data, source=str(path))
    log.info("place register: %d townships from %s", len(register.townships()), path)
    return register


def parse_places(data: dict[str, Any], *, source: str = PLACES_FILE) -> PlaceRegister:
    townships: list[Township] = []
    counties = data.get("county", [])
    if not isinstance(counties, list):
        raise PlacesFileError(f"地名册 {source}：county 应写作 [[county]] 表。")
    for county in counties:
        county_name = _text(county, "name", source, required=False)
        entries = county.get("townships", [])
        if not isinstance(entries, list):
            raise PlacesFileError(f"地名册 {source}：{county_name} 的 townships 应为列表。")
        for entry in entries:
            villages = tuple(
                Village(
                    id=_text(v, "id", source),
                    name=_text(v, "name", source),
                    aliases=_names(v, source),
                )
                for v in _list(entry, "villages", source)
            )
            townships.append(
                Township(
                    id=_text(entry, "id", source),
                    name=_text(entry, "name", source),
                    county=county_name,
                    aliases=_names(entry, source),
                    villages=villages,
                )
            )
    try:
        return PlaceRegister(townships)
    except ValueError as error:
        raise PlacesFileError(f"地名册 {source}：{error}") from error


def _text(entry: Any, key: str, source: str, *, required: bool = True) -> str:
    value = entry.get(key, "") if isinstance(entry, dict) else None
    if not isinstance(value, str) or (required and not value.strip()):
        raise PlacesFileError(f"地名册 {source}：条目 {entry!r} 缺少“{key}”。")
    return value.strip()


def _names(entry: dict[str, Any], source: str) -> tuple[str, ...]:
    aliases = entry.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise PlacesFileError(f"地名册 {source}：{entry.get('name')} 的 aliases 应为文字列表。")
    return tuple(a.strip() for a in aliases if a.strip())


def _list(entry: dict[str, Any], key: str, source: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise PlacesFileError(f"地名册 {source}：{entry.get('name')} 的 {key} 应为列表。")
    return value
