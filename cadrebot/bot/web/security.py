"""CSRF protection and the security headers of every response.

Logged-in forms carry the session's own CSRF token (stored server-side with the session).
Forms used before logging in (the login form, the farmers' web chat) use a double-submit
token: a random cookie the page repeats in a hidden field; a forged cross-site form cannot
read the cookie, so it cannot repeat it. htmx requests send the token as a header instead.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadrebot.bot.web.context import session_of

ANONYMOUS_CSRF_COOKIE = "cadrebot_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# No inline script anywhere (htmx is a static file and configured by a meta tag); htmx
# swaps may set inline styles, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
)


async def expected_csrf_token(request: Request) -> str | None:
    record = await session_of(request)
    if record is not None:
        return record.csrf_token
    return request.cookies.get(ANONYMOUS_CSRF_COOKIE)


def anonymous_csrf_token(request: Request) -> str:
    """The double-submit token of a visitor without a session (made once per browser; the
    renderer sets the cookie when it is new)."""
    existing = request.cookies.get(ANONYMOUS_CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing
    token: str | None = getattr(request.state, "new_anonymous_csrf", None)
    if token is None:
        token = secrets.token_urlsafe(32)
        request.state.new_anonymous_csrf = token
    return token


async def csrf_protect(request: Request) -> None:
    """Router dependency: refuse an unsafe request without the right token (403)."""
    if request.method in _SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    expected = await expected_csrf_token(request)
    if not given or not expected or not hmac.compare_digest(given, expected):
        raise HTTPException(status_code=403, detail="csrf")


def cookie_is_secure(request: Request) -> bool:
    """Secure cookies when the browser talks TLS (directly, or to a proxy that says so;
    uvicorn trusts X-Forwarded-Proto from the addresses in --forwarded-allow-ips)."""
    return request.url.scheme == "https"


class SecurityHeaders:
    """Adds the security headers to every HTTP response (pure ASGI, so streaming and
    background tasks are untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                # Pages show personal data: no caching in shared or browser caches.
                if not scope["path"].startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413: by Content-Length before reading,
    and while reading a body sent without one (chunked), so no request can fill memory or
    disk. Routes with a smaller limit of their own (the webhook's 1 MiB) keep it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await _too_large(send)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the app's body read: the error pages answer 413.
                    raise HTTPException(status_code=413)
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send) -> None:
    body = "提交的内容太大了。".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
