"""Logging in and out of the console, sessions, CSRF, throttling, the users page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI

from cadrebot.bot.web.context import SESSION_COOKIE
from cadrebot.bot.wiring import ConversationStack
from tests.support.web import PASSWORD, WebClient, csrf_of, login

Maker = Callable[..., WebClient]


def test_a_page_without_a_session_redirects_to_login(anonymous: WebClient) -> None:
    response = anonymous.get("/users?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fusers%3Fx%3D1"


def test_login_sets_an_httponly_samesite_cookie_and_lands_on_next(
    web_stack: ConversationStack, anonymous: WebClient
) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    page = anonymous.get("/login?next=/users")
    response = anonymous.post(
        "/login",
        data={
            "username": "Boss ",  # names are case-folded and trimmed
            "password": PASSWORD,
            "next": "/users",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/users"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; behind TLS the cookie is Secure
    assert "boss" in anonymous.get("/users").text


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    web_stack: ConversationStack, anonymous: WebClient
) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    for name, password in (("boss", "wrong-password"), ("nobody", PASSWORD)):
        page = anonymous.get("/login")
        response = anonymous.post(
            "/login",
            data={"username": name, "password": password, "csrf_token": csrf_of(page.text)},
        )
        assert response.status_code == 401
        assert "用户名或密码不正确" in response.text
        assert SESSION_COOKIE not in anonymous.cookies


def test_logins_are_throttled_after_repeated_failures(
    web_stack: ConversationStack, anonymous: WebClient
) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    token = csrf_of(anonymous.get("/login").text)
    statuses = [
        anonymous.post(
            "/login", data={"username": "boss", "password": f"guess-{n}", "csrf_token": token}
        ).status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    # Even the right password waits until the window has passed.
    response = anonymous.post(
        "/login", data={"username": "boss", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 429
    assert "分钟后再试" in response.text


def test_a_post_without_the_csrf_token_is_refused(
    web_stack: ConversationStack, anonymous: WebClient, web_client: Maker
) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    anonymous.get("/login")
    response = anonymous.post("/login", data={"username": "boss", "password": PASSWORD})
    assert response.status_code == 403
    admin = web_client(role="admin", township=None)
    forged = admin.post(
        "/users",
        data={"username": "mallory", "password": PASSWORD, "role": "admin", "csrf_token": "x" * 43},
    )
    assert forged.status_code == 403
    assert "mallory" not in admin.get("/users").text


def test_logout_ends_the_session_on_the_server(web_client: Maker) -> None:
    admin = web_client(role="admin", township=None)
    stolen = admin.cookies.get(SESSION_COOKIE)
    assert admin.submit("/logout", follow_redirects=False).status_code == 303  # type: ignore[attr-defined]
    replay = WebClient(admin.app)
    replay.cookies.set(SESSION_COOKIE, stolen or "")
    assert replay.get("/users", follow_redirects=False).status_code == 303


def test_a_get_of_logout_does_not_log_out(web_client: Maker) -> None:
    admin = web_client(role="admin", township=None)
    assert "确认退出" in admin.get("/logout").text
    assert admin.get("/users").status_code == 200


def test_deactivation_and_password_reset_end_the_accounts_sessions(
    web_client: Maker,
) -> None:
    admin = web_client(role="admin", township=None, username="boss")
    cadre = web_client(role="cadre", username="li")
    other = web_client(role="cadre", username="wang")
    assert admin.submit("/users/li/disable").status_code == 200  # type: ignore[attr-defined]
    assert cadre.get("/logout", follow_redirects=False).status_code == 303
    assert admin.submit("/users/wang/password", {"password": "new-password-1"}).status_code == 200  # type: ignore[attr-defined]
    assert other.get("/logout", follow_redirects=False).status_code == 303
    login(other, "wang", "new-password-1")
    page = WebClient(admin.app)
    token = csrf_of(page.get("/login").text)
    refused = page.post(
        "/login", data={"username": "li", "password": PASSWORD, "csrf_token": token}
    )
    assert refused.status_code == 401


def test_a_cadre_gets_403_on_the_users_page(web_client: Maker) -> None:
    cadre = web_client()
    response = cadre.get("/users")
    assert response.status_code == 403
    assert "管理员" in response.text
    created = cadre.submit("/users", {"username": "x2", "password": PASSWORD, "role": "admin"})  # type: ignore[attr-defined]
    assert created.status_code == 403


def test_an_admin_creates_a_cadre_account_on_the_page(
    web_client: Maker, web_stack: ConversationStack
) -> None:
    admin = web_client(role="admin", township=None)
    bad = admin.submit(  # type: ignore[attr-defined]
        "/users", {"username": "zhao", "password": PASSWORD, "role": "cadre", "township": "火星镇"}
    )
    assert bad.status_code == 400
    assert "没有找到“火星镇”这个乡镇" in bad.text
    done = admin.submit(  # type: ignore[attr-defined]
        "/users", {"username": "zhao", "password": PASSWORD, "role": "cadre", "township": "潭东"}
    )
    assert done.status_code == 200 and "账号已创建" in done.text
    (view,) = [v for v in web_stack.accounts.list_accounts(None) if v.username == "zhao"]
    assert view.township == "潭东镇"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(
    web_stack: ConversationStack, anonymous: WebClient, target: str
) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    token = csrf_of(anonymous.get("/login").text)
    response = anonymous.post(
        "/login",
        data={"username": "boss", "password": PASSWORD, "next": target, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/cases"


def test_pages_carry_security_headers_and_errors_show_no_trace(
    web_app: FastAPI, web_client: Maker
) -> None:
    admin = web_client(role="admin", township=None)

    async def broken() -> None:
        raise RuntimeError("secret internals 3607")

    web_app.add_api_route("/broken", broken)
    quiet = WebClient(web_app, raise_server_exceptions=False)
    quiet.cookies = admin.cookies
    response = quiet.get("/broken")
    assert response.status_code == 500
    assert "系统出了点问题" in response.text
    assert "RuntimeError" not in response.text and "secret internals" not in response.text
    page = admin.get("/users")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_behind_tls_the_cookies_are_secure(web_stack: ConversationStack, web_app: FastAPI) -> None:
    web_stack.accounts.create(None, "boss", PASSWORD, "admin")
    browser = WebClient(web_app, base_url="https://testserver")
    page = browser.get("/login")
    assert "Secure" in page.headers["set-cookie"]
    response = browser.post(
        "/login",
        data={"username": "boss", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert "Secure" in response.headers["set-cookie"]


def test_an_oversized_body_is_refused_before_it_is_read(
    web_stack: ConversationStack, web_app: FastAPI, anonymous: WebClient
) -> None:
    limit = web_stack.settings.upload_max_bytes + 1024 * 1024
    token = csrf_of(anonymous.get("/login").text)
    response = anonymous.post("/login", data={"username": "x" * (limit + 1), "csrf_token": token})
    assert response.status_code == 413

    def chunks() -> object:
        yield b"csrf_token=" + token.encode() + b"&username="
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536

    streamed = anonymous.post(
        "/login",
        content=chunks(),  # type: ignore[arg-type]
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413


def test_the_navigation_shows_the_pages_of_the_role(web_client: Maker) -> None:
    cadre = web_client().get("/logout").text
    admin = web_client(role="admin", township=None).get("/logout").text
    for path in ("/cases", "/dashboard"):
        assert f'href="{path}"' in cadre and f'href="{path}"' in admin
    for path in ("/knowledge", "/log", "/users"):
        assert f'href="{path}"' not in cadre and f'href="{path}"' in admin


def test_a_refused_account_form_never_shows_an_id_number_or_markup_back(
    web_client: Maker, web_stack: ConversationStack
) -> None:
    admin = web_client(role="admin", township=None)
    typed_id = "3607 0219 9001 0112 34"
    response = admin.submit(  # type: ignore[attr-defined]
        "/users",
        {
            "username": typed_id,
            "password": PASSWORD,
            "role": "cadre",
            "township": "<script>alert(1)</script>=1+1",
        },
    )
    assert response.status_code == 400
    digits = typed_id.replace(" ", "")
    assert typed_id not in response.text and digits not in response.text
    assert "<script>alert(1)" not in response.text
    assert [v.username for v in web_stack.accounts.list_accounts(None)] == ["admin1"]
