"""The console in a real browser: logging in and out, and what a role may not open."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, screenshot
from tests.browser.pages import ErrorPage, LoginPage, TopBar, UsersPage

pytestmark = pytest.mark.browser


def test_an_admin_logs_in_lands_on_the_page_asked_for_and_logs_out(
    live_server: LiveServer, page: Page
) -> None:
    live_server.account("boss", role="admin")
    page.goto(live_server.url + "/users")
    login = LoginPage(page, live_server.url)
    login.expect_shown()  # no session: the login page, remembering where to go
    screenshot(page, "login")
    login.log_in("boss", "wrong-password")
    login.expect_refused()
    login.log_in("boss")
    users = UsersPage(page, live_server.url)
    users.expect_shown()
    expect(page).to_have_url(live_server.url + "/users")
    TopBar(page).expect_user("boss")
    expect(users.row("boss")).to_contain_text("管理员")
    screenshot(page, "users")

    TopBar(page).log_out()
    login.expect_shown()
    page.goto(live_server.url + "/users")  # the session is gone on the server too
    login.expect_shown()
    assert "/login?next=%2Fusers" in page.url


def test_a_cadre_gets_the_403_page_on_users(live_server: LiveServer, page: Page) -> None:
    live_server.account("li")
    LoginPage(page, live_server.url).open("/login?next=/users").log_in("li")
    ErrorPage(page).expect_status("只有管理员")
    response = page.goto(live_server.url + "/users")
    assert response is not None and response.status == 403
    assert "用户管理" not in TopBar(page).nav_titles()
