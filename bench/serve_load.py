"""Throughput of `cadrebot serve --workers N` on PostgreSQL (not a unit test).

For each worker count (default 1, 2, 4): a fresh PostgreSQL schema, `cadrebot serve --workers
N` on one port (the kernel spreads connections over the workers, SO_REUSEPORT), the fake Bot
API server of the test suite receiving the replies, and 500 simulated users POSTing webhook
updates: a share of them file a 防返贫 risk report (13 messages), the others ask 3 policy
questions. Two phases:

* saturate: every user sends its next message as soon as the previous one is answered; the
  achieved updates/s is the throughput, and the scaling ratio is against 1 worker;
* paced: the messages of all users arrive as a Poisson process of --paced-rate updates/s
  (each user's next message no earlier than the bot's reply to the previous one); the p95
  reply latency there is the latency at that load.

Lost / doubled: every text message is one conversation turn and logs one exchange row, so
the exchanges per chat must equal the messages sent; the inbox must have nothing pending.
The outgoing rate limiter is OFF (CADREBOT_TELEGRAM_RATE_LIMIT=0): Telegram's own limit of
30 messages/s per bot would otherwise cap every figure at 30.

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/serve_load.py [--workers 1 2 4] [--users 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.telegram_load import QUESTIONS  # noqa: E402  (the same mix as the one-process load)
from cadrebot.settings import Settings  # noqa: E402
from cadrebot.storage import upgrade  # noqa: E402
from tests.support.database import private_schema  # noqa: E402
from tests.support.fake_telegram import FakeTelegram, free_port  # noqa: E402
from tests.support.forms import RISK_TYPED  # noqa: E402
from tests.support.processes import bot_env, spawn_serve  # noqa: E402

SECRET = "bench-secret"
FORM = ("/report", *RISK_TYPED, "确认提交")


class ReplyClock(FakeTelegram):
    """The fake server, resolving a chat's waiter when the bot sends it a message."""

    def __post_init__(self) -> None:
        super().__post_init__()
        # chat -> (messages the chat must have received, future resolved when it has)
        self.waiting: dict[int, tuple[int, asyncio.Future[float]]] = {}
        self.received: dict[int, int] = {}

    def _store(self, chat_id: int, body: dict[str, Any]) -> dict[str, Any]:
        message = super()._store(chat_id, body)
        self.received[chat_id] = self.received.get(chat_id, 0) + 1
        entry = self.waiting.get(chat_id)
        if entry is not None and self.received[chat_id] >= entry[0]:
            del self.waiting[chat_id]
            if not entry[1].done():
                entry[1].set_result(time.perf_counter())
        return message

    async def _touch(self) -> None:  # nobody polls wait_until here: skip the notify storm
        return None


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    question_latencies: list[float] = field(default_factory=list)
    sent: dict[int, int] = field(default_factory=dict)
    unanswered: int = 0
    undelivered: int = 0  # refused by every worker for a minute: never stored
    seconds: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    @property
    def messages(self) -> int:
        return sum(self.sent.values())


def _cpu_seconds_of(pid: str) -> tuple[int, str, float] | None:
    """(parent pid, command name, user + system CPU seconds) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(supervisor: int) -> dict[str, float]:
    """CPU seconds used so far by the serve workers (children of ``supervisor``) and by the
    PostgreSQL server processes on this machine (Linux /proc). Busy CPU per update is a
    steadier figure than latency on a shared machine whose speed varies between runs."""
    workers = database = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        seen = _cpu_seconds_of(pid)
        if seen is None:
            continue
        parent, name, used = seen
        if parent == supervisor or int(pid) == supervisor:
            workers += used
        elif name == "postgres":
            database += used
    return {"workers": workers, "database": database}


class Load:
    def __init__(self, fake: ReplyClock, url: str, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.url = url
        self.session = session
        self.update_ids = iter(range(1, 10**9))
        self.message_ids = iter(range(10**6, 10**9))

    async def say(self, chat: int, line: str, replies: int, phase: Phase) -> None:
        message: dict[str, Any] = {
            "message_id": next(self.message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": "用户"},
            "from": {"id": chat, "is_bot": False, "first_name": "用户"},
            "text": line,
        }
        if line.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(line)}]
        update = {"update_id": next(self.update_ids), "message": message}
        # A reply is complete when every message of the turn arrived (a form step may send
        # two); until then the user does not type on, as a person reading them would not.
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.fake.waiting[chat] = (self.fake.received.get(chat, 0) + replies, waiter)
        started = time.perf_counter()
        if not await self._deliver(update):
            phase.undelivered += 1
            return
        phase.sent[chat] = phase.sent.get(chat, 0) + 1
        try:
            answered = await asyncio.wait_for(waiter, timeout=60)
        except TimeoutError:
            phase.unanswered += 1
            return
        phase.latencies.append(answered - started)
        if line in QUESTIONS:
            phase.question_latencies.append(answered - started)

    async def _deliver(self, update: dict[str, Any]) -> bool:
        """POST the update until a worker takes it (200), as Telegram keeps redelivering an
        update its webhook did not accept; False after a minute of refusals."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                async with self.session.post(
                    self.url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
                ) as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        return False

    async def user(
        self,
        chat: int,
        script: tuple[tuple[str, int], ...],
        send_at: list[float] | None,
        phase: Phase,
    ) -> None:
        """Send ``script``: message k at ``send_at[k]`` (seconds from the phase start) or,
        if the reply to message k-1 comes later, then; with no schedule, type on as soon
        as the reply is there."""
        for k, (line, replies) in enumerate(script):
            if send_at is not None:
                await asyncio.sleep(max(0.0, send_at[k] - (time.perf_counter() - phase.start)))
            await self.say(chat, line, replies, phase)


Script = tuple[tuple[str, int], ...]  # (message, replies the bot sends to it)


def form_reply_counts(settings: Settings) -> tuple[int, ...]:
    """How many messages the bot sends for each step of FORM (a throwaway SQLite run)."""
    from cadrebot.bot.wiring import build_conversation_stack

    folder = Path(tempfile.mkdtemp(prefix="serve-load-calibrate-"))
    try:
        local = settings.model_copy(update={"database_url": f"sqlite:///{folder / 'c.sqlite3'}"})
        with build_conversation_stack(local) as stack:
            return tuple(len(stack.service.handle("bench", "1", "用户", line)) for line in FORM)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scripts(
    users: int, form_share: float, first_chat: int, form_counts: tuple[int, ...]
) -> dict[int, Script]:
    rng = random.Random(7)
    out: dict[int, Script] = {}
    for n in range(users):
        chat = first_chat + n
        if rng.random() < form_share:
            out[chat] = tuple(zip(FORM, form_counts, strict=True))
        else:
            out[chat] = tuple((q, 1) for q in rng.sample(QUESTIONS, 3))
    return out


def poisson_schedule(
    plan: dict[int, Script], rate: float, seed: int = 11
) -> dict[int, list[float]]:
    """Arrival times of every message of ``plan``: a Poisson process of ``rate`` per second
    over all users, the messages of the process handed to the users in random order."""
    rng = random.Random(seed)
    owners = [chat for chat, script in plan.items() for _ in script]
    rng.shuffle(owners)
    schedule: dict[int, list[float]] = {chat: [] for chat in plan}
    at = 0.0
    for chat in owners:
        at += rng.expovariate(rate)
        schedule[chat].append(at)
    return schedule


async def run_phase(load: Load, plan: dict[int, Script], rate: float) -> Phase:
    """All users at once: closed loop (``rate`` 0) or Poisson arrivals of ``rate`` updates/s."""
    schedule = poisson_schedule(plan, rate) if rate else {}
    phase = Phase()
    await asyncio.gather(*(load.user(c, s, schedule.get(c), phase) for c, s in plan.items()))
    phase.seconds = time.perf_counter() - phase.start
    return phase


def check(database_url: str, phase: Phase) -> tuple[int, int, int]:
    """(lost, doubled, still pending) from the exchange log and the inbox."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            for _ in range(100):  # let the last turns finish
                pending = connection.execute(
                    text("SELECT count(*) FROM inbound_updates WHERE status = 'pending'")
                ).scalar_one()
                if not pending:
                    break
                time.sleep(0.1)
            rows = dict(
                connection.execute(
                    text("SELECT chat_id, count(*) FROM exchanges GROUP BY chat_id")
                ).all()
            )
            pending = connection.execute(
                text("SELECT count(*) FROM inbound_updates WHERE status = 'pending'")
            ).scalar_one()
    finally:
        engine.dispose()
    lost = doubled = 0
    for chat, sent in phase.sent.items():
        logged = int(rows.get(str(chat), 0))
        lost += max(0, sent - logged)
        doubled += max(0, logged - sent)
    return lost, doubled, int(pending)


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def bench_workers(
    args: argparse.Namespace, workers: int, data_dir: Path, form_counts: tuple[int, ...]
) -> dict[str, Any]:
    """One worker count on a fresh PostgreSQL schema."""
    with private_schema(args.database_url, "cadrebot_bench") as url:
        upgrade(url)
        return await _bench_workers_on(url, args, workers, data_dir, form_counts)


def log_tail(path: Path) -> str:
    """The end of a serve log, for an error message."""
    return path.read_text(errors="replace")[-3000:]


async def wait_ready(
    session: aiohttp.ClientSession,
    port: int,
    workers: int,
    process: subprocess.Popen[bytes],
    log_path: Path,
) -> None:
    """Until every worker of ``cadrebot serve`` answered /healthz (new connections spread
    over the workers); the serve log's tail if it died or took over two minutes."""
    deadline = time.monotonic() + 120
    ready: set[int] = set()
    while len(ready) < workers:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(log_tail(log_path))
        try:
            # A new connection each time, so that every worker gets asked.
            async with session.get(
                f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
            ) as response:
                if response.status == 200:
                    ready.add((await response.json())["worker"]["pid"])
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)


async def _bench_workers_on(
    url: str,
    args: argparse.Namespace,
    workers: int,
    data_dir: Path,
    form_counts: tuple[int, ...],
) -> dict[str, Any]:
    fake = ReplyClock()
    await fake.start()
    port = free_port()
    env = bot_env(
        data_dir=data_dir,
        knowledge_dir=args.knowledge,
        database_url=url,
        telegram_bot_token=fake.token,
        telegram_api_url=fake.api_url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_rate_limit=0,
        flood_max_messages=1000,
    )
    env.update(dict(item.split("=", 1) for item in args.set))
    log_path = Path(tempfile.gettempdir()) / f"serve-load-{workers}.log"
    process = spawn_serve(env, workers=workers, port=port, log_path=log_path)
    result: dict[str, Any] = {"workers": workers}
    try:
        # Kept-alive connections, as Telegram keeps them (up to the webhook's
        # max_connections); the kernel spreads them over the workers when they are opened.
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            await wait_ready(session, port, workers, process, log_path)
            load = Load(fake, f"http://127.0.0.1:{port}/telegram", session)
            # Warm-up: the first queries and connections of every worker.
            await run_phase(load, scripts(20, 0.3, 1, form_counts), 0)
            phases = (("saturate", 0.0, 100_000), ("paced", args.paced_rate, 200_000))
            for name, rate, first in (p for p in phases if p[0] in args.phases):
                plan = scripts(args.users, args.form_share, first, form_counts)
                cpu_before = cpu_seconds(process.pid)
                phase = await run_phase(load, plan, rate)
                cpu_after = cpu_seconds(process.pid)
                lost, doubled, pending = check(url, phase)
                result[name] = {
                    "messages": phase.messages,
                    "seconds": round(phase.seconds, 1),
                    "updates_per_s": round(phase.messages / phase.seconds, 1),
                    "p50_ms": round(p(phase.latencies, 0.50)),
                    "p95_ms": round(p(phase.latencies, 0.95)),
                    "question_p50_ms": round(p(phase.question_latencies, 0.50)),
                    "question_p95_ms": round(p(phase.question_latencies, 0.95)),
                    "unanswered": phase.unanswered,
                    "undelivered": phase.undelivered,
                    "lost": lost,
                    "doubled": doubled,
                    "pending": pending,
                    "worker_cpu_ms_per_update": round(
                        (cpu_after["workers"] - cpu_before["workers"]) * 1000 / phase.messages, 1
                    ),
                    "database_cpu_ms_per_update": round(
                        (cpu_after["database"] - cpu_before["database"]) * 1000 / phase.messages,
                        1,
                    ),
                }
                print(f"workers={workers} {name}: {json.dumps(result[name])}", flush=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        await fake.stop()
    return result


def summary(results: list[dict[str, Any]]) -> None:
    one = results[0]["saturate"]["updates_per_s"] if results else 0
    print(
        "workers | updates/s (saturated) | scaling | p95 ms paced | p95 ms saturated | lost/doubled"
    )
    for r in results:
        s, q = r["saturate"], r["paced"]
        lost = s["lost"] + q["lost"] + s["unanswered"] + q["unanswered"]
        doubled = s["doubled"] + q["doubled"]
        print(
            f"{r['workers']:>7} | {s['updates_per_s']:>21} | {s['updates_per_s'] / one:>7.2f} | "
            f"{q['p95_ms']:>12} | {s['p95_ms']:>16} | {lost}/{doubled}"
        )


async def main_async(args: argparse.Namespace) -> int:
    from cadrebot.bot.wiring import build_index_with_progress, build_knowledge

    data_dir: Path = args.data_dir
    settings = Settings(data_dir=data_dir, knowledge_dir=args.knowledge)
    report = build_index_with_progress(build_knowledge(settings).builder)
    form_counts = form_reply_counts(settings)
    print(f"index: {report.documents} documents, {report.chunks} chunks", flush=True)
    print(
        f"users: {args.users} ({args.form_share:.0%} file a risk report of {len(FORM)} "
        f"messages, the rest ask 3 questions); outgoing rate limiter OFF; "
        f"paced phase offers ≈{args.paced_rate}/s; {os.cpu_count()} cores",
        flush=True,
    )
    results = []
    for workers in args.workers:
        results.append(await bench_workers(args, workers, data_dir, form_counts))
    if set(args.phases) == {"saturate", "paced"}:
        summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--form-share", type=float, default=0.3)
    parser.add_argument("--paced-rate", type=float, default=50.0, help="updates/s offered")
    parser.add_argument("--knowledge", type=Path, default=REPO / "knowledge")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "var" / "bench-serve-load", help="index (reused)"
    )
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument(
        "--phases", nargs="+", default=["saturate", "paced"], choices=["saturate", "paced"]
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CADREBOT_X=VALUE",
        help="a setting for the workers (repeatable), e.g. CADREBOT_TELEGRAM_CONCURRENT_UPDATES=8",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not args.database_url:
        print("需要 PostgreSQL：请设置 TEST_DATABASE_URL 或 --database-url。", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
