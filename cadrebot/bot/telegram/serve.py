"""``cadrebot serve --workers N``: the Telegram webhook served by N processes sharing a database.

Each worker process runs an aiohttp server on the same port (``SO_REUSEPORT``: the kernel
spreads connections over the workers; behind nginx, or with one port per worker, the same
code serves) with three routes:

* ``POST /<path>``: Telegram's webhook. The secret token is checked, the update stored in
  the inbox (``inbound_updates``, keyed by ``update_id``: a repeated POST is dropped) and 200
  returned at once; processing happens after the response.
* ``GET /healthz``: database reachable and migrated, index loaded and its version (503 if not).
* ``GET /metrics``: Prometheus metrics of this worker.

Processing (see :mod:`cadrebot.storage.inbox`): a chat's updates are taken one at a time,
oldest first, under a lease on the chat's oldest pending update, and run through the
python-telegram-bot Application (``process_update``). So one chat's updates are processed in
order and by one worker at a time, different chats in parallel on every worker. A sweeper
takes over updates nobody is on (a dead worker's, once its lease expires, or a busy
worker's backlog). The application's index follower (one per process, see
:mod:`cadrebot.bot.telegram.jobs`) switches to a newly published index version within
:attr:`Settings.index_poll_seconds` (an admin's upload or /reload builds it once, on the
worker that received it, under a lock shared by all workers).

A turn completes its update's inbox row in its own transaction: the worker opens a
receipt for the update (:class:`~cadrebot.storage.inbox.Receipts`) and the Telegram
channel hands it to the conversation core with the message.

With ``--workers 1`` the worker runs in this process; with more, this process prepares the
database and the index once, then starts and supervises the workers (a worker that dies is
restarted; SIGTERM/SIGINT stop them all gracefully).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from telegram import Update

from cadrebot.bot.telegram.app import (
    ALLOWED_UPDATES,
    ConfigurationError,
    bot_token,
    build_application,
)
from cadrebot.bot.telegram.routing import AnyApplication
from cadrebot.bot.telegram.services import ServiceHooks, TelegramServices, build_services
from cadrebot.bot.wiring import Knowledge, build_knowledge, ensure_index
from cadrebot.handlers.ports import PolicyAnswer
from cadrebot.indexer.store import set_faiss_threads
from cadrebot.ops.health import check_health
from cadrebot.ops.metrics import BotMetrics
from cadrebot.settings import Settings
from cadrebot.storage import CaseDatabase, install_sensitive_data_filter, upgrade
from cadrebot.storage.inbox import ClaimedUpdate, Receipts, SqlInbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
STALE_GRACE = timedelta(seconds=2)
PRUNE_EVERY_SECONDS = 600.0
KEEP_DONE = timedelta(days=2)  # Telegram gives up redelivering long before that
_CHAT_CARRIERS = (
    "message",
    "edited_message",
    "callback_query",
    "channel_post",
    "edited_channel_post",
    "my_chat_member",
    "chat_member",
)


@dataclass(frozen=True)
class ServeConfig:
    listen: str
    port: int
    url_path: str
    secret_token: str
    webhook_url: str | None  # registered with Telegram at start when set
    workers: int = 1

    @classmethod
    def from_settings(
        cls, settings: Settings, *, workers: int = 1, port: int | None = None
    ) -> ServeConfig:
        if bot_token(settings) is None:
            raise ConfigurationError(
                "未设置 Telegram 机器人令牌：请设置环境变量 TELEGRAM_BOT_TOKEN"
                "（或 CADREBOT_TELEGRAM_BOT_TOKEN）后再运行 `cadrebot serve`。"
            )
        if settings.telegram_webhook_secret is None:
            raise ConfigurationError(
                "`cadrebot serve` 需要设置 CADREBOT_TELEGRAM_WEBHOOK_SECRET"
                "（1-256 位字母、数字、_ 或 -），用于校验每个请求确实来自 Telegram。"
            )
        if workers < 1:
            raise ConfigurationError("--workers 至少为 1。")
        if workers > 1 and settings.resolved_database_url().startswith("sqlite"):
            raise ConfigurationError(
                "多个工作进程需要共享 PostgreSQL 数据库：请设置 DATABASE_URL，"
                "或使用 --workers 1（SQLite）。"
            )
        return cls(
            listen=settings.telegram_webhook_listen,
            port=port if port is not None else settings.telegram_webhook_port,
            url_path=settings.telegram_webhook_path.strip("/"),
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
            webhook_url=settings.telegram_webhook_url,
            workers=workers,
        )


def chat_key_of(update: dict[str, Any]) -> str:
    """The chat an update belongs to (what its order is kept within).

    A private chat's id is its user's id, so a button press whose message is no longer
    available (keyed by the user) stays in order with that chat's messages.
    """
    for name in _CHAT_CARRIERS:
        carrier = update.get(name)
        if not isinstance(carrier, dict):
            continue
        message = carrier.get("message") if name == "callback_query" else carrier
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return str(chat["id"])
        sender = carrier.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return str(sender["id"])
    return "-"


def update_kind(update: dict[str, Any]) -> str:
    return next((name for name in _CHAT_CARRIERS if name in update), "other")


def worker_owner() -> str:
    """A name for this worker process, unique across restarts and machines."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookWorker:
    """One worker process's webhook server, dispatcher and sweeper."""

    def __init__(
        self,
        services: TelegramServices,
        application: AnyApplication,
        config: ServeConfig,
        *,
        inbox: SqlInbox,
        receipts: Receipts,
        metrics: BotMetrics,
    ) -> None:
        settings = services.settings
        self.services = services
        self.application = application
        self.config = config
        self.metrics = metrics
        self.inbox = inbox
        self.owner = inbox.owner
        self._receipts = receipts
        self._lease_seconds = settings.serve_lease_seconds
        self._sweep_seconds = settings.serve_sweep_seconds
        self._slots = asyncio.Semaphore(settings.telegram_concurrent_updates)
        self._draining: set[str] = set()
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def web_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(f"/{self.config.url_path}", self._receive)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        version = self.services.knowledge.searcher.loaded_version
        if version:
            self.metrics.index_loaded(version)
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.config.listen, self.config.port, reuse_port=True, backlog=512
        )
        await site.start()
        self._loops = [
            asyncio.create_task(self._every(self._sweep_seconds, self._sweep)),
            asyncio.create_task(self._every(PRUNE_EVERY_SECONDS, self._prune)),
        ]
        log.info(
            "worker %s serving /%s on %s:%d",
            self.owner,
            self.config.url_path,
            self.config.listen,
            self.config.port,
        )

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking requests, let the updates in process finish (their chats' remaining
        updates stay pending for the other workers), stop the loops."""
        self._stopping = True
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    # ------------------------------------------------------------------ HTTP

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.config.secret_token.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            body = await request.json()
            update_id = int(body["update_id"])
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400, text="not an update")
        if not isinstance(body, dict):
            return web.Response(status=400, text="not an update")
        chat_key = chat_key_of(body)
        try:
            new = await asyncio.to_thread(self.inbox.add, update_id, chat_key, body)
        except Exception:
            # Not stored: a non-2xx makes Telegram (or nginx) deliver it again.
            log.exception("could not store update %s", update_id)
            self.metrics.error("inbox")
            return web.Response(status=503, text="try again")
        if new:
            self.metrics.update_received(update_kind(body))
            self.kick(chat_key)
        return web.Response(text="ok")

    async def _healthz(self, request: web.Request) -> web.Response:
        searcher = self.services.knowledge.searcher
        report = await asyncio.to_thread(
            check_health,
            self.services.database.engine,
            lambda: searcher.loaded_version,
        )
        body = {**report.to_json(), "worker": {"pid": os.getpid(), "owner": self.owner}}
        return web.json_response(body, status=report.http_status)

    async def _metrics(self, request: web.Request) -> web.Response:
        data, content_type = self.metrics.exposition()
        response = web.Response(body=data)
        response.headers["Content-Type"] = content_type
        return response

    # ------------------------------------------------------------------ processing

    def kick(self, chat_key: str) -> None:
        """Make sure this worker works through ``chat_key``'s pending updates."""
        if self._stopping:
            return
        if chat_key in self._draining:
            self._dirty.add(chat_key)  # the running drain looks once more before it ends
            return
        self._draining.add(chat_key)
        task = asyncio.create_task(self._drain(chat_key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, chat_key: str) -> None:
        try:
            async with self._slots:
                while not self._stopping:
                    self._dirty.discard(chat_key)
                    claimed = await asyncio.to_thread(self.inbox.claim_next, chat_key)
                    if claimed is None:
                        if chat_key in self._dirty:
                            continue
                        break
                    await self._process(claimed)
        except Exception:
            log.exception("dispatching chat %s failed", chat_key)
            self.metrics.error("dispatch")
        finally:
            self._draining.discard(chat_key)
            self._dirty.discard(chat_key)

    async def _process(self, claimed: ClaimedUpdate) -> None:
        receipt = self._receipts.open(claimed.update_id)
        heartbeat = asyncio.create_task(self._renew(claimed.update_id))
        failed = False
        try:
            update = Update.de_json(claimed.payload, self.application.bot)
            await self.application.process_update(update)
        except Exception:
            failed = True
            log.exception("update %s could not be processed", claimed.update_id)
            self.metrics.error("dispatch")
        finally:
            heartbeat.cancel()
            self._receipts.close(claimed.update_id)
        if not receipt.done:
            await asyncio.to_thread(self.inbox.finish, claimed.update_id, failed=failed)

    async def _renew(self, update_id: int) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                if not await asyncio.to_thread(self.inbox.renew, update_id):
                    log.warning("lost the lease on update %s", update_id)
                    return
            except Exception:
                log.exception("could not renew the lease on update %s", update_id)

    # ------------------------------------------------------------------ periodic work

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception:
                log.exception("periodic %s failed", getattr(action, "__name__", action))
                self.metrics.error("periodic")

    async def _sweep(self) -> None:
        for chat_key in await asyncio.to_thread(self.inbox.stale_chats, grace=STALE_GRACE):
            self.kick(chat_key)

    async def _prune(self) -> None:
        removed = await asyncio.to_thread(self.inbox.prune, KEEP_DONE)
        if removed:
            log.info("forgot %d finished updates", removed)


# ---------------------------------------------------------------------- one worker


async def run_worker(
    settings: Settings,
    config: ServeConfig,
    *,
    knowledge: Knowledge | None = None,
    stop: asyncio.Event | None = None,
    register_webhook: bool = False,
) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    loop = asyncio.get_running_loop()
    # Blocking work (database, search) runs in threads: enough for the concurrent chats.
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.telegram_concurrent_updates + 4,
            thread_name_prefix="cadrebot",
        )
    )
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    metrics = BotMetrics()
    database = CaseDatabase(settings, tz=ZoneInfo(settings.timezone))
    await asyncio.to_thread(database.open)
    inbox = SqlInbox(
        database.engine, owner=worker_owner(), lease=timedelta(seconds=settings.serve_lease_seconds)
    )
    receipts = Receipts(inbox.owner)

    def answered(seconds: float, answer: PolicyAnswer) -> None:
        metrics.answered(seconds, found=answer.found)

    hooks = ServiceHooks(
        on_answer=answered,
        on_case_filed=metrics.case_filed,
        on_index_loaded=metrics.index_loaded,
        claim_job=inbox.claim_job,
        receipts=receipts.get,
    )
    services = build_services(settings, knowledge=knowledge, database=database, hooks=hooks)
    await asyncio.to_thread(services.open)
    try:
        application = build_application(services)
        await application.initialize()
        try:
            if application.post_init is not None:
                await application.post_init(application)
            if register_webhook and config.webhook_url:
                await application.bot.set_webhook(
                    url=config.webhook_url,
                    secret_token=config.secret_token,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            await application.start()
            worker = WebhookWorker(
                services, application, config, inbox=inbox, receipts=receipts, metrics=metrics
            )
            try:
                await worker.start()
                await stop.wait()
            finally:
                await worker.stop()
                await application.stop()
        finally:
            await application.shutdown()
    finally:
        await asyncio.to_thread(services.close)


def _worker_settings(settings: Settings, workers: int) -> Settings:
    # The outgoing rate limit is the bot's, not a worker's: share it out.
    if settings.telegram_rate_limit > 0 and workers > 1:
        return settings.model_copy(
            update={"telegram_rate_limit": settings.telegram_rate_limit / workers}
        )
    return settings


def _worker_main(settings: Settings, config: ServeConfig, index: int) -> None:
    """Entry point of a spawned worker process."""
    _configure_logging(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, config, register_webhook=index == 0))


def _configure_logging(settings: Settings) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        )
    for noisy in ("httpx", "apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_sensitive_data_filter()


# ---------------------------------------------------------------------- the supervisor


def prepare(settings: Settings, knowledge: Knowledge | None = None) -> None:
    """Once, before the workers start: migrate the database, build the index if missing."""
    upgrade(settings.resolved_database_url())
    ensure_index(settings, knowledge or build_knowledge(settings))


COMPUTE_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_compute_threads() -> None:
    """One math thread per worker process, unless the operator set the variables.

    The embedding engine and FAISS parallelise one query over OpenMP threads, which pays off
    for one question at a time but not for a server: its parallelism is concurrent updates
    and processes, and OpenMP threads of several processes spin-waiting on the same cores
    burn the CPU the other updates need (measured here: 49 ms of CPU per question with two
    threads, 33 ms with one). Must run before the engines load: libgomp reads the variable
    when it is loaded (the worker processes inherit it); FAISS's is already loaded, so it is
    told directly.
    """
    for name in COMPUTE_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    set_faiss_threads(int(os.environ["OMP_NUM_THREADS"]))


def serve(
    settings: Settings,
    *,
    workers: int = 1,
    port: int | None = None,
    knowledge: Knowledge | None = None,
) -> int:
    """``cadrebot serve``: run the webhook workers until SIGTERM/SIGINT; the exit code."""
    try:
        config = ServeConfig.from_settings(settings, workers=workers, port=port)
    except ConfigurationError as error:
        print(f"错误：{error}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    limit_compute_threads()
    prepare(settings, knowledge)
    worker_settings = _worker_settings(settings, workers)
    if workers == 1:
        asyncio.run(run_worker(worker_settings, config, knowledge=knowledge, register_webhook=True))
        return 0
    return _supervise(worker_settings, config)


def _supervise(settings: Settings, config: ServeConfig) -> int:
    context = multiprocessing.get_context("spawn")
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker_main,
            args=(settings, config, index),
            name=f"cadrebot-worker-{index}",
        )
        process.start()
        log.info("started worker %d (pid %s)", index, process.pid)
        return process

    processes = {index: start(index) for index in range(config.workers)}
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
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()
    return 0
