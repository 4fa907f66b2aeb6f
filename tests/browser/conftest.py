"""Browser tests: the real web app served by uvicorn on a loopback port, driven by Debian's
Chromium through Playwright (never a downloaded browser).

Each test gets its own server on a real stack (the tiny knowledge base indexed once per
session by the real embedder, the shipped place register, a SQLite database of its own) and a
fresh browser context; the browser itself is started once for the package. Without
/usr/bin/chromium the tests fail and say how to get it (``.ci/run`` installs it); a developer
without it deselects them with ``-m "not browser"``.

Playwright's sync API runs its own event loop: these tests and fixtures are all sync, so
pytest-asyncio (auto mode) never has a loop running around them.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.wiring import ConversationStack, build_conversation_stack
from tests.support.database import sqlite_file_url
from tests.support.fake_telegram import free_port
from tests.support.knowledge import Parts, build_tiny_index, fresh_dirs, knowledge_for
from tests.support.paths import REPO, REPO_KNOWLEDGE
from tests.support.settings import make_settings
from tests.support.web import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844}
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
WECHAT = (
    "Mozilla/5.0 (Linux; Android 13; V2148A Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160027 "
    "MMWEBSDK/20231202 MMWEBID/2247 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)


@dataclass
class LiveServer:
    """The web app listening on ``url``, on ``stack``."""

    url: str
    stack: ConversationStack

    def account(self, username: str, role: str = "cadre", township: str | None = "潭东镇") -> str:
        """An account made as the operator makes one (``cadrebot user add``)."""
        self.stack.accounts.create(
            None, username, PASSWORD, role, township=township if role == "cadre" else None
        )
        return username


@pytest.fixture(scope="session")
def parts() -> Parts:
    return Parts.warm()


@pytest.fixture(scope="session")
def prebuilt_data_dir(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    return build_tiny_index(tmp_path_factory.mktemp("browser-index"), parts)


@pytest.fixture
def live_stack(
    tmp_path: Path, prebuilt_data_dir: Path, parts: Parts
) -> Iterator[ConversationStack]:
    data_dir, knowledge_dir = fresh_dirs(tmp_path, prebuilt_data_dir)
    shutil.copy(REPO_KNOWLEDGE / "places.toml", knowledge_dir / "places.toml")
    settings = make_settings(
        data_dir, knowledge_dir, database_url=sqlite_file_url(tmp_path / "web.sqlite3")
    )
    stack = build_conversation_stack(settings, knowledge=knowledge_for(settings, parts))
    with stack:
        yield stack


@pytest.fixture
def live_server(live_stack: ConversationStack) -> Iterator[LiveServer]:
    """uvicorn serving the app in a background thread (its own event loop there)."""
    app = create_web_app(web_context_of(live_stack))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the web app did not start listening")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", live_stack)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Debian's Chromium is missing ({CHROMIUM}): run .ci/run, which installs it "
            "(apt-get install chromium chromium-driver), or deselect these tests with "
            '-m "not browser".',
            pytrace=False,
        )
    _no_running_loop()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def _no_running_loop() -> None:
    """Playwright's sync API refuses to run inside an event loop: fail clearly if a test
    ever ends up in one (an async test or fixture around it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    pytest.fail("browser tests must be sync: an asyncio loop is running", pytrace=False)


Contexts = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Contexts]:
    """``new_context(phone=False, user_agent=None)``: a fresh browser context (no cookies
    shared with any other), closed after the test."""
    made: list[BrowserContext] = []

    def make(*, phone: bool = False, user_agent: str | None = None) -> BrowserContext:
        options: dict[str, object] = {"locale": "zh-CN", "accept_downloads": True}
        if phone:
            options.update(
                viewport=PHONE,
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                user_agent=user_agent or ANDROID_CHROME,
            )
        elif user_agent:
            options["user_agent"] = user_agent
        context = browser.new_context(**options)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture
def page(new_context: Contexts) -> Page:
    """A desktop page in a fresh context."""
    return new_context().new_page()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under test-output/screenshots (for people to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
