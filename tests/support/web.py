"""Driving the web app in tests: a logged-in TestClient per role, CSRF tokens read from the
page as a browser would."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from cadrebot.bot.wiring import ConversationStack

PASSWORD = "correct-horse-9"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found[1]


class WebClient(TestClient):
    """A TestClient that knows its page's CSRF token (``csrf``) and posts forms with it."""

    csrf: str = ""

    def submit(self, url: str, data: dict[str, str] | None = None, **kwargs: object) -> object:
        return self.post(url, data={**(data or {}), "csrf_token": self.csrf}, **kwargs)  # type: ignore[arg-type]


def login(client: WebClient, username: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    landing = client.get("/logout")  # every staff page carries the session's token
    client.csrf = csrf_of(landing.text)


def account_maker(stack: ConversationStack, app: FastAPI) -> Callable[..., WebClient]:
    """``make(role="cadre", township="潭东镇", village=None, username=None)``: an account
    created as the operator would (``cadrebot user add``) and a client logged in as it."""
    made: list[WebClient] = []

    def make(
        role: str = "cadre",
        township: str | None = "潭东镇",
        village: str | None = None,
        username: str | None = None,
    ) -> WebClient:
        name = username or f"{role}{len(made) + 1}"
        stack.accounts.create(
            None,
            name,
            PASSWORD,
            role,
            township=township if role == "cadre" or township else None,
            village=village,
        )
        client = WebClient(app)
        login(client, name)
        made.append(client)
        return client

    return make
