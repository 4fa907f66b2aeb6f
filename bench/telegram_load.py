"""Load test of the Telegram channel (not a unit test).

Drives N simulated users (default 200) through mixed policy Q&A and intake forms against the
fake Bot API server of the test suite (real HTTP on loopback), with the real
python-telegram-bot application, the real knowledge base and embedder, and a real database.
Reports throughput, p50/p95 reply latency, and checks that no update was lost or answered
twice.

    .venv/bin/python bench/telegram_load.py [--users 200] [--form-share 0.4]
        [--knowledge knowledge] [--data-dir DIR] [--database-url URL] [--rate-limit 30]

The first run builds the index of the knowledge folder into --data-dir (reused afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cadrebot.bot.telegram import build_application, build_services, serving  # noqa: E402
from cadrebot.bot.wiring import build_index_with_progress, build_knowledge  # noqa: E402
from cadrebot.settings import Settings  # noqa: E402
from tests.support.fake_telegram import FakeTelegram, FakeUser  # noqa: E402
from tests.support.forms import RISK_TYPED  # noqa: E402

QUESTIONS = (
    "监测对象识别认定一般不超过多少天？",
    "防返贫监测的收入预警线是多少？",
    "脱贫劳动力外出务工有什么补贴？",
    "信丰县产业奖补怎么申请？",
    "雨露计划补助标准是多少？",
    "北京市的公积金贷款利率是多少？",
)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.messages = 0
        self.failures: list[str] = []


async def exchange(user: FakeUser, text: str, stats: Stats, expect: str = "") -> None:
    started = time.perf_counter()
    user.say(text)
    await user.expect(expect, within=120)
    stats.latencies.append(time.perf_counter() - started)
    stats.messages += 1


async def qa_user(user: FakeUser, rng: random.Random, stats: Stats) -> None:
    for question in rng.sample(QUESTIONS, 3):
        await exchange(user, question, stats)


async def form_user(user: FakeUser, stats: Stats) -> None:
    await exchange(user, "/report", stats, "姓名")
    for answer in RISK_TYPED:
        await exchange(user, answer, stats)
    await exchange(user, "确认提交", stats, "FX-")


async def simulate(user: FakeUser, rng: random.Random, form_share: float, stats: Stats) -> None:
    await asyncio.sleep(rng.uniform(0, 2))  # users arrive over two seconds
    try:
        if rng.random() < form_share:
            await form_user(user, stats)
        else:
            await qa_user(user, rng, stats)
    except AssertionError as error:
        stats.failures.append(f"user {user.id}: {error}")


async def main_async(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="cadrebot-bench-"))
    server = FakeTelegram()
    await server.start()
    settings = Settings(
        data_dir=data_dir,
        knowledge_dir=Path(args.knowledge),
        database_url=args.database_url or f"sqlite:///{data_dir / 'bench.sqlite3'}",
        telegram_bot_token=server.token,
        telegram_api_url=server.api_url,
        telegram_rate_limit=args.rate_limit,
        flood_max_messages=1000,
    )
    knowledge = build_knowledge(settings)
    report = build_index_with_progress(knowledge.builder)
    print(f"index: {report.documents} documents, {report.chunks} chunks ({report.seconds:.1f}s)")
    services = build_services(settings, knowledge=knowledge)
    stats = Stats()
    rng = random.Random(args.seed)
    with services:
        services.knowledge.composer.answer("预热")  # one-off model costs are not the bot's latency
        application = build_application(services)
        async with serving(application, poll_timeout=5):
            users = [server.user(100_000 + n, f"用户{n}") for n in range(args.users)]
            started = time.perf_counter()
            await asyncio.gather(*(simulate(u, rng, args.form_share, stats) for u in users))
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # anything still arriving would be a duplicate answer
            extra = sum(len(u.messages()) - u._seen for u in users)
            server.stopping = True
            server.wake()
    await server.stop()

    sent = server.delivered
    lost = stats.messages + len(stats.failures) < sum(1 for _ in sent)
    duplicates = sum(1 for count in sent.values() if count > 1)
    latencies = sorted(stats.latencies)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    rate = stats.messages / elapsed
    share = f"{args.form_share:.0%}"
    print(f"users: {args.users} ({share} file a risk report, the rest ask 3 questions)")
    print(f"messages answered: {stats.messages} in {elapsed:.1f}s = {rate:.1f} msg/s")
    print(
        f"reply latency: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    print(f"updates delivered: {len(sent)}, delivered more than once: {duplicates}")
    print(f"unanswered (lost): {len(stats.failures)}, unexpected extra replies: {extra}")
    print(f"outgoing rate limit: {args.rate_limit or 'off'} msg/s")
    for failure in stats.failures[:5]:
        print("  ", failure)
    return 1 if stats.failures or duplicates or extra or lost else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--form-share", type=float, default=0.4)
    parser.add_argument("--knowledge", default=str(REPO / "knowledge"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rate-limit", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
