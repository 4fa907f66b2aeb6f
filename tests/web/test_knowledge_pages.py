"""The knowledge console pages through the real app on a real stack (the tiny knowledge base
indexed by the real model): documents, upload with the build's progress, removal, a
document's passages, hit test, corrections, the lexicon; and who may use them.

The questions here are written for these tests, not taken from any eval set."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from cadrebot.bot.wiring import ConversationStack
from cadrebot.handlers.turns import Inbound
from tests.support.web import WebClient

DOC_ID = "jiangxi-2023-work-points-excerpt"
DOC_TITLE = "全省巩固拓展脱贫攻坚成果同乡村振兴有效衔接2023年工作要点"
NOTICE = """信丰县乡村振兴局文件

信丰县2026年脐橙产业奖补实施细则

一、奖补对象
全县脱贫户和监测户种植脐橙满五亩的，可以申请脐橙产业奖补。
二、奖补标准
每亩奖补300元，每户最多奖补3000元。
"""
UNANSWERED = "信丰县产业奖补每户补助多少钱？"
CORRECTED = "信丰县产业奖补按县农业部门当年公布的方案执行，每户补助以村里公示的核实结果为准。"
MakeClient = Callable[..., WebClient]


@pytest.fixture
def admin(web_client: MakeClient) -> WebClient:
    return web_client(role="admin", township=None)


def job_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    found = re.search(r"job=([0-9a-f]+)", response.headers["location"])
    assert found is not None
    return found[1]


def finished(client: WebClient, job: str) -> str:
    """Poll the build's progress bar as the page does, until the build is over; its HTML."""
    deadline = time.monotonic() + 180
    while True:
        fragment = client.get(f"/knowledge/build/{job}", headers={"HX-Request": "true"})
        assert fragment.status_code == 200
        if 'data-stage="done"' in fragment.text or 'data-stage="failed"' in fragment.text:
            # Over: no more polling, and the page reloads to show the new index.
            assert "hx-trigger" not in fragment.text and fragment.headers["HX-Refresh"] == "true"
            return fragment.text
        assert 'hx-trigger="every 1s"' in fragment.text and "HX-Refresh" not in fragment.headers
        assert time.monotonic() < deadline
        time.sleep(0.2)


def send(client: WebClient, url: str, data: dict[str, str] | None = None) -> httpx.Response:
    """A form posted with the page's CSRF token, as the browser sends it (no redirects)."""
    return client.post(
        url, data={**(data or {}), "csrf_token": client.csrf}, follow_redirects=False
    )


def upload(client: WebClient, name: str, content: bytes, *, csrf: bool = True) -> httpx.Response:
    data = {"csrf_token": client.csrf} if csrf else {}
    return client.post(
        "/knowledge/upload",
        data=data,
        files={"file": (name, content, "application/octet-stream")},
        follow_redirects=False,
    )


def test_the_documents_page_lists_the_index(admin: WebClient) -> None:
    page = admin.get("/knowledge")
    assert page.status_code == 200
    assert DOC_TITLE in page.text and "赣党农字〔2023〕2号" in page.text and "江西省" in page.text
    assert f'href="/knowledge/doc/{DOC_ID}"' in page.text
    assert 'enctype="multipart/form-data"' in page.text and 'name="csrf_token"' in page.text


def test_an_upload_shows_its_progress_and_is_answerable_after_the_build(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    response = upload(admin, "orange.txt", NOTICE.encode())
    job = job_of(response)
    page = admin.get(response.headers["location"])
    assert "<progress" in page.text and "上传 orange.txt" in page.text
    done = finished(admin, job)
    assert 'data-stage="done"' in done and "新增：orange" in done
    listed = admin.get("/knowledge").text
    assert "信丰县2026年脐橙产业奖补实施细则" in listed and "orange.txt" in listed
    hit = admin.get("/knowledge/search", params={"q": "脐橙产业奖补每亩奖补多少钱？"})
    assert 'data-found="yes"' in hit.text and "300元" in hit.text
    # And the farmers get it too.
    asked = web_stack.service.turn(Inbound("console", "f1", "张三", "脐橙产业奖补每亩奖补多少钱？"))
    assert "300元" in asked.replies[0].text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "文件内容不是文字"),
        ("fake.pdf", b"MZ\x90\x00 this is not a pdf" * 10, "PDF 文件已损坏"),
        ("tool.exe", b"MZ\x90\x00", "不支持“.exe”类型的文件"),
        ("../../escape.txt", NOTICE.encode(), "文件名不合法"),
        ("big.txt", b"a" * (10 * 1024 * 1024 + 1), "文件太大"),
        ("", b"", "请选择要上传的文件"),
    ],
)
def test_a_bad_upload_gets_a_polite_message_and_changes_nothing(
    admin: WebClient, web_stack: ConversationStack, name: str, content: bytes, message: str
) -> None:
    folder = web_stack.settings.knowledge_dir
    before = sorted(p.name for p in folder.iterdir())
    response = upload(admin, name, content)
    assert response.status_code == 400
    assert message in response.text and "Traceback" not in response.text
    assert sorted(p.name for p in folder.iterdir()) == before
    assert web_stack.knowledge_desk.jobs.current() is None


def test_a_document_is_removed_after_a_confirmation(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    finished(admin, job_of(upload(admin, "orange.txt", NOTICE.encode())))
    confirm = admin.get("/knowledge/remove", params={"file": "orange.txt"})
    assert confirm.status_code == 200 and "确认删除" in confirm.text
    assert (web_stack.settings.knowledge_dir / "orange.txt").exists()  # not yet
    response = send(admin, "/knowledge/remove", {"file": "orange.txt"})
    assert 'data-stage="done"' in finished(admin, job_of(response))
    assert "orange.txt" not in admin.get("/knowledge").text
    assert admin.get("/knowledge/remove", params={"file": "orange.txt"}).status_code == 404


def test_a_documents_passages_are_shown_as_split(admin: WebClient) -> None:
    page = admin.get(f"/knowledge/doc/{DOC_ID}")
    assert page.status_code == 200
    assert "1. 强化动态监测识别" in page.text and "责任单位：" in page.text
    assert "省乡村振兴局、省民政厅" in page.text and 'data-kind="item"' in page.text
    assert admin.get("/knowledge/doc/no-such-document").status_code == 404


def test_a_hit_test_shows_passages_scores_and_the_answer(admin: WebClient) -> None:
    page = admin.get("/knowledge/search", params={"q": "部门数据比对和筛查预警要常态化开展吗？"})
    assert page.status_code == 200
    assert 'data-found="yes"' in page.text and "机器人会这样回答" in page.text
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td>([\d.]+)</td>\s*<td>([\d.]+)</td>", page.text)
    assert len(rows) == 5 and [float(s) for _, s, _ in rows] == sorted(
        (float(s) for _, s, _ in rows), reverse=True
    )
    assert "强化动态监测识别" in page.text
    assert admin.get("/knowledge/search").status_code == 200  # the empty form


def test_a_correction_from_the_log_changes_the_answer(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    before = web_stack.service.turn(Inbound("telegram", "77", "张三", UNANSWERED))
    assert CORRECTED not in before.replies[0].text
    log = admin.get("/log", params={"view": "unanswered"}).text
    link = f"/knowledge/corrections?exchange={before.exchange_id}"
    assert UNANSWERED in log and link in log
    form = admin.get(link)
    assert f'name="question" required maxlength="200" value="{UNANSWERED}"' in form.text
    assert "机器人当时的回答" in form.text

    source = '信丰县农业部门<script>alert("x")</script>方案'
    saved = send(
        admin,
        "/knowledge/corrections",
        {"question": UNANSWERED, "answer": CORRECTED, "source": source},
    )
    assert 'data-stage="done"' in finished(admin, job_of(saved))
    today = web_stack.service.clock().date().isoformat()
    hit = admin.get("/knowledge/search", params={"q": UNANSWERED}).text
    assert 'data-found="yes"' in hit and CORRECTED in hit
    assert f"县乡村振兴局解答，{today}（依据：信丰县农业部门&lt;script&gt;" in hit
    assert "<script>alert" not in hit
    after = web_stack.service.turn(Inbound("telegram", "78", "李四", UNANSWERED))
    assert after.replies[0].text.startswith(CORRECTED)

    listed = admin.get("/knowledge/corrections").text
    ident = re.search(r'data-id="([0-9a-f]+)"', listed)
    assert ident is not None and CORRECTED in listed
    edited = send(
        admin,
        f"/knowledge/corrections/{ident[1]}",
        {"question": UNANSWERED, "answer": "以村里公示为准。", "source": "县农业部门"},
    )
    finished(admin, job_of(edited))
    assert "以村里公示为准。" in admin.get("/knowledge/search", params={"q": UNANSWERED}).text
    removed = send(admin, f"/knowledge/corrections/{ident[1]}/remove")
    finished(admin, job_of(removed))
    gone = admin.get("/knowledge/search", params={"q": UNANSWERED}).text
    assert "以村里公示为准。" not in gone and "县乡村振兴局解答" not in gone
    assert admin.get(f"/knowledge/corrections/{ident[1]}").status_code == 404


def test_a_refused_correction_keeps_what_was_typed_masked(admin: WebClient) -> None:
    response = send(
        admin,
        "/knowledge/corrections",
        {"question": UNANSWERED, "answer": "请拨打13812345678咨询", "source": "说明"},
    )
    assert response.status_code == 400
    assert "正确答案中不能含有身份证号或手机号" in response.text
    # what was typed comes back, but never a phone or ID number in full
    assert "请拨打138****5678咨询" in response.text
    assert "13812345678" not in response.text


def test_the_lexicon_is_viewed_validated_and_saved(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    path = web_stack.settings.knowledge_dir / "lexicon.toml"
    path.write_text('[everyday.health]\n"看病" = ["医疗"]\n', "utf-8")
    page = admin.get("/knowledge/lexicon")
    assert page.status_code == 200 and "看病" in page.text and "医疗" in page.text

    bad = '[everyday.health]\n"看病" = 医疗\n'
    refused = send(admin, "/knowledge/lexicon", {"text": bad})
    assert refused.status_code == 400
    assert "第 2 行第 8 列附近不符合 TOML 格式" in refused.text
    assert path.read_text("utf-8") == '[everyday.health]\n"看病" = ["医疗"]\n'

    good = '[everyday.health]\n"看病" = ["医疗"]\n\n[everyday.farming]\n"养鸡" = ["产业奖补"]\n'
    saved = send(admin, "/knowledge/lexicon", {"text": good})
    assert saved.status_code == 303
    assert path.read_text("utf-8") == good
    shown = admin.get(saved.headers["location"]).text
    assert "词表已保存并已生效" in shown and "养鸡" in shown and "farming" in shown


ADMIN_PAGES = [
    "/knowledge",
    f"/knowledge/doc/{DOC_ID}",
    "/knowledge/search",
    "/knowledge/search?q=%E4%BD%8E%E4%BF%9D",
    "/knowledge/corrections",
    "/knowledge/corrections?exchange=1",
    "/knowledge/corrections/abc",
    "/knowledge/lexicon",
    f"/knowledge/remove?file={quote(DOC_ID + '.txt')}",
    "/knowledge/build/abc",
    "/log",
    "/log?view=unanswered",
]
ADMIN_ACTIONS = [
    ("/knowledge/rebuild", {}),
    ("/knowledge/remove", {"file": "jiangxi-2023-work-points-excerpt.txt"}),
    ("/knowledge/corrections", {"question": "问题是什么？", "answer": "答案。", "source": "依据"}),
    (
        "/knowledge/corrections/abc",
        {"question": "问题是什么？", "answer": "答案。", "source": "依"},
    ),
    ("/knowledge/corrections/abc/remove", {}),
    ("/knowledge/lexicon", {"text": '[everyday.a]\n"看病" = ["医疗"]\n'}),
]


def test_a_cadre_gets_403_on_every_page_and_action(
    web_client: MakeClient, web_stack: ConversationStack
) -> None:
    cadre = web_client(role="cadre")
    folder = web_stack.settings.knowledge_dir
    before = sorted(p.name for p in folder.iterdir())
    for url in ADMIN_PAGES:
        page = cadre.get(url)
        assert page.status_code == 403, url
        assert "只有管理员" in page.text, url
    for url, data in ADMIN_ACTIONS:
        assert send(cadre, url, data).status_code == 403, url
    assert upload(cadre, "orange.txt", NOTICE.encode()).status_code == 403
    assert sorted(p.name for p in folder.iterdir()) == before
    assert web_stack.knowledge_desk.jobs.current() is None
    assert "/knowledge" not in cadre.get("/cases").text.split("<main>")[0]  # not in the nav


def test_the_nav_of_an_admin_has_the_knowledge_pages(admin: WebClient) -> None:
    nav = admin.get("/knowledge").text.split("<main>")[0]
    assert 'href="/knowledge"' in nav and 'href="/log"' in nav


def test_an_action_without_the_csrf_token_is_refused(
    admin: WebClient, web_stack: ConversationStack
) -> None:
    folder = web_stack.settings.knowledge_dir
    before = sorted(p.name for p in folder.iterdir())
    for url, data in ADMIN_ACTIONS:
        assert admin.post(url, data=data).status_code == 403, url
        assert admin.post(url, data={**data, "csrf_token": "forged"}).status_code == 403, url
    assert upload(admin, "orange.txt", NOTICE.encode(), csrf=False).status_code == 403
    assert sorted(p.name for p in folder.iterdir()) == before
    assert web_stack.knowledge_desk.jobs.current() is None


def test_without_a_session_the_pages_send_to_the_login(anonymous: WebClient) -> None:
    for url in ("/knowledge", "/knowledge/search?q=x", "/log"):
        response = anonymous.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
