"""Page objects: one small class per page of the web app, finding things the way a person
does (roles, labels, visible text), so a test reads as what someone does on the page."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.support.web import PASSWORD


class ErrorPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    def expect_status(self, message: str) -> None:
        expect(self.page.get_by_role("alert")).to_contain_text(message)


class LoginPage:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self, path: str = "/login") -> LoginPage:
        self.page.goto(self.base + path)
        return self

    def expect_shown(self) -> None:
        expect(self.page.get_by_role("heading", name="干部 / 管理员登录")).to_be_visible()

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        self.page.get_by_label("用户名").fill(username)
        self.page.get_by_label("密码").fill(password)
        self.page.get_by_role("button", name="登录").click()

    def expect_refused(self) -> None:
        expect(self.page.get_by_role("alert")).to_contain_text("用户名或密码不正确")


class TopBar:
    """The console's header: navigation and the logout button."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def expect_user(self, username: str) -> None:
        expect(self.page.locator("header .who")).to_contain_text(username)

    def nav_titles(self) -> list[str]:
        return (
            self.page.get_by_role("navigation", name="主导航").get_by_role("link").all_inner_texts()
        )

    def log_out(self) -> None:
        self.page.get_by_role("button", name="退出登录").click()


class UsersPage:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self) -> UsersPage:
        self.page.goto(self.base + "/users")
        return self

    def expect_shown(self) -> None:
        expect(self.page.get_by_role("heading", name="用户管理")).to_be_visible()

    def row(self, username: str) -> Locator:
        return self.page.locator(f'tr[data-username="{username}"]')


class ChatPage:
    """The farmers' web chat."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self) -> ChatPage:
        self.page.goto(self.base + "/chat")
        expect(self.input).to_be_visible()
        return self

    @property
    def input(self) -> Locator:
        return self.page.get_by_role("textbox", name="输入消息")

    @property
    def bot_bubbles(self) -> Locator:
        return self.page.locator("#transcript .bubble.bot")

    @property
    def user_bubbles(self) -> Locator:
        return self.page.locator("#transcript .bubble.user")

    @property
    def last_reply(self) -> Locator:
        return self.bot_bubbles.last

    def say(self, text: str, *, expect_reply: str | re.Pattern[str] | None = None) -> None:
        """Type ``text`` and press Enter; wait for the reply (containing ``expect_reply``)."""
        before = self.bot_bubbles.count()
        self.input.fill(text)
        self.input.press("Enter")
        self._wait_for_reply(before, expect_reply)

    def tap(self, label: str, *, expect_reply: str | re.Pattern[str] | None = None) -> None:
        """Tap the last button showing ``label``; wait for a new reply."""
        before = self.bot_bubbles.count()
        self.button(label).click()
        self._wait_for_reply(before, expect_reply)

    def press(self, label: str) -> None:
        """Tap a button that answers in place (a rating): wait for its answer to be shown."""
        with self.page.expect_response(lambda r: r.url.endswith("/chat/send")):
            self.button(label).click()

    def toggle(self, label: str) -> None:
        """Tap a multi-choice option: the question is redrawn in place, toggled."""
        button = self.button(label)
        pressed = button.get_attribute("aria-pressed")
        button.click()
        expect(self.button(label)).not_to_have_attribute("aria-pressed", pressed or "")

    def button(self, label: str) -> Locator:
        return self.page.get_by_role("button", name=label, exact=True).last

    def _wait_for_reply(self, before: int, text: str | re.Pattern[str] | None) -> None:
        expect(self.bot_bubbles).not_to_have_count(before)
        if text is not None:
            expect(self.last_reply).to_contain_text(text)
        expect(self.page.locator("#chat-form button")).to_be_enabled()


class CasesPage:
    """The case list (案件办理)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self) -> CasesPage:
        self.page.goto(self.base + "/cases")
        expect(self.page.get_by_role("heading", name="案件办理")).to_be_visible()
        return self

    def row(self, number: str) -> Locator:
        return self.page.locator(f'tr[data-number="{number}"]')

    def open_case(self, number: str) -> CasePage:
        self.page.get_by_role("link", name=number, exact=True).click()
        case = CasePage(self.page, self.base)
        case.expect_shown(number)
        return case

    def export(self, folder: Path) -> Path:
        """Download the ledger (导出 Excel 台账) into ``folder``, under the name the server
        gave it; the saved file's path."""
        with self.page.expect_download() as download:
            self.page.get_by_role("link", name="导出 Excel 台账").click()
        saved = folder / download.value.suggested_filename
        download.value.save_as(saved)
        return saved


class CasePage:
    """One case: its status, the transitions offered, its history."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self, number: str) -> CasePage:
        self.page.goto(f"{self.base}/cases/{number}")
        return self

    def expect_shown(self, number: str) -> None:
        expect(self.page.get_by_role("heading", level=1)).to_contain_text(number)

    @property
    def status(self) -> Locator:
        return self.page.locator("h1 .status-badge")

    def move_to(self, status: str, note: str = "") -> None:
        form = self.page.locator(f'form.transition[data-to-status="{status}"]')
        if note:
            form.get_by_role("textbox").fill(note)
        form.get_by_role("button", name=f"改为：{status}").click()
        expect(self.page.get_by_role("status")).to_contain_text(f"案件已改为“{status}”")


class KnowledgePage:
    """The documents of the knowledge base, uploads and the build's progress."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self) -> KnowledgePage:
        self.page.goto(self.base + "/knowledge")
        expect(self.page.get_by_role("heading", name="知识库", exact=True)).to_be_visible()
        return self

    def upload(self, path: Path) -> None:
        self.page.get_by_label("政策文件").set_input_files(str(path))
        self.page.get_by_role("button", name="上传并更新索引").click()

    def wait_for_build(self, timeout_ms: float = 180_000) -> None:
        """The progress bar polls by itself (htmx) until the build has finished."""
        finished = self.page.locator('.build[data-stage="done"], .build[data-stage="failed"]')
        expect(finished).to_be_visible(timeout=timeout_ms)
        expect(self.page.locator(".build")).to_have_attribute("data-stage", "done")

    def document_row(self, source: str) -> Locator:
        return self.page.locator(f'tr[data-source="{source}"]')


class HitTestPage:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def search(self, question: str) -> Locator:
        self.page.goto(self.base + "/knowledge/search")
        self.page.get_by_role("textbox", name="问题").fill(question)
        self.page.get_by_role("button", name="测试").click()
        answer = self.page.locator("section.answer")
        expect(answer).to_be_visible()
        return answer


class LogPage:
    """The conversation log (问答记录)."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def open(self) -> LogPage:
        self.page.goto(self.base + "/log")
        expect(self.page.get_by_role("heading", name="问答记录")).to_be_visible()
        return self

    def correct(self, question: str) -> CorrectionsPage:
        row = self.page.locator("table.log tr", has_text=question).first
        row.get_by_role("link", name="写更正").click()
        return CorrectionsPage(self.page, self.base)


class CorrectionsPage:
    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base

    def write(self, answer: str, source: str) -> None:
        self.page.get_by_label("正确答案").fill(answer)
        self.page.get_by_label("依据").fill(source)
        self.page.get_by_role("button", name="保存更正").click()
        expect(self.page.get_by_role("status").first).to_contain_text("更正已保存")
