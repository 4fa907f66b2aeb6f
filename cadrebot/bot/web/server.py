"""``cadrebot web [--workers N]``: the console and the web chat served by uvicorn.

The stack is opened (index built if missing and loaded, database migrated) before the port
is bound, so the first request is answered from a warm index.

One process serves on one core: the Python part of every request holds its GIL. With
``--workers N`` (PostgreSQL), N processes serve the same port (``SO_REUSEPORT``, see
:mod:`cadrebot.bot.workers`) under a supervisor, as ``cadrebot serve`` does, for a deployment
without Telegram (a county intranet) that still wants every core. What is kept per process
(the chat's rate limits, a build's progress bar) follows a browser's kept-alive connection,
which stays on one worker; the chat's transcripts are in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys

import uvicorn
from fastapi import FastAPI

from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.wiring import Knowledge, build_conversation_stack
from cadrebot.bot.workers import (
    configure_logging,
    listening_sockets,
    prepare,
    supervise,
    worker_share,
    workers_refusal,
)
from cadrebot.indexer.store import limit_compute_threads
from cadrebot.settings import Settings
from cadrebot.storage import install_sensitive_data_filter

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 75  # as serve's webhook (and nginx's default)


def serve_web(
    settings: Settings,
    *,
    host: str | None,
    port: int | None,
    knowledge: Knowledge,
    workers: int = 1,
) -> int:
    install_sensitive_data_filter()
    refusal = workers_refusal(settings, workers)
    if refusal is not None:
        print(f"错误：{refusal}", file=sys.stderr)
        return 2
    # One math thread for the embedding runtime and FAISS, as `serve` workers do: a server's
    # parallelism is its concurrent requests (measured by bench/web_chat_load.py: 43-53 ms of
    # CPU per question with two threads, 33-38 ms with one).
    limit_compute_threads()
    host = host or settings.web_host
    port = port or settings.web_port
    if workers == 1:
        with build_conversation_stack(settings, knowledge=knowledge) as stack:
            config = _uvicorn_config(create_web_app(web_context_of(stack)), host, port)
            _announce(host, port)
            uvicorn.Server(config).run()
        return 0
    prepare(settings, knowledge)
    _announce(host, port)
    return supervise(
        functools.partial(_worker_main, worker_share(settings, workers), host, port),
        workers,
        name="cadrebot-web",
    )


def _worker_main(settings: Settings, host: str, port: int, index: int) -> None:
    """Entry point of a spawned web worker: its own stack, the shared port."""
    configure_logging()
    with build_conversation_stack(settings) as stack:
        server = uvicorn.Server(_uvicorn_config(create_web_app(web_context_of(stack)), host, port))
        sockets = listening_sockets(host, port)
        # uvicorn stops gracefully on the supervisor's SIGTERM
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve(sockets=sockets))
    log.info("web worker %d stopped", index)


def _uvicorn_config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,  # URLs can carry a searched name; the app logs what matters
        proxy_headers=True,  # X-Forwarded-Proto from a local TLS proxy → Secure cookies
        server_header=False,
        log_level="info",
        # A phone's browser keeps its connection between a farmer's messages (uvicorn's 5 s
        # default closed it each time), so with --workers it stays with its worker.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def _announce(host: str, port: int) -> None:
    print(f"网页控制台：http://{host}:{port}/login　农户在线咨询：http://{host}:{port}/chat")
