"""Worker processes sharing one port: what ``cadrebot serve --workers N`` and ``cadrebot web
--workers N`` have in common.

Each worker binds the same port with ``SO_REUSEPORT`` (the kernel spreads connections over
them); the supervising process starts them, restarts one that dies, and stops them all on
SIGTERM/SIGINT. A worker is a whole process (its own interpreter and GIL), which is how one
machine's cores all serve: the Python part of a request holds the GIL.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import time
from collections.abc import Callable

from cadrebot.bot.wiring import Knowledge, build_knowledge, ensure_index
from cadrebot.settings import Settings
from cadrebot.storage import install_sensitive_data_filter, upgrade

log = logging.getLogger(__name__)

BACKLOG = 512
STOP_GRACE_SECONDS = 30


def listening_sockets(host: str, port: int, *, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (every address it resolves to), ``SO_REUSEPORT``
    set so that every worker binds the same port and the kernel spreads connections."""
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                # As asyncio does: the IPv4 address of a dual-stack host gets its own socket.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def workers_refusal(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot serve with ``settings`` (a message for the operator),
    or None."""
    if workers < 1:
        return "--workers 至少为 1。"
    if workers > 1 and settings.resolved_database_url().startswith("sqlite"):
        return (
            "多个工作进程需要共享 PostgreSQL 数据库：请设置 DATABASE_URL，"
            "或使用 --workers 1（SQLite）。"
        )
    return None


def configure_logging() -> None:
    """A worker process's logging: one line per record with its pid, personal data masked."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        )
    for noisy in ("httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_sensitive_data_filter()


def worker_share(settings: Settings, workers: int) -> Settings:
    """The settings of one of ``workers`` processes: what is the whole service's, shared out."""
    if workers == 1:
        return settings
    update: dict[str, object] = {}
    # The outgoing rate limit is the bot's, not a worker's.
    if settings.telegram_rate_limit > 0:
        update["telegram_rate_limit"] = settings.telegram_rate_limit / workers
    # So are the cores: questions beyond a worker's share only time-slice the cores the
    # other workers' questions run on (bench/serve_load.py, paced p95 ≈ 670 → 355 ms).
    if settings.embedding_concurrency is None:
        update["embedding_concurrency"] = max(1, (os.cpu_count() or 1) // workers)
    # An address's web-chat allowance: its browsers' connections spread over the workers.
    # (A browser's own allowance is not shared: its kept-alive connection stays on one.)
    update["web_chat_messages_per_minute_per_address"] = max(
        1, settings.web_chat_messages_per_minute_per_address // workers
    )
    return settings.model_copy(update=update)


def prepare(settings: Settings, knowledge: Knowledge | None = None) -> None:
    """Once, before the workers start: migrate the database, build the index if missing."""
    upgrade(settings.resolved_database_url())
    ensure_index(settings, knowledge or build_knowledge(settings))


def supervise(target: Callable[[int], None], workers: int, *, name: str) -> int:
    """Run ``target(index)`` in ``workers`` spawned processes until SIGTERM/SIGINT; a worker
    that exits is started again. Returns the exit code (0)."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=target, args=(index,), name=f"{name}-{index}")
        process.start()
        log.info("started worker %d (pid %s)", index, process.pid)
        return process

    processes = {index: start(index) for index in range(workers)}
    while not stopping:
        time.sleep(0.5)
        for index, process in list(processes.items()):
            if not process.is_alive() and not stopping:
                log.warning(
                    "worker %d (pid %s) exited with %s; restarting",
                    index,
                    process.pid,
                    process.exitcode,
                )
                processes[index] = start(index)
    log.info("stopping %d workers", len(processes))
    for process in processes.values():
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes.values():
        process.join(timeout=STOP_GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
    return 0
