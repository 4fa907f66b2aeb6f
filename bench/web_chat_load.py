"""Latency of the farmers' web chat under a steady stream of policy questions (not a unit test).

`cadrebot web` runs in a child process (uvicorn, one process) on the real index of the
knowledge folder and a fresh database: SQLite by default (a new file per run), or a private
schema of the PostgreSQL named by --database-url. --sessions browsers open /chat (httpx, one
cookie jar and keep-alive connection each, the CSRF token read from the page as a browser's
htmx does) and send policy questions as htmx posts, paced at --rate questions/s for
--seconds (arrivals Poisson by default, or evenly spaced), each question going to the next
browser in turn. The web chat's per-browser and per-address limits are raised through the
environment for the run (every bench browser comes from 127.0.0.1).

The questions are generated from the documents' own headings (“<heading>有什么要求？”,
“<heading>由哪个部门负责？”) plus a fixed list of generic questions written for this bench;
none comes from eval/*.jsonl.

Reported: p50/p95/p99/max of the request latency (send to full response), errors (a status
other than 200, a reply without an assistant bubble, the core's apology), the exchanges the
server logged against the questions sent, and the server process's CPU per question. Target:
p95 ≤ 80 ms at 20 questions/s on 2 cores. Results go to
bench/results/web_chat_load-<date>.json and .md.

    .venv/bin/python bench/web_chat_load.py [--rate 20] [--seconds 60] [--sessions 20]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cadrebot.handlers.conversation import APOLOGY  # noqa: E402
from tests.support.chunks import seed_corpus  # noqa: E402
from tests.support.database import private_schema, sqlite_file_url  # noqa: E402
from tests.support.fake_telegram import FakeTelegram, free_port  # noqa: E402
from tests.support.processes import bot_env, spawn_serve  # noqa: E402

TARGET_P95_MS = 80.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BOT_BUBBLE = 'class="bubble bot"'
WARM_UP_QUESTIONS = 20

# Written for this bench (what a farmer or a village cadre asks in general terms).
GENERIC_QUESTIONS = (
    "家里有人生病住院，能申请什么帮扶？",
    "脱贫户发展产业有哪些补贴？",
    "防返贫监测对象是怎么确定的？",
    "外出务工有没有交通补助？",
    "小额信贷怎么申请？",
    "村里的公益岗位有哪些要求？",
    "遭了水灾房子坏了可以找谁？",
    "孩子上学有什么资助政策？",
    "农村低保和特困供养有什么区别？",
    "养牛养猪能拿奖补吗？",
    "乡村振兴衔接资金主要用在哪些方面？",
    "易地搬迁后续扶持有哪些措施？",
)
_NUMBERING = re.compile(r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|\d+[.．、]\s*)")
_TEMPLATES = ("{}有什么要求？", "{}由哪个部门负责？", "关于{}，文件是怎么规定的？")


def questions(knowledge: Path, seed: int = 11) -> list[str]:
    """Questions from the documents' headings (numbering stripped), and the generic ones."""
    chunks, _metas = seed_corpus(knowledge)
    headings = sorted(
        {_NUMBERING.sub("", chunk.section[-1]).strip("：:。 ") for chunk in chunks if chunk.section}
    )
    rng = random.Random(seed)
    made = [
        rng.choice(_TEMPLATES).format(heading)
        for heading in headings
        if 2 <= len(heading) <= 30 and "附件" not in heading
    ]
    return made + list(GENERIC_QUESTIONS)


# --------------------------------------------------------------------------- browsers


@dataclass
class Figures:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    late_starts: int = 0  # a browser still waiting for its previous reply at its next turn

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Browser:
    """One phone's browser on /chat: its cookies, its connection, its CSRF token."""

    def __init__(self, base: str) -> None:
        self.client = httpx.AsyncClient(base_url=base, timeout=30.0)
        self.token = ""
        self.busy = asyncio.Lock()

    async def open(self) -> None:
        page = await self.client.get("/chat")
        page.raise_for_status()
        found = CSRF.search(page.text)
        if found is None:
            raise RuntimeError("the chat page has no CSRF token")
        self.token = found[1]

    async def ask(self, question: str, figures: Figures | None) -> None:
        if figures is not None and self.busy.locked():
            figures.late_starts += 1
        async with self.busy:  # a browser sends one message at a time (htmx disables it)
            started = time.perf_counter()
            try:
                response = await self.client.post(
                    "/chat/send",
                    data={"text": question},
                    headers={"HX-Request": "true", "X-CSRF-Token": self.token},
                )
                body = response.text
            except httpx.HTTPError as error:
                if figures is not None:
                    figures.sent += 1
                    figures.error(type(error).__name__)
                return
            elapsed = (time.perf_counter() - started) * 1000
        if figures is None:
            return
        figures.sent += 1
        if response.status_code != 200:
            figures.error(f"http {response.status_code}")
        elif BOT_BUBBLE not in body:
            figures.error("no reply bubble")
        elif APOLOGY in body:
            figures.error("apology")
        figures.latencies_ms.append(elapsed)

    async def close(self) -> None:
        await self.client.aclose()


async def run_load(base: str, args: argparse.Namespace, asked: list[str]) -> dict[str, Any]:
    browsers = [Browser(base) for _ in range(args.sessions)]
    try:
        await asyncio.gather(*(b.open() for b in browsers))
        rng = random.Random(args.seed)
        for n in range(WARM_UP_QUESTIONS):  # the first questions load lazily built parts
            await browsers[n % len(browsers)].ask(rng.choice(asked), None)
        figures = Figures()
        total = int(args.rate * args.seconds)
        pending: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        due = 0.0
        for n in range(total):
            gap = rng.expovariate(args.rate) if args.arrivals == "poisson" else 1 / args.rate
            due += gap
            delay = start + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            browser = browsers[n % len(browsers)]
            pending.append(asyncio.create_task(browser.ask(rng.choice(asked), figures)))
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - start
    finally:
        await asyncio.gather(*(b.close() for b in browsers))
    return {
        "questions": figures.sent,
        "seconds": round(seconds, 1),
        "questions_per_s": round(figures.sent / seconds, 1),
        **percentiles(figures.latencies_ms),
        "errors": figures.errors,
        "late_starts": figures.late_starts,
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 1),
        "mean_ms": round(sum(ordered) / len(ordered), 1),
    }


# --------------------------------------------------------------------------- the server


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a live process and its children (Linux /proc): the
    server, or `cadrebot serve`'s supervisor and its workers."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(pid) == root or int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def wait_ready(
    port: int, workers: int, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    """Until every worker answered /healthz (a first start also builds the index; a new
    connection each time, so the kernel hands them to every worker)."""
    deadline = time.monotonic() + 600
    ready: set[object] = set()
    while len(ready) < workers:
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the server did not become ready: see {log_path}")
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/healthz")
            if response.status_code == 200:
                ready.add(response.json().get("worker", {}).get("pid", "web"))
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (collapsed stacks, every thread) until SIGINT."""
    return subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
            *("record", "--pid", str(pid), "--rate", "200", "--format", "raw"),
            *("--output", str(out), "--threads", "--nonblocking", "--subprocesses"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def exchanges_logged(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM exchanges WHERE channel = 'webchat'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _spawn(args: argparse.Namespace, env: dict[str, str], port: int, log_path: Path) -> Any:
    if args.server == "serve":
        return spawn_serve(env, workers=args.workers, port=port, log_path=log_path)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "cadrebot.bot.cli", "web"),
                *("--port", str(port), "--workers", str(args.workers)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def serve_and_load(
    args: argparse.Namespace, database_url: str, asked: list[str]
) -> dict[str, Any]:
    port = free_port()
    env = bot_env(
        data_dir=args.data_dir,
        knowledge_dir=args.knowledge,
        database_url=database_url,
        web_chat_messages_per_minute=1_000_000,
        web_chat_messages_per_minute_per_address=1_000_000,
    )
    telegram: FakeTelegram | None = None
    if args.server == "serve":
        # `cadrebot serve` carries the web chat beside the webhook; it needs a bot to talk
        # to, here the test suite's fake Bot API server (no webhook traffic is sent).
        telegram = FakeTelegram()
        await telegram.start()
        env.update(
            bot_env(
                telegram_bot_token=telegram.token,
                telegram_api_url=telegram.api_url,
                telegram_webhook_secret="bench-secret",
                telegram_webhook_listen="127.0.0.1",
            )
        )
    env.update(dict(pair.split("=", 1) for pair in args.env))
    log_path = Path(tempfile.gettempdir()) / "web-chat-load.log"
    process = _spawn(args, env, port, log_path)
    try:
        await wait_ready(port, args.workers, process, log_path)
        profiler = _profile(process.pid, args.profile) if args.profile else None
        cpu_before = cpu_seconds(process.pid)
        load = await run_load(f"http://127.0.0.1:{port}", args, asked)
        cpu_used = cpu_seconds(process.pid) - cpu_before
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(timeout=60)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if telegram is not None:
            await telegram.stop()
    measured = load["questions"] + WARM_UP_QUESTIONS
    load["server_cpu_ms_per_question"] = round(cpu_used * 1000 / measured, 1)
    load["exchanges_logged"] = exchanges_logged(database_url)
    load["exchanges_expected"] = measured
    return load


# --------------------------------------------------------------------------- report


def markdown(result: dict[str, Any]) -> str:
    load = result["load"]
    met = "yes" if load.get("p95_ms", 1e9) <= TARGET_P95_MS else "NO"
    return "\n".join(
        [
            f"# web_chat_load {result['started']}",
            "",
            f"{result.get('server', '`cadrebot web` (uvicorn, one process)')} on "
            f"{result['database']}, the index of "
            f"{result['knowledge']} ({result['questions_available']} questions from its "
            f"headings and a generic list); {result['cores']} cores, load generator on the "
            "same machine.",
            "",
            f"{result['sessions']} browsers, {load['questions']} questions in "
            f"{load['seconds']} s ({load['questions_per_s']}/s offered at {result['rate']}/s, "
            f"{result['arrivals']} arrivals).",
            "",
            "| p50 ms | p95 ms | p99 ms | max ms | target p95 ms | met | errors | "
            "server CPU ms/question |",
            "|---:|---:|---:|---:|---:|---|---|---:|",
            f"| {load.get('p50_ms')} | {load.get('p95_ms')} | {load.get('p99_ms')} | "
            f"{load.get('max_ms')} | {TARGET_P95_MS:.0f} | {met} | "
            f"{load['errors'] or 'none'} | {load['server_cpu_ms_per_question']} |",
            "",
            f"Exchanges logged by the server: {load['exchanges_logged']} of "
            f"{load['exchanges_expected']} questions sent (warm-up included). A browser still "
            f"waiting for its previous reply when its next question was due: "
            f"{load['late_starts']} times.",
            "",
            f"Server environment beyond the defaults: {result.get('server_env') or 'none'}; "
            f"bench and server priority (nice): {result.get('nice')}; 1-minute load average "
            f"of the machine before the run: {result.get('load_average_1m_before')} (it is "
            "shared with other sessions' work).",
            "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    started = datetime.now().astimezone()
    load_before = os.getloadavg()[0]
    if args.nice is not None:
        # The server inherits it: on a machine shared with other work (test suites of other
        # sessions), a higher priority for both ends approaches a machine of their own.
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    asked = questions(args.knowledge)
    with ExitStack() as stack:
        if args.database_url:
            url = stack.enter_context(private_schema(args.database_url, "cadrebot_webchat"))
            database = "PostgreSQL"
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = sqlite_file_url(folder / "web-chat.sqlite3")
            database = "SQLite"
        print(f"starting cadrebot {args.server} on {database} …", flush=True)
        load = asyncio.run(serve_and_load(args, url, asked))
    result = {
        "started": started.isoformat(timespec="seconds"),
        "database": database,
        "server": f"`cadrebot web --workers {args.workers}` (uvicorn)"
        if args.server == "web"
        else f"`cadrebot serve --workers {args.workers}` (the web chat beside the webhook)",
        "knowledge": str(args.knowledge.relative_to(REPO))
        if args.knowledge.is_relative_to(REPO)
        else str(args.knowledge),
        "questions_available": len(asked),
        "sessions": args.sessions,
        "rate": args.rate,
        "arrivals": args.arrivals,
        "cores": os.cpu_count(),
        "target_p95_ms": TARGET_P95_MS,
        "server_env": args.env,
        "nice": args.nice,
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "load": load,
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"web_chat_load-{started:%Y-%m-%d}{args.suffix}"
    stem.with_suffix(".json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    stem.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(f"written {stem}.json and .md")
    return 0 if not load["errors"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="questions per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sessions", type=int, default=20, help="browsers")
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument(
        "--server",
        choices=("web", "serve"),
        default="web",
        help="`cadrebot web` (one process), or `cadrebot serve --workers N` (PostgreSQL)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: web 1, serve 2)"
    )
    parser.add_argument("--knowledge", type=Path, default=REPO / "knowledge")
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / "var" / "bench-web-chat", help="index (reused)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--suffix", default="", help="appended to the result files' names")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the server (repeatable), for A/B runs",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="scheduling priority of the bench and the server (negative needs root)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the server into this file (raw)"
    )
    args = parser.parse_args()
    if args.workers is None:
        args.workers = 2 if args.server == "serve" else 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
