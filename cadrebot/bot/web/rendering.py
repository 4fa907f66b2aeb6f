"""Server-side rendering with Jinja2 (autoescaped: user input is shown as text, never as
markup). Every page gets the logged-in staff, the navigation generated from the core's page
registry, and the CSRF token for its forms."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from cadrebot.bot.web.context import Staff, web_context
from cadrebot.bot.web.security import (
    ANONYMOUS_CSRF_COOKIE,
    CSRF_FIELD,
    anonymous_csrf_token,
    cookie_is_secure,
)
from cadrebot.handlers.commands import pages_for


@cache
def environment() -> Environment:
    """The template environment (built on first use, not at import)."""
    env = Environment(
        loader=PackageLoader("cadrebot.bot.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    staff: Staff | None = getattr(request.state, "staff", None)
    if staff is not None:
        token = staff.csrf_token
        pages = pages_for(web_context(request).pages, staff.user.role)
    else:
        token = anonymous_csrf_token(request)
        pages = []
    path = request.url.path
    nav = [
        {
            "title": p.title,
            "path": p.path,
            "active": path == p.path or path.startswith(p.path + "/"),
        }
        for p in pages
    ]

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(token)
        )

    values: dict[str, Any] = {
        "request": request,
        "staff": staff,
        "nav": nav,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "flash": None,
    }
    values.update(context or {})
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    new_token = getattr(request.state, "new_anonymous_csrf", None)
    if staff is None and new_token is not None:
        response.set_cookie(
            ANONYMOUS_CSRF_COOKIE,
            new_token,
            httponly=True,
            samesite="strict",
            secure=cookie_is_secure(request),
            path="/",
        )
    return response
