"""Error pages: the core's refusals as 404 / 403, no session as a redirect to /login, and
never a stack trace (the exception goes to the log, the user gets a polite page)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from cadrebot.bot.web.context import LoginRequired
from cadrebot.bot.web.rendering import render
from cadrebot.handlers.access import NotFound, PermissionDenied

log = logging.getLogger(__name__)

_MESSAGES = {
    400: "请求的内容不正确，请返回上一页检查后再试。",
    403: "抱歉，您没有权限访问这个页面。",
    404: "没有找到这个页面或记录。",
    405: "不支持这种操作方式。",
    413: "提交的内容太大了。",
    429: "操作太频繁了，请稍后再试。",
    500: "抱歉，系统出了点问题，请稍后再试。",
}


def error_page(request: Request, status: int, message: str | None = None) -> Response:
    text = message or _MESSAGES.get(status, _MESSAGES[500])
    if request.headers.get("HX-Request"):
        # An htmx swap: a fragment, not a whole page inside the page.
        return render(request, "error_fragment.html", {"message": text}, status_code=status)
    return render(request, "error.html", {"status": status, "message": text}, status_code=status)


def install_error_pages(app: FastAPI) -> None:
    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotFound)
        return error_page(request, 404, exc.message)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PermissionDenied)
        return error_page(request, 403, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_page(request, exc.status_code)

    async def bad_request(request: Request, exc: Exception) -> Response:
        # Never echo the validation details: they quote what was sent.
        return error_page(request, 400)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_page(request, 500)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(NotFound, not_found)
    app.add_exception_handler(PermissionDenied, forbidden)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(Exception, server_error)
