"""Several real `cadrebot serve` workers on one PostgreSQL (TEST_DATABASE_URL).

The tests of this module share one cluster and run in order: interleaved chats on three
workers, then one worker SIGKILLed mid-run, then a knowledge rollout while answering, then a
failed build.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from cadrebot.bot.telegram.routing import RETRY
from cadrebot.handlers.conversation import APOLOGY
from tests.support.forms import RISK_TYPED
from tests.support.processes import answering_pids
from tests.support.settings import ADMIN_ID

from .cluster import Cluster, Worker

pytestmark = pytest.mark.postgres

QUESTION = "监测对象识别认定一般不超过多少天？"
# /report, every field (a policy question typed in the middle), confirm: out-of-order
# processing would feed an answer to the wrong field and the case would not be filed.
SCRIPT = ("/report", *RISK_TYPED[:3], QUESTION, *RISK_TYPED[3:], "确认提交")


def _rows(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def _interleave(cluster: Cluster, chats: list[int], *, after: Any = None) -> None:
    """Message k of every chat, then message k+1 of every chat, … round-robin over workers."""
    for step, line in enumerate(SCRIPT):
        for chat in chats:
            cluster.say(chat, line)
        if after is not None:
            after(step)


def _filed(cluster: Cluster, chats: list[int]) -> bool:
    return all(any("FX-" in t for t in cluster.fake.texts(chat)) for chat in chats)


def _no_errors(cluster: Cluster, chats: list[int]) -> None:
    for chat in chats:
        for reply in cluster.fake.texts(chat):
            assert RETRY not in reply and APOLOGY not in reply, (chat, reply)


@pytest.fixture(scope="module")
def workers(cluster: Cluster) -> list[Worker]:
    started = [cluster.start_worker() for _ in range(3)]
    pids = {cluster.wait_ready(w)["worker"]["pid"] for w in started}
    assert len(pids) == 3
    return started


def test_interleaved_chats_each_in_order_exactly_once(
    cluster: Cluster, workers: list[Worker], pg_schema_url: str
) -> None:
    chats = list(range(10_001, 10_051))  # 50 chats
    _interleave(cluster, chats)
    cluster.wait_for(lambda: _filed(cluster, chats), within=90)
    _no_errors(cluster, chats)

    sequences = {chat: cluster.fake.texts(chat) for chat in chats}
    reference = sequences[chats[0]]
    assert "FX-" in reference[-1] and "15天" in "".join(reference)
    for chat, replies in sequences.items():  # same script, same replies, in the same order
        assert [r.split("FX-")[0] for r in replies] == [r.split("FX-")[0] for r in reference], chat

    cases = _rows(
        pg_schema_url,
        "SELECT u.external_id, c.fields FROM cases c JOIN users u ON u.id = c.submitter_id",
    )
    assert sorted(int(external) for external, _ in cases) == chats  # one case per chat
    assert all(
        fields["household_size"] == 4 and fields["risk_types"] == ["因病", "因灾"]
        for _, fields in cases
    )
    inbox = _rows(pg_schema_url, "SELECT status, attempts, payload FROM inbound_updates")
    assert len(inbox) == len(chats) * len(SCRIPT)
    assert {(status, attempts) for status, attempts, _ in inbox} == {("done", 1)}
    assert all(payload is None for _, _, payload in inbox)  # nothing personal kept

    # Every worker took part (updates were spread round-robin over them).
    for worker in workers:
        metrics = cluster.http.get(f"{worker.url}/metrics").text
        assert 'cadrebot_updates_total{kind="message"}' in metrics


def test_a_repeated_delivery_is_dropped(cluster: Cluster, workers: list[Worker]) -> None:
    chat = 10_100
    update = cluster.update(chat, "/mycases")
    cluster.post(update, to=workers[0])
    cluster.post(update, to=workers[1])  # Telegram retrying on another worker
    cluster.wait_for(lambda: cluster.fake.texts(chat))
    time.sleep(1.5)
    assert len(cluster.fake.texts(chat)) == 1


def test_a_killed_worker_loses_nothing(
    cluster: Cluster, workers: list[Worker], pg_schema_url: str
) -> None:
    chats = list(range(20_001, 20_031))  # 30 chats
    victim = workers[0]

    def kill_midway(step: int) -> None:
        if step == 5:
            cluster.kill(victim)

    _interleave(cluster, chats, after=kill_midway)
    assert not victim.alive()
    cluster.wait_for(lambda: _filed(cluster, chats), within=90)
    _no_errors(cluster, chats)
    cases = _rows(
        pg_schema_url,
        "SELECT u.external_id FROM cases c JOIN users u ON u.id = c.submitter_id "
        "WHERE u.external_id::int BETWEEN 20001 AND 20030",
    )
    assert sorted(int(external) for (external,) in cases) == chats  # each filed once
    pending = _rows(pg_schema_url, "SELECT count(*) FROM inbound_updates WHERE status <> 'done'")
    assert pending == [(0,)]


def test_knowledge_rollout_while_answering(
    cluster: Cluster, workers: list[Worker], pg_schema_url: str
) -> None:
    live = [w for w in workers if w.alive()]
    before = {cluster.wait_ready(w)["index"]["version"] for w in live}
    assert len(before) == 1
    new_fact = (
        "关于脐橙产业奖补的补充通知\n\n"
        "一、脐橙种植奖补标准\n"
        "新种脐橙每亩奖补八百八十元，由乡镇汇总后报县农业农村局审核发放。\n"
    )
    admin_chat = ADMIN_ID
    cluster.say(admin_chat, "/start")
    cluster.wait_for(lambda: cluster.fake.texts(admin_chat))
    upload = cluster.update(admin_chat, "")
    file_id = cluster.fake.call(_add_file(cluster, "navel-orange.txt", new_fact.encode()))
    upload["message"].pop("text")
    upload["message"]["document"] = {
        "file_id": file_id,
        "file_unique_id": f"u{file_id}",
        "file_name": "navel-orange.txt",
        "file_size": len(new_fact.encode()),
    }
    asked: list[int] = []
    cluster.post(upload, to=live[0])
    # Questions keep coming to every worker while the index is rebuilt and rolled out.
    deadline = time.monotonic() + 30
    chat = 30_000
    while time.monotonic() < deadline:
        for worker in live:
            chat += 1
            asked.append(chat)
            cluster.say(chat, QUESTION, to=worker)
        versions = {cluster.wait_ready(w)["index"]["version"] for w in live}
        if len(versions) == 1 and versions != before:
            break
        time.sleep(0.2)
    assert versions != before, "the workers did not switch to the new version"
    cluster.wait_for(lambda: any("✅" in t for t in cluster.fake.texts(admin_chat)), within=30)
    # Every question asked during the switch was answered, from the old or the new version.
    cluster.wait_for(lambda: all(cluster.fake.texts(c) for c in asked), within=60)
    for c in asked:
        assert "15天" in cluster.fake.texts(c)[0]
    # Every worker answers from the new document now.
    for n, worker in enumerate(live):
        cluster.say(40_000 + n, "新种脐橙每亩奖补多少钱？", to=worker)
        replies = cluster.wait_for(lambda n=n: cluster.fake.texts(40_000 + n))
        assert "八百八十元" in replies[0]
    [(active,)] = _rows(pg_schema_url, "SELECT version_id FROM kb_versions WHERE status = 'active'")
    assert {active} == versions


def test_a_failed_build_keeps_the_old_version(
    cluster: Cluster, workers: list[Worker], serve_dirs: Any, pg_schema_url: str
) -> None:
    live = [w for w in workers if w.alive()]
    before = {cluster.wait_ready(w)["index"]["version"] for w in live}
    _, knowledge_dir = serve_dirs
    (knowledge_dir / "broken.docx").write_bytes(b"this is not a zip archive")
    admin_chat = ADMIN_ID
    seen = len(cluster.fake.texts(admin_chat))
    cluster.say(admin_chat, "/reload", to=live[-1])
    failure = cluster.wait_for(
        lambda: [t for t in cluster.fake.texts(admin_chat)[seen:] if "❌" in t], within=30
    )
    assert "broken.docx" in failure[0] and "原来的索引" in failure[0]
    time.sleep(1.5)  # longer than the workers' index poll
    assert {cluster.wait_ready(w)["index"]["version"] for w in live} == before
    cluster.say(50_001, QUESTION, to=live[0])
    assert "15天" in cluster.wait_for(lambda: cluster.fake.texts(50_001))[0]
    (knowledge_dir / "broken.docx").unlink()


async def _add_file(cluster: Cluster, name: str, data: bytes) -> str:
    return cluster.fake.server.add_file(name, data)


def _worker_pids(cluster: Cluster, port_owner: Worker, want: int, within: float = 90.0) -> set[int]:
    """The pids answering on ``port_owner``'s port (new connections spread over them)."""
    return answering_pids(port_owner.url, want, within)


def test_the_supervisor_restarts_a_dead_worker(cluster: Cluster, workers: list[Worker]) -> None:
    supervisor = cluster.start_worker(workers=2)
    try:
        cluster.wait_ready(supervisor)
        first = _worker_pids(cluster, supervisor, want=2)
        assert len(first) == 2 and supervisor.process.pid not in first
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # The survivor and a new worker answer on the same port; the supervisor lives on.
        deadline = time.monotonic() + 90
        now: set[int] = set()
        while time.monotonic() < deadline and not (now - first):
            now = _worker_pids(cluster, supervisor, want=2, within=5)
        assert now - first, "no new worker took the dead one's place"
        assert victim not in now
        assert supervisor.alive()
        chat = 30_001
        cluster.say(chat, "/mycases", to=supervisor)
        cluster.wait_for(lambda: cluster.fake.texts(chat))
    finally:
        supervisor.process.terminate()
        supervisor.process.wait(timeout=60)
        cluster.workers.remove(supervisor)
    assert supervisor.process.returncode == 0  # SIGTERM: every worker stopped gracefully
