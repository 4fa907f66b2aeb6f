"""Latency of the web case desk with 100,000 cases on PostgreSQL (not a unit test).

A fresh PostgreSQL schema is filled with --cases cases spread over the place register's
townships (bulk inserts with SQLAlchemy Core: cases as the forms file them, moved along
their workflows with the due dates the workflows set, and their histories); --cadres cadre
accounts are created through the accounts desk, one jurisdiction each. `cadrebot web` then
runs in a child process (uvicorn; `--workers N` processes on one port; with `--server serve`,
`cadrebot serve --workers N`, which carries the same web app beside the Telegram webhook) and
--cadres logged-in cadres browse at once (httpx AsyncClient, one cookie jar each), each in a
loop:

* the case list, filtered (status, overdue, due soon, case type, a name or number typed) and
  paged (pages 1-3),
* a case page (one of the list's cases),
* the dashboard,

with a think time between pages (exponential, mean --think seconds; 0 = as fast as
possible). Reported: p50/p95/max per page against the targets (list ≤ 150 ms, case page
≤ 100 ms, dashboard ≤ 300 ms at p95), and the same pages for one county admin (every case)
measured alone afterwards. Results go to bench/results/web_load-<date>T<time>.json and .md.

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/web_load.py [--cases 100000] [--cadres 50] [--rounds 20]
            [--server web|serve] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cadrebot.handlers.accounts import AccountDesk  # noqa: E402
from cadrebot.handlers.forms import default_registry, risk_report, subsidy  # noqa: E402
from cadrebot.handlers.forms.validators import id_check_char  # noqa: E402
from cadrebot.handlers.places import PlaceRegister  # noqa: E402
from cadrebot.indexer.places_file import load_places, places_path  # noqa: E402
from cadrebot.storage import SqlUnitOfWorkFactory, make_engine, upgrade  # noqa: E402
from cadrebot.storage.models import (  # noqa: E402
    Base,
    CaseCounterRow,
    CaseDueDateRow,
    CaseEventRow,
    CaseRow,
    UserRow,
)
from tests.support.database import private_schema  # noqa: E402
from tests.support.fake_telegram import FakeTelegram, free_port  # noqa: E402
from tests.support.processes import bot_env, spawn_serve  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")
PASSWORD = "bench-password-1"
TARGETS_MS = {"list": 150, "case": 100, "dashboard": 300}
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉力斌宇浩凯健俊帆"
VILLAGE_NAMES = ("长岭村", "桃源村", "新屋村", "坪石村", "石门村", "上坪村", "下坊村", "龙口村")
FARMERS = 5_000
STALLED = 0.08  # cases left lying at some step
BATCH = 5_000

_cases = Base.metadata.tables[CaseRow.__tablename__]
_events = Base.metadata.tables[CaseEventRow.__tablename__]
_due = Base.metadata.tables[CaseDueDateRow.__tablename__]
_users = Base.metadata.tables[UserRow.__tablename__]
_counters = Base.metadata.tables[CaseCounterRow.__tablename__]


# --------------------------------------------------------------------------- fill


def _id_number(rng: random.Random) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    body = f"360722{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + id_check_char(body)


def _answers(rng: random.Random, kind: str, township: str, village: str) -> dict[str, Any]:
    name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
    common = {
        "name": name,
        "id_number": _id_number(rng),
        "mobile": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
        "township": township,
        "village": village,
    }
    if kind == "risk_report":
        return {
            **common,
            "household_size": rng.randint(1, 8),
            "household_type": rng.choice(("脱贫户", "监测户", "一般农户")),
            "risk_types": rng.sample(list(risk_report.RISK_TYPES), k=rng.randint(1, 2)),
            "description": "家中有人生病住院，医疗支出较大，收入减少。",
            "estimated_loss": rng.randrange(1000, 80000),
            "consent": True,
        }
    return {
        **common,
        "household_type": rng.choice(subsidy.ELIGIBLE_TYPES),
        "industry_type": rng.choice(subsidy.INDUSTRY_TYPES),
        "product": rng.choice(("脐橙", "蔬菜", "生猪", "鸡", "蜜蜂")),
        "scale": rng.randint(1, 50),
        "scale_unit": rng.choice(subsidy.SCALE_UNITS),
        "investment": rng.randrange(1000, 100000),
        "disaster": rng.random() < 0.1,
    }


@dataclass
class Filled:
    cases: int
    events: int
    due_dates: int
    seconds: float


def fill(engine: Engine, places: PlaceRegister, count: int, now: datetime, seed: int = 5) -> Filled:
    """``count`` cases over the last year across the register's townships (3% unassigned),
    each moved a random number of steps along its workflow, with its events and due dates."""
    started = time.perf_counter()
    rng = random.Random(seed)
    forms = default_registry()
    townships = places.townships()
    with engine.begin() as connection:
        connection.execute(
            _users.insert(),
            [
                {"channel": "telegram", "external_id": str(10_000 + n), "display_name": "农户",
                 "role": "farmer", "created_at": now}
                for n in range(FARMERS)
            ],
        )  # fmt: skip
        farmer_ids = [r[0] for r in connection.execute(text("SELECT id FROM users"))]
        worker = connection.execute(
            _users.insert().returning(_users.c.id),
            {"channel": "web", "external_id": "bench-worker", "display_name": "乡镇干部",
             "role": "cadre", "created_at": now},
        ).scalar_one()  # fmt: skip
    sequences: dict[tuple[str, int], int] = {}
    events = dues = 0
    case_id = 0
    for chunk_start in range(0, count, BATCH):
        case_rows: list[dict[str, Any]] = []
        event_rows: list[dict[str, Any]] = []
        due_rows: list[dict[str, Any]] = []
        for _ in range(min(BATCH, count - chunk_start)):
            case_id += 1
            kind = "risk_report" if rng.random() < 0.7 else "subsidy"
            form = forms[kind]
            filed = now - timedelta(seconds=rng.randrange(365 * 86400))
            township = rng.choice(townships) if rng.random() > 0.03 else None
            if township is not None and township.villages and rng.random() < 0.5:
                village = rng.choice(township.villages)
                village_name, village_id = village.name, village.id
            else:
                village_name, village_id = rng.choice(VILLAGE_NAMES), None
            township_name = township.name if township is not None else "某某镇"
            new = form.file_case(
                _answers(rng, kind, township_name, village_name), rng.choice(farmer_ids), filed
            )
            year = filed.astimezone(SHANGHAI).year
            key = (new.number_prefix, year)
            sequences[key] = sequences.get(key, 0) + 1
            number = f"{new.number_prefix}-{year}-{sequences[key]:06d}"
            status = new.status
            due = dict(new.due_dates)
            history: list[tuple[datetime, str | None, str, str]] = [(filed, None, status, "")]
            at = filed
            # Cases move on until they are closed or today is reached, one step every 1-20
            # days (a monitored household's help lasts half a year or more); a few stall
            # at some step, forgotten: those are the overdue ones.
            stall_at = rng.randrange(5) if rng.random() < STALLED else None
            while len(history) - 1 != stall_at:
                allowed = form.workflow.allowed_from(status)
                if not allowed:
                    break
                usual = len(allowed) == 1 or rng.random() < 0.85
                to_status = allowed[0] if usual else rng.choice(allowed[1:])
                rule = form.workflow.rule(status, to_status)
                assert rule is not None
                days = (180, 300) if status == risk_report.STATUS_HELPING else (1, 20)
                at = at + timedelta(seconds=rng.randrange(days[0] * 86400, days[1] * 86400))
                day = at.astimezone(SHANGHAI).date()
                if rule.guard is not None and rule.guard(day):
                    # A pre-registration waits for the next application window.
                    opens = subsidy.next_round(day).window_start
                    at = datetime.combine(opens, day_time(9), tzinfo=SHANGHAI) + timedelta(
                        seconds=rng.randrange(10 * 86400)
                    )
                    day = at.date()
                if at >= now:
                    break
                if rule.sets_due is not None:
                    due.update(rule.sets_due(day))
                note = "经入户核实，情况属实。" if rule.note_required else ""
                history.append((at, status, to_status, note))
                status = to_status
            case_rows.append(
                {
                    "id": case_id,
                    "case_type": kind,
                    "number": number,
                    "status": status,
                    "fields": new.fields,
                    "submitter_id": new.submitter_id,
                    "township": township_name,
                    "village": village_name,
                    "township_id": township.id if township is not None else None,
                    "village_id": village_id if township is not None else None,
                    "submitted_at": filed,
                    "updated_at": history[-1][0],
                }
            )
            for when, before, after, note in history:
                event_rows.append(
                    {
                        "case_id": case_id,
                        "actor_id": new.submitter_id if before is None else worker,
                        "at": when,
                        "from_status": before,
                        "to_status": after,
                        "note": note,
                    }
                )
            due_rows += [{"case_id": case_id, "name": n, "due_on": d} for n, d in due.items()]
        with engine.begin() as connection:
            connection.execute(_cases.insert(), case_rows)
            connection.execute(_events.insert(), event_rows)
            connection.execute(_due.insert(), due_rows)
        events += len(event_rows)
        dues += len(due_rows)
        print(f"  filled {chunk_start + len(case_rows)} cases", flush=True)
    with engine.begin() as connection:
        connection.execute(
            _counters.insert(),
            [{"prefix": p, "year": y, "last_value": v} for (p, y), v in sequences.items()],
        )
        for table in ("cases", "users", "case_events"):
            connection.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    # The steady state of a database autovacuum looks after (statistics, visibility map),
    # not the moment after a bulk load.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    return Filled(count, events, dues, time.perf_counter() - started)


def create_accounts(
    engine: Engine, places: PlaceRegister, cadres: int, now: datetime
) -> list[tuple[str, str]]:
    """``cadres`` cadre accounts over the townships (some village-level) and one admin,
    made by the accounts desk as ``cadrebot user add`` makes them: (username, role)."""
    desk = AccountDesk(SqlUnitOfWorkFactory(engine, tz=SHANGHAI), places=places, clock=lambda: now)
    townships = places.townships()
    made: list[tuple[str, str]] = []
    for n in range(cadres):
        township = townships[n % len(townships)]
        village = township.villages[0].name if township.villages and n % 3 == 0 else None
        name = f"cadre{n + 1:02d}"
        desk.create(None, name, PASSWORD, "cadre", township=township.name, village=village)
        made.append((name, "cadre"))
    desk.create(None, "county-admin", PASSWORD, "admin")
    made.append(("county-admin", "admin"))
    return made


# --------------------------------------------------------------------------- load


def cpu_seconds(web_pid: int) -> dict[str, float]:
    """CPU seconds used so far (Linux /proc) by the web server (with its worker processes)
    and by the PostgreSQL server processes on this machine: busy CPU per request is steadier
    than latency on a machine shared with other work."""
    ticks = os.sysconf("SC_CLK_TCK")
    web = database = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / ticks
        if web_pid in (int(pid), int(fields[1])):  # the server and its worker processes
            web += used
        elif name == "postgres":
            database += used
    return {"web": web, "database": database}


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_NUMBER = re.compile(r'<tr data-number="([^"]+)"')


@dataclass
class Timings:
    samples: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, page: str, seconds: float) -> None:
        self.samples.setdefault(page, []).append(seconds * 1000)

    def error(self, page: str, detail: str) -> None:
        key = f"{page}: {detail}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def figures(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for page, values in sorted(self.samples.items()):
            ordered = sorted(values)
            out[page] = {
                "count": len(ordered),
                "p50_ms": round(statistics.median(ordered), 1),
                "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
                "max_ms": round(ordered[-1], 1),
                "mean_ms": round(statistics.fmean(ordered), 1),
            }
        return out


async def login(client: httpx.AsyncClient, username: str) -> None:
    page = await client.get("/login")
    found = _CSRF.search(page.text)
    assert found is not None, page.text[:500]
    response = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": found[1]}
    )
    if response.status_code != 303:
        raise RuntimeError(f"login of {username} failed: {response.status_code}")


def list_queries(rng: random.Random) -> Iterator[dict[str, str]]:
    """The list filters a cadre uses, in a mix (always paged: page 1-3 of 20)."""
    kinds: tuple[dict[str, str], ...] = (
        {"status": "已受理"},
        {"status": "核实中"},
        {"overdue": "1"},
        {"due_within": "7"},
        {"type": "subsidy"},
        {"type": "risk_report", "status": "已纳入监测"},
        {"q": rng.choice(SURNAMES)},
        {"q": "FX-2026-0"},
        {},
    )
    while True:
        query = dict(rng.choice(kinds))
        query["page"] = str(rng.choice((1, 1, 2, 3)))
        yield query


async def browse(
    client: httpx.AsyncClient,
    rounds: int,
    think: float,
    timings: Timings,
    rng: random.Random,
    measured: bool = True,
) -> None:
    queries = list_queries(rng)
    numbers: list[str] = []
    for _ in range(rounds):
        for page in ("list", "case", "dashboard"):
            if think:
                await asyncio.sleep(rng.expovariate(1 / think))
            if page == "list":
                url, params = "/cases", next(queries)
            elif page == "case":
                if not numbers:
                    continue
                url, params = f"/cases/{rng.choice(numbers)}", {}
            else:
                url, params = "/dashboard", {}
            started = time.perf_counter()
            try:
                response = await client.get(url, params=params)
            except httpx.HTTPError as error:
                timings.error(page, type(error).__name__)
                continue
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                timings.error(page, str(response.status_code))
                continue
            if measured:
                timings.add(page, elapsed)
            if page == "list":
                numbers = _NUMBER.findall(response.text) or numbers


def wait_ready(port: int, workers: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until /healthz answers 200 from every worker (the first start also builds the index);
    the log's tail if the server died or took over ten minutes."""
    deadline = time.monotonic() + 600
    ready: set[object] = set()
    with httpx.Client() as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                # A new connection each time, so that every worker gets asked.
                response = client.get(
                    f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
                )
                if response.status_code == 200:
                    ready.add(response.json().get("worker", {}).get("pid", "web"))
                    if len(ready) >= workers:
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(log_path.read_text(errors="replace")[-3000:])


class FakeBotApi:
    """The test suite's fake Telegram Bot API in a thread of its own: `cadrebot serve` asks it
    who the bot is at start (nothing else happens on it here)."""

    def __init__(self) -> None:
        self.fake = FakeTelegram()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(timeout=30)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def spawn_server(
    args: argparse.Namespace, url: str, port: int, log_path: Path, stack: ExitStack
) -> subprocess.Popen[bytes]:
    """`cadrebot web --workers N`, or `cadrebot serve --workers N`, which carries the same
    web app beside the Telegram webhook (a fake Bot API here)."""
    settings: dict[str, object] = {
        "data_dir": args.data_dir,
        "knowledge_dir": args.knowledge,
        "database_url": url,
    }
    if args.server == "web":
        command = ["web", "--port", str(port), "--workers", str(args.workers)]
        with log_path.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "cadrebot.bot.cli", *command],
                env=bot_env(**settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    fake = stack.enter_context(FakeBotApi())
    env = bot_env(
        **settings,
        telegram_bot_token=fake.token,
        telegram_api_url=fake.api_url,
        telegram_webhook_secret="bench-secret",
        telegram_webhook_listen="127.0.0.1",
    )
    return spawn_serve(env, workers=args.workers, port=port, log_path=log_path)


async def run_load(
    base: str, accounts: Sequence[tuple[str, str]], args: argparse.Namespace, web_pid: int
) -> dict[str, Any]:
    cadres = [name for name, role in accounts if role == "cadre"]
    admin = next(name for name, role in accounts if role == "admin")
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = [httpx.AsyncClient(base_url=base, limits=limits, timeout=60) for _ in cadres]
    try:
        await asyncio.gather(*(login(c, n) for c, n in zip(clients, cadres, strict=True)))
        warm = Timings()
        await asyncio.gather(
            *(browse(c, 2, 0, warm, random.Random(i), False) for i, c in enumerate(clients))
        )
        timings = Timings()
        cpu_before, client_before = cpu_seconds(web_pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(
            *(
                browse(c, args.rounds, args.think, timings, random.Random(100 + i))
                for i, c in enumerate(clients)
            )
        )
        seconds = time.perf_counter() - started
        cpu_after, client_after = cpu_seconds(web_pid), time.process_time()
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    requests = sum(len(v) for v in timings.samples.values())
    cpu_ms = {
        "web_process": round((cpu_after["web"] - cpu_before["web"]) * 1000 / requests, 1),
        "postgres": round((cpu_after["database"] - cpu_before["database"]) * 1000 / requests, 1),
        "load_client": round((client_after - client_before) * 1000 / requests, 1),
    }
    load_average = os.getloadavg()
    # The county admin (every case, so the heaviest counts), alone, after the cadres.
    admin_timings = Timings()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await login(client, admin)
        await browse(client, 2, 0, Timings(), random.Random(7), False)
        await browse(client, args.admin_rounds, 0, admin_timings, random.Random(8))
    return {
        "concurrent_cadres": len(cadres),
        "think_mean_s": args.think,
        "rounds_per_cadre": args.rounds,
        "seconds": round(seconds, 1),
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "cpu_ms_per_request": cpu_ms,
        "load_average_1_5_15": [round(x, 2) for x in load_average],
        "cadre_pages": timings.figures(),
        "cadre_errors": timings.errors,
        "admin_pages_alone": admin_timings.figures(),
        "admin_errors": admin_timings.errors,
    }


# --------------------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    load = result["load"]
    lines = [
        f"# web_load {result['started']}",
        "",
        f"{result['cases']} cases ({result['events']} events, {result['due_dates']} due "
        f"dates) over {result['townships']} townships, filled in {result['fill_s']} s; "
        f"PostgreSQL {result['postgres']}; {result['cores']} cores; `{result['server']}` "
        "(uvicorn).",
        "",
        f"{load['concurrent_cadres']} logged-in cadres at once, {load['rounds_per_cadre']} "
        f"rounds of list → case → dashboard each, think time exponential with mean "
        f"{load['think_mean_s']} s: {load['requests']} requests in {load['seconds']} s "
        f"({load['requests_per_s']} req/s).",
        "",
        "CPU per request: "
        + ", ".join(f"{k} {v} ms" for k, v in load["cpu_ms_per_request"].items())
        + f"; load average at the end (1/5/15 min): {load['load_average_1_5_15']} "
        "(other work shares this machine).",
        "",
        "| page | requests | p50 ms | p95 ms | max ms | target p95 ms | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for page, figures in load["cadre_pages"].items():
        target = TARGETS_MS.get(page)
        met = "yes" if target and figures["p95_ms"] <= target else "NO"
        lines.append(
            f"| {page} | {figures['count']} | {figures['p50_ms']} | {figures['p95_ms']} | "
            f"{figures['max_ms']} | {target} | {met} |"
        )
    lines += ["", f"Errors: {load['cadre_errors'] or 'none'}.", ""]
    lines += [
        "County admin alone (every case in every count), sequential:",
        "",
        "| page | requests | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for page, figures in load["admin_pages_alone"].items():
        lines.append(
            f"| {page} | {figures['count']} | {figures['p50_ms']} | {figures['p95_ms']} | "
            f"{figures['max_ms']} |"
        )
    lines += ["", f"Errors: {load['admin_errors'] or 'none'}.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    now = datetime.now(SHANGHAI)
    places = load_places(places_path(args.knowledge))
    with private_schema(args.database_url, "cadrebot_webload") as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            print(f"filling {args.cases} cases …", flush=True)
            filled = fill(engine, places, args.cases, now)
            accounts = create_accounts(engine, places, args.cadres, now)
            with engine.connect() as connection:
                version = connection.exec_driver_sql("SHOW server_version").scalar_one()
        finally:
            engine.dispose()
        server = f"{args.server} --workers {args.workers}"
        print(f"filled in {filled.seconds:.1f} s; starting cadrebot {server}", flush=True)
        port = free_port()
        log_path = Path(tempfile.gettempdir()) / "web-load.log"
        with ExitStack() as stack:
            process = spawn_server(args, url, port, log_path, stack)
            try:
                wait_ready(port, args.workers, process, log_path)
                base = f"http://127.0.0.1:{port}"
                load = asyncio.run(run_load(base, accounts, args, process.pid))
            finally:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    result = {
        "started": now.isoformat(timespec="seconds"),
        "cases": filled.cases,
        "events": filled.events,
        "due_dates": filled.due_dates,
        "townships": len(places.townships()),
        "fill_s": round(filled.seconds, 1),
        "postgres": str(version),
        "cores": os.cpu_count(),
        "server": f"cadrebot {args.server} --workers {args.workers}",
        "load": load,
    }
    print(json.dumps(load, ensure_ascii=False, indent=2))
    stem = args.out / f"web_load-{now:%Y-%m-%dT%H%M}"
    stem.with_suffix(".json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    stem.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(f"written {stem}.json and .md")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--cadres", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20, help="list → case → dashboard")
    parser.add_argument("--admin-rounds", type=int, default=10)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds between pages")
    parser.add_argument(
        "--server",
        choices=("web", "serve"),
        default="web",
        help="`cadrebot web`, or `cadrebot serve` (the same app beside the webhook)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes on the port")
    parser.add_argument("--knowledge", type=Path, default=REPO / "knowledge")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "var" / "bench-web-load", help="index (reused)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if not args.database_url:
        print("需要 PostgreSQL：请设置 TEST_DATABASE_URL 或 --database-url。", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
