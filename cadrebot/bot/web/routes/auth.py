"""Login and logout of the console (cadres and admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cadrebot.bot.web.context import SESSION_COOKIE, StaffDep, WebDep, session_of
from cadrebot.bot.web.rendering import render
from cadrebot.bot.web.security import cookie_is_secure, csrf_protect
from cadrebot.handlers.accounts import LoginRefused, LoginThrottled

router = APIRouter(dependencies=[Depends(csrf_protect)])


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/cases"
    return target


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    if await session_of(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
async def login(
    request: Request,
    web: WebDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=500)] = "/cases",
) -> Response:
    address = request.client.host if request.client else "unknown"
    try:
        opened = await run_in_threadpool(web.stack.accounts.login, username, password, address)
    except LoginRefused as refusal:
        throttled = isinstance(refusal, LoginThrottled)
        context = {"next": safe_next(next), "error": refusal.message}
        return render(request, "auth/login.html", context, status_code=429 if throttled else 401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request),
        path="/",
    )
    return response


@router.get("/logout")
async def logout_page(request: Request, staff: StaffDep) -> Response:
    """A GET does not log out (a link or an image could trigger it); it shows the button."""
    return render(request, "auth/logout.html")


@router.post("/logout")
async def logout(request: Request, web: WebDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(web.stack.accounts.logout, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
