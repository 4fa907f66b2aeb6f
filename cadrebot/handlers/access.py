"""Refusals every channel maps the same way: not found, and not allowed.

A feature module raises these with a Chinese message for the user. The chat channels show
the message as a reply; the web channel answers :class:`NotFound` with 404 and
:class:`PermissionDenied` with 403 (a case outside a cadre's jurisdiction is *not found*, so
guessing case numbers tells nothing). The role of every actor is checked here, in the core,
never in a channel.
"""

from __future__ import annotations

from collections.abc import Collection

from cadrebot.handlers.ports import Role, User

ADMIN_ONLY_PAGE = "抱歉，只有管理员可以使用此功能。"
STAFF_ONLY_PAGE = "抱歉，只有乡村干部和管理员可以使用此功能。"


class Refusal(Exception):
    """A refusal to show to the user; ``message`` is Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(Refusal):
    """The thing does not exist, or the actor may not know that it does."""


class PermissionDenied(Refusal):
    """The actor's role does not allow this."""


def require_role(actor: User, roles: Collection[Role], message: str) -> None:
    """Raise :class:`PermissionDenied` with ``message`` unless ``actor`` has one of ``roles``."""
    if actor.role not in roles:
        raise PermissionDenied(message)


def require_admin(actor: User) -> None:
    require_role(actor, (Role.ADMIN,), ADMIN_ONLY_PAGE)


def require_staff(actor: User) -> None:
    require_role(actor, (Role.ADMIN, Role.CADRE), STAFF_ONLY_PAGE)
