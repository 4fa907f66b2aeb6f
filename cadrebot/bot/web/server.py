"""``cadrebot web``: the console and the web chat served by uvicorn in this process.

The stack is opened (index built if missing and loaded, database migrated) before the port
is bound, so the first request is answered from a warm index.
"""

from __future__ import annotations

import logging

import uvicorn

from cadrebot.bot.web.app import create_web_app, web_context_of
from cadrebot.bot.wiring import Knowledge, build_conversation_stack
from cadrebot.indexer.store import limit_compute_threads
from cadrebot.settings import Settings
from cadrebot.storage import install_sensitive_data_filter

log = logging.getLogger(__name__)


def serve_web(
    settings: Settings, *, host: str | None, port: int | None, knowledge: Knowledge
) -> int:
    install_sensitive_data_filter()
    # One math thread for the embedding engine and FAISS, as `serve` workers do: a server's
    # parallelism is its concurrent requests (measured by bench/web_chat_load.py: 43-53 ms of
    # CPU per question with two threads, 33-38 ms with one).
    limit_compute_threads()
    stack = build_conversation_stack(settings, knowledge=knowledge)
    with stack:
        app = create_web_app(web_context_of(stack))
        config = uvicorn.Config(
            app,
            host=host or settings.web_host,
            port=port or settings.web_port,
            access_log=False,  # URLs can carry a searched name; the app logs what matters
            proxy_headers=True,  # X-Forwarded-Proto from a local TLS proxy → Secure cookies
            server_header=False,
            log_level="info",
        )
        print(
            f"网页控制台：http://{config.host}:{config.port}/login"
            f"　农户在线咨询：http://{config.host}:{config.port}/chat"
        )
        uvicorn.Server(config).run()
    return 0
