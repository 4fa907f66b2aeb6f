"""``cadrebot serve --workers N``: the Telegram webhook served by N processes sharing a database.

Each worker process serves HTTP with uvicorn on the same port (``SO_REUSEPORT``: the kernel
spreads connections over the workers; behind nginx, or with one port per worker, the same
code serves). Its routes are Starlette routes (:meth:`WebhookWorker.routes`), so the web app
can carry them beside its own pages on one HTTP stack (:meth:`WebhookWorker.asgi_app` is the
seam):

* ``POST /<path>``: Telegram's webhook. The secret token is checked, the update stored in
  the inbox (``inbound_updates``, keyed by ``update_id``: a repeated POST is dropped) and 200
  returned at once; processing happens after the response.
* ``GET /healthz``: database reachable and migrated, index loaded and its version (503 if not).
* ``GET /metrics``: Prometheus metrics of this worker.

Processing (see :mod:`cadrebot.storage.inbox`; the dispatcher is
:class:`~cadrebot.bot.telegram.inbox_dispatch.InboxDispatcher`, which long polling shares): a
chat's updates are taken one at a time, oldest first, under a lease on the chat's oldest
pending update, and run through the python-telegram-bot Application (``process_update``). So
one chat's updates are processed in order and by one worker at a time, different chats in
parallel on every worker. A sweeper takes over updates nobody is on (a dead worker's, once
its lease expires, or a busy worker's backlog). The application's index follower (one per
process, see :mod:`cadrebot.bot.telegram.jobs`) switches to a newly published index version within
:attr:`Settings.index_poll_seconds` (an admin's upload or /reload builds it once, on the
worker that received it, under a lock shared by all workers).

A turn completes its update's inbox row in its own transaction: the worker opens a
receipt for the update (:class:`~cadrebot.storage.inbox.Receipts`) and the Telegram
channel hands it to the conversation core with the message.

With ``--workers 1`` the worker runs in this process; with more, this process prepares the
database and the index once, then starts and supervises the workers (a worker that dies is
restarted; SIGTERM/SIGINT stop them all gracefully).

``cadrebot run --webhook`` is not this: it is python-telegram-bot's own webhook server
(tornado, inside PTB's Updater), kept as the one-process, no-inbox way to try a webhook out.
Its updates are confirmed before they are processed, so production uses ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from cadrebot.bot.telegram.app import ALLOWED_UPDATES, ConfigurationError, bot_token
from cadrebot.bot.telegram.inbox_dispatch import (
    InboxRuntime,
    chat_key_of,
    inbox_runtime,
    stop_on_signals,
    update_kind,
)
from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.wiring import Knowledge
from cadrebot.bot.workers import (
    BACKLOG,
    configure_logging,
    listening_sockets,
    prepare,
    supervise,
    worker_share,
    workers_refusal,
)
from cadrebot.indexer.store import limit_compute_threads
from cadrebot.ops.health import check_health
from cadrebot.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY_BYTES = 1024 * 1024  # an update is a few KB; a document is sent as a file_id
KEEP_ALIVE_SECONDS = 75
SHUTDOWN_GRACE_SECONDS = 10  # in-flight requests only store an update: milliseconds


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
        refusal = workers_refusal(settings, workers)
        if refusal is not None:
            raise ConfigurationError(refusal)
        return cls(
            listen=settings.telegram_webhook_listen,
            port=port if port is not None else settings.telegram_webhook_port,
            url_path=settings.telegram_webhook_path.strip("/"),
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
            webhook_url=settings.telegram_webhook_url,
            workers=workers,
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a running worker: it installs no signal handlers of its own.

    ``Server.serve`` swaps in its own SIGTERM/SIGINT handlers while it runs (and raises the
    signal again once it has stopped). The worker's stop, the event of
    :func:`stop_on_signals` or the caller's, must be the only one: a stop is one sequence
    (the HTTP server, then the dispatcher), and a caller that passed its own event (a test,
    an embedding program) must not have the process's signal handlers changed under it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebhookWorker:
    """One worker process's webhook server; its inbox dispatcher processes what it stores."""

    def __init__(self, runtime: InboxRuntime, config: ServeConfig) -> None:
        self.services = runtime.services
        self.application = runtime.application
        self.config = config
        self.metrics = runtime.metrics
        self.inbox = runtime.inbox
        self.owner = runtime.inbox.owner
        self.dispatcher = runtime.dispatcher()
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ HTTP surface

    def routes(self) -> list[BaseRoute]:
        """The webhook, /healthz and /metrics: what any ASGI app of this worker carries."""
        return [
            Route(f"/{self.config.url_path}", self._receive, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
        ]

    def asgi_app(self) -> ASGIApp:
        """The web app (console and web chat) with this worker's webhook, /healthz and
        /metrics on the same port: one HTTP stack for everything the project serves.

        /healthz is this worker's (the web app leaves its own out when given one): its
        ``worker`` (pid, owner) is how the supervisor test and the load bench count the
        workers answering on the port.
        """
        return create_web_app(web_context_of(self.services), extra_routes=self.routes())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        version = self.services.knowledge.searcher.loaded_version
        if version:
            self.metrics.index_loaded(version)
        config = uvicorn.Config(
            self.asgi_app(),
            interface="asgi3",
            log_config=None,  # the process's logging is ours (see _configure_logging)
            access_log=False,
            server_header=False,
            backlog=BACKLOG,
            # Telegram (and nginx) keep their connections open between updates, as aiohttp
            # let them (75 s); uvicorn's 5 s default would close them between bursts.
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        server = _EmbeddedServer(config)
        sockets = listening_sockets(self.config.listen, self.config.port)
        serving = asyncio.create_task(server.serve(sockets=sockets))
        self._server, self._serving = server, serving
        while not server.started:
            if serving.done():
                for sock in sockets:
                    sock.close()
                serving.result()  # what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        self.dispatcher.start()
        log.info(
            "worker %s serving /%s on %s:%d",
            self.owner,
            self.config.url_path,
            self.config.listen,
            self.config.port,
        )

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking requests (in-flight ones are answered), let the updates in process
        finish (their chats' remaining updates stay pending for the other workers), stop
        the loops."""
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is not None and serving is not None:
            server.should_exit = True
            try:
                await serving
            except Exception:
                log.exception("the HTTP server did not stop cleanly")
        await self.dispatcher.stop(grace)

    # ------------------------------------------------------------------ HTTP

    async def _receive(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.config.secret_token.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        raw = await _read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return PlainTextResponse("too large", status_code=413)
        try:
            body = json.loads(raw)
            update_id = int(body["update_id"])
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("not an update", status_code=400)
        if not isinstance(body, dict):
            return PlainTextResponse("not an update", status_code=400)
        chat_key = chat_key_of(body)
        try:
            new = await asyncio.to_thread(self.inbox.add, update_id, chat_key, body)
        except Exception:
            # Not stored: a non-2xx makes Telegram (or nginx) deliver it again.
            log.exception("could not store update %s", update_id)
            self.metrics.error("inbox")
            return PlainTextResponse("try again", status_code=503)
        if new:
            self.metrics.update_received(update_kind(body))
            self.dispatcher.kick(chat_key)
        return PlainTextResponse("ok")

    async def _healthz(self, request: Request) -> Response:
        searcher = self.services.knowledge.searcher
        report = await asyncio.to_thread(
            check_health,
            self.services.database.engine,
            lambda: searcher.loaded_version,
        )
        body = {**report.to_json(), "worker": {"pid": os.getpid(), "owner": self.owner}}
        return JSONResponse(body, status_code=report.http_status)

    async def _metrics(self, request: Request) -> Response:
        data, content_type = self.metrics.exposition()
        return Response(data, media_type=content_type)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes (the rest
    is not read: a sender cannot make the worker hold more than ``limit`` in memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
    if stop is None:
        stop = stop_on_signals()
    async with inbox_runtime(settings, knowledge=knowledge) as runtime:
        if register_webhook and config.webhook_url:
            await runtime.application.bot.set_webhook(
                url=config.webhook_url,
                secret_token=config.secret_token,
                allowed_updates=list(ALLOWED_UPDATES),
            )
        worker = WebhookWorker(runtime, config)
        try:
            await worker.start()
            await stop.wait()
        finally:
            await worker.stop()


def _worker_main(settings: Settings, config: ServeConfig, index: int) -> None:
    """Entry point of a spawned worker process."""
    _configure_logging(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(settings, config, register_webhook=index == 0))


def _configure_logging(settings: Settings) -> None:
    configure_logging()
    # uvicorn's start and stop lines: the worker logs its own.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


# ---------------------------------------------------------------------- the supervisor


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
    worker_settings = worker_share(settings, workers)
    if workers == 1:
        asyncio.run(run_worker(worker_settings, config, knowledge=knowledge, register_webhook=True))
        return 0
    return supervise(
        functools.partial(_worker_main, worker_settings, config), workers, name="cadrebot-worker"
    )
