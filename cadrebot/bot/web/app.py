"""The web app: one FastAPI application for everything the project serves over HTTP.

One router per feature (``routes/``): login, cases, dashboard, knowledge, log, users, and
the farmers' chat. ``cadrebot web`` serves it; ``cadrebot serve`` adds the Telegram
webhook and metrics routes (``extra_routes``) on the same port. /healthz is always there.

Built with :func:`create_web_app` from an opened conversation stack; nothing happens at
import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles

from cadrebot.bot.web.context import WebContext, session_of
from cadrebot.bot.web.errors import install_error_pages
from cadrebot.bot.web.routes import auth, cases, chat, dashboard, knowledge, log, users
from cadrebot.bot.web.security import BodySizeLimit, SecurityHeaders
from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.commands import DeskPage
from cadrebot.ops.health import check_health

logger = logging.getLogger(__name__)

FEATURE_ROUTERS = (auth, cases, dashboard, knowledge, log, users, chat)


def desk_pages(stack: ConversationStack) -> list[DeskPage]:
    """The console's pages, as the features declare them (navigation order)."""
    return [*stack.case_board.pages(), *stack.knowledge_desk.pages(), *stack.accounts.pages()]


def web_context_of(
    stack: ConversationStack, *, clock: Callable[[], datetime] | None = None
) -> WebContext:
    now = clock or stack.service.clock
    return WebContext(stack.settings, stack, desk_pages(stack), now)


HOUSEKEEPING_SECONDS = 600.0


def _housekeeping(context: WebContext) -> None:
    """Ended sessions and old failed logins go; abandoned forms are removed as the core's
    retention rule says, their owners' notices queued in the outbox (a browser is told
    when it comes back, a Telegram user by a Telegram process); old notices leave the
    outbox (a deployment may run `cadrebot web` without Telegram); the web chat's
    transcripts go 30 minutes after their last change."""
    context.stack.accounts.purge_expired()
    context.stack.service.clean_up_forms(deliver=())  # every notice waits in the outbox
    context.stack.service.purge_notices()
    context.stack.chat_transcripts.purge(older_than=context.clock() - chat.TRANSCRIPT_TTL)


def create_web_app(
    context: WebContext,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    housekeeping_seconds: float | None = HOUSEKEEPING_SECONDS,
) -> FastAPI:
    """The app. ``housekeeping_seconds`` None: no periodic clean-up (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if housekeeping_seconds is not None:
            task = asyncio.create_task(_keep_house(context, housekeeping_seconds))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # No OpenAPI pages: the console is HTML, and its schema is nobody's business.
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.web = context
    for module in FEATURE_ROUTERS:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("cadrebot.bot.web", "static")]), name="static")
    app.router.routes.extend(extra_routes)
    if not any(getattr(route, "path", None) == "/healthz" for route in extra_routes):
        app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/", _home, methods=["GET"], include_in_schema=False)
    # Uploads may be as large as the knowledge folder allows, plus the form around them.
    app.add_middleware(BodySizeLimit, max_bytes=context.settings.upload_max_bytes + 1024 * 1024)
    app.add_middleware(SecurityHeaders)
    install_error_pages(app)
    return app


async def _keep_house(context: WebContext, every: float) -> None:
    while True:
        try:
            await asyncio.to_thread(_housekeeping, context)
        except Exception:
            logger.exception("web housekeeping failed; trying again later")
        await asyncio.sleep(every)


async def _home(request: Request) -> Response:
    """Staff with a session go to their desk; everyone else to the farmers' chat, which
    links to the staff login."""
    if await session_of(request) is not None:
        return RedirectResponse("/cases", status_code=303)
    return RedirectResponse("/chat", status_code=303)


async def _healthz(request: Request) -> Response:
    stack: ConversationStack = request.app.state.web.stack
    searcher = stack.knowledge.searcher
    report = await asyncio.to_thread(
        check_health, stack.database.engine, lambda: searcher.loaded_version
    )
    # which process answered: with `web --workers N` they share the port
    body = report.to_json() | {"worker": {"pid": os.getpid()}}
    return JSONResponse(body, status_code=report.http_status)
