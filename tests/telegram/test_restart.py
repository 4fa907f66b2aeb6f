"""A bot process killed (SIGKILL) in the middle of a form; a new process resumes the dialog."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cadrebot.handlers.ports import CaseQuery
from cadrebot.storage import CaseDatabase
from tests.support.fake_telegram import FakeTelegram
from tests.support.forms import RISK_TYPED
from tests.support.processes import bot_env
from tests.support.settings import ADMIN_ID, make_settings

STARTUP_SECONDS = 90.0


def start_bot(
    server: FakeTelegram, data_dir: Path, knowledge_dir: Path, database_url: str, log: Path
) -> subprocess.Popen[bytes]:
    env = bot_env(
        data_dir=data_dir,
        knowledge_dir=knowledge_dir,
        database_url=database_url,
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        telegram_admin_ids=ADMIN_ID,
    )
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "cadrebot.bot.cli", "run"],
            cwd=data_dir.parent,  # no stray .env
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _log_text(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_polling(server: FakeTelegram, process: subprocess.Popen[bytes], log: Path) -> None:
    before = server.get_updates_calls
    try:
        await server.wait_until(
            lambda: server.get_updates_calls > before or process.poll() is not None,
            STARTUP_SECONDS,
        )
    except TimeoutError:
        raise AssertionError(f"bot did not start polling:\n{_log_text(log)}") from None
    assert process.poll() is None, f"bot exited early:\n{_log_text(log)}"


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_killed_mid_form_and_restarted_resumes_the_dialog(
    server: FakeTelegram,
    bot_dirs: tuple[Path, Path],
    database_url: str,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    if backend == "postgres":
        database_url = request.getfixturevalue("pg_url")
    data_dir, knowledge_dir = bot_dirs
    log = tmp_path / "bot.log"
    first = start_bot(server, data_dir, knowledge_dir, database_url, log)
    try:
        await wait_polling(server, first, log)
        farmer = server.user(7001, "张三")
        farmer.say("/report")
        await farmer.expect("姓名")
        for answer in RISK_TYPED[:3]:
            last_update = farmer.say(answer)
            await farmer.expect("")
        # The reply was sent and Telegram holds the update as confirmed: kill it now.
        await server.wait_until(lambda: server.acked_offset > last_update)
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 30)
    assert first.returncode == -signal.SIGKILL

    second = start_bot(server, data_dir, knowledge_dir, database_url, log)
    try:
        await wait_polling(server, second, log)
        farmer.say(RISK_TYPED[3])  # the township: the form goes on where it stopped
        await farmer.expect("村（社区）")
        for answer in RISK_TYPED[4:]:
            farmer.say(answer)
            await farmer.expect("")
        farmer.say("确认提交")
        filed = await farmer.expect("FX-")
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)
    assert second.returncode == 0, _log_text(log)

    assert all(count == 1 for count in server.delivered.values())  # nothing answered twice
    settings = make_settings(data_dir, knowledge_dir, database_url=database_url)
    database = CaseDatabase(settings)
    database.open(migrate=False)
    try:
        with database.unit_of_work() as uow:
            [case] = uow.cases.list_cases(CaseQuery()).items
    finally:
        database.close()
    assert case.number in filed["text"]
    assert case.fields["name"] == RISK_TYPED[0]  # answered before the kill
    assert case.fields["township"] == RISK_TYPED[3]  # answered after the restart
