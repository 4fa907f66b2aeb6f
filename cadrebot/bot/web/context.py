"""What every page handler gets: the web context (the conversation stack and the page
registry) and, on staff pages, the logged-in :class:`Staff`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.account_ports import SessionRecord
from cadrebot.handlers.commands import DeskPage
from cadrebot.handlers.ports import User
from cadrebot.settings import Settings

SESSION_COOKIE = "cadrebot_session"


@dataclass
class WebContext:
    settings: Settings
    stack: ConversationStack
    pages: list[DeskPage]
    clock: Callable[[], datetime]


@dataclass(frozen=True)
class Staff:
    """The logged-in cadre or admin of a request."""

    user: User  # the core user (channel "web"): role and jurisdiction
    username: str
    session_id: str
    csrf_token: str


class LoginRequired(Exception):
    """No live session: the app answers with a redirect to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def web_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


WebDep = Annotated[WebContext, Depends(web_context)]


async def session_of(request: Request) -> SessionRecord | None:
    """The request's live session (looked up once per request, then cached)."""
    if hasattr(request.state, "session_record"):
        cached: SessionRecord | None = request.state.session_record
        return cached
    token = request.cookies.get(SESSION_COOKIE, "")
    record = None
    if token:
        accounts = web_context(request).stack.accounts
        record = await run_in_threadpool(accounts.session, token)
    request.state.session_record = record
    return record


async def current_staff(request: Request) -> Staff:
    record = await session_of(request)
    if record is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    staff = Staff(record.user, record.account.username, record.session_id, record.csrf_token)
    request.state.staff = staff
    return staff


StaffDep = Annotated[Staff, Depends(current_staff)]
