"""Rows to the core's plain data, where several repositories read the same table."""

from __future__ import annotations

from typing import Any

from cadrebot.handlers.ports import Role, User


def user_of(row: Any, prefix: str = "") -> User:
    """The ``users`` row in ``row`` (its columns labelled ``<prefix><name>`` in a join)."""

    def get(name: str) -> Any:
        return getattr(row, f"{prefix}{name}")

    return User(
        id=get("id"),
        channel=get("channel"),
        external_id=get("external_id"),
        display_name=get("display_name"),
        role=Role(get("role")),
        township=get("township"),
        village=get("village"),
        township_id=get("township_id"),
        village_id=get("village_id"),
    )
