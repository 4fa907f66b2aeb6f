"""Faults under load: `cadrebot serve --workers 2` on PostgreSQL (not a unit test).

The paced load of ``bench/serve_load.py`` (its users, scripts, Poisson arrivals and checks)
runs against two webhook workers while:

(a) a worker is SIGKILLed every ``--kill-every`` seconds (the supervisor restarts it);
(b) PostgreSQL is restarted once (``pg_ctlcluster 15 main restart``; ``--no-pg-restart`` to
    skip it: it breaks every other client of that server for a few seconds);
(c) the index is republished twice (``cadrebot index --rebuild`` in another process; the
    workers' index followers switch to it).

Reported: lost turns (a message with no exchange row), doubled turns (more than one),
failed turns (inbox rows given up, ``error`` exchanges) and unanswered messages (no reply
within 60 s: e.g. a worker killed after its turn committed, before the reply went out).

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/fault_load.py [--users 300] [--paced-rate 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serve_load import (  # noqa: E402
    SECRET,
    Load,
    ReplyClock,
    check,
    form_reply_counts,
    p,
    run_phase,
    scripts,
    wait_ready,
)
from cadrebot.settings import Settings  # noqa: E402
from cadrebot.storage import upgrade  # noqa: E402
from tests.support.database import private_schema  # noqa: E402
from tests.support.fake_telegram import free_port  # noqa: E402
from tests.support.processes import bot_env, spawn_serve  # noqa: E402

WORKERS = 2


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for pid in children:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            workers.append(int(pid))
    return workers


async def kill_workers(supervisor: int, every: float, log: list[str]) -> None:
    """(a) SIGKILL one worker every ``every`` seconds, alternating."""
    n = 0
    while True:
        await asyncio.sleep(every)
        pids = worker_pids(supervisor)
        if pids:
            victim = pids[n % len(pids)]
            n += 1
            os.kill(victim, signal.SIGKILL)
            log.append(f"{time.strftime('%X')} SIGKILL worker {victim}")


async def restart_postgres(after: float, log: list[str]) -> None:
    """(b) Restart the PostgreSQL cluster once."""
    await asyncio.sleep(after)
    started = time.perf_counter()
    result = await asyncio.to_thread(
        subprocess.run,
        ["pg_ctlcluster", "15", "main", "restart"],
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started
    log.append(
        f"{time.strftime('%X')} PostgreSQL restart rc={result.returncode} in {took:.1f}s "
        f"{result.stderr.strip()[:200]}"
    )


def _correct_a_document(knowledge: Path, n: int) -> None:
    document = sorted(knowledge.glob("*.txt"))[0]
    with document.open("a", encoding="utf-8") as fh:
        fh.write(f"\n（本文件第{n}次更正。）\n")


async def republish(
    env: dict[str, str], knowledge: Path, times: int, every: float, log: list[str]
) -> None:
    """(c) Publish a new index version ``times`` times from another process: a document of
    the (copied) knowledge folder changes, and ``cadrebot index`` embeds just that passage,
    as when an admin uploads a corrected file."""
    for n in range(1, times + 1):
        await asyncio.sleep(every)
        await asyncio.to_thread(_correct_a_document, knowledge, n)
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cadrebot.bot.cli",
            "index",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        took = time.perf_counter() - started
        last = (out.decode().strip().splitlines() or err.decode().strip().splitlines() or [""])[-1]
        log.append(
            f"{time.strftime('%X')} republish rc={process.returncode} in {took:.1f}s {last[:100]}"
        )


def failed_turns(database_url: str) -> tuple[int, int]:
    """(inbox rows given up, exchanges logged as errors)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            given_up = connection.execute(
                text("SELECT count(*) FROM inbound_updates WHERE status = 'failed'")
            ).scalar_one()
            errors = connection.execute(
                text("SELECT count(*) FROM exchanges WHERE kind = 'error'")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(given_up), int(errors)


async def run(args: argparse.Namespace, url: str, form_counts: tuple[int, ...]) -> dict[str, Any]:
    fake = ReplyClock()
    await fake.start()
    port = free_port()
    # Republishing edits a document: work on a copy, never on the repository's folder.
    knowledge = Path(tempfile.mkdtemp(prefix="fault-load-knowledge-"))
    shutil.copytree(args.knowledge, knowledge, dirs_exist_ok=True)
    env = bot_env(
        data_dir=args.data_dir,
        knowledge_dir=knowledge,
        database_url=url,
        telegram_bot_token=fake.token,
        telegram_api_url=fake.api_url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_rate_limit=0,
        flood_max_messages=1000,
        serve_lease_seconds=args.lease,
    )
    log_path = Path(tempfile.gettempdir()) / "fault-load.log"
    process = spawn_serve(env, workers=WORKERS, port=port, log_path=log_path)
    events: list[str] = []
    try:
        async with aiohttp.ClientSession() as probe:
            await wait_ready(probe, port, WORKERS, process, log_path)
        plan = scripts(args.users, args.form_share, 300_000, form_counts)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
            load = Load(fake, f"http://127.0.0.1:{port}/telegram", session)
            faults = [
                asyncio.create_task(kill_workers(process.pid, args.kill_every, events)),
                asyncio.create_task(republish(env, knowledge, 2, args.republish_every, events)),
            ]
            if args.pg_restart:
                faults.append(asyncio.create_task(restart_postgres(args.pg_restart_at, events)))
            try:
                phase = await run_phase(load, plan, args.paced_rate)
            finally:
                for task in faults:
                    task.cancel()
                await asyncio.gather(*faults, return_exceptions=True)
        lost, doubled, pending = check(url, phase)
        given_up, errors = failed_turns(url)
        return {
            "messages": phase.messages,
            "seconds": round(phase.seconds, 1),
            "p50_ms": round(p(phase.latencies, 0.50)),
            "p95_ms": round(p(phase.latencies, 0.95)),
            "lost": lost,
            "doubled": doubled,
            "pending": pending,
            "failed_inbox": given_up,
            "error_exchanges": errors,
            "unanswered": phase.unanswered,
            "undelivered": phase.undelivered,
            "events": events,
        }
    finally:
        shutil.rmtree(knowledge, ignore_errors=True)
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        await fake.stop()


async def main_async(args: argparse.Namespace) -> int:
    from cadrebot.bot.wiring import build_index_with_progress, build_knowledge

    settings = Settings(data_dir=args.data_dir, knowledge_dir=args.knowledge)
    build_index_with_progress(build_knowledge(settings).builder)
    form_counts = form_reply_counts(settings)
    with private_schema(args.database_url, "cadrebot_fault") as url:
        upgrade(url)
        result = await run(args, url, form_counts)
        # Reported before the schema is dropped: the figures survive a failing clean-up.
        print(json.dumps(result, ensure_ascii=False, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0 if not (result["lost"] or result["doubled"] or result["pending"]) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--form-share", type=float, default=0.3)
    parser.add_argument("--paced-rate", type=float, default=30.0, help="updates/s offered")
    parser.add_argument("--kill-every", type=float, default=10.0)
    parser.add_argument("--republish-every", type=float, default=15.0)
    parser.add_argument("--pg-restart-at", type=float, default=25.0, help="seconds into the load")
    parser.add_argument("--no-pg-restart", dest="pg_restart", action="store_false")
    parser.add_argument("--lease", type=float, default=5.0, help="CADREBOT_SERVE_LEASE_SECONDS")
    parser.add_argument("--knowledge", type=Path, default=REPO / "knowledge")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "var" / "bench-fault-load", help="index (reused)"
    )
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.database_url:
        print("需要 PostgreSQL：请设置 TEST_DATABASE_URL 或 --database-url。", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
