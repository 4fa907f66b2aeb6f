"""The container health probe: ``python -m cadrebot.ops.probe [--url URL | --local]``.

* default: GET the worker's ``/healthz`` (``--url``, else ``CADREBOT_HEALTH_URL``, else
  ``http://127.0.0.1:<CADREBOT_TELEGRAM_WEBHOOK_PORT>/healthz``); healthy when it answers 200.
* ``--local``: no server needed: the database is reachable and migrated and an index version
  is published in the data dir (for one-off containers and for operators at a shell).

Exit status 0 when healthy, 1 otherwise (what Docker's HEALTHCHECK expects); one line of JSON
on stdout says why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from cadrebot.ops.health import check_health
from cadrebot.settings import Settings

HEALTH_URL_ENV = "CADREBOT_HEALTH_URL"


def default_url(settings: Settings) -> str:
    return os.environ.get(HEALTH_URL_ENV) or (
        f"http://127.0.0.1:{settings.telegram_webhook_port}/healthz"
    )


def probe_url(url: str, timeout: float) -> tuple[bool, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
            body = response.read(64 * 1024).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # 503 from an unhealthy worker lands here
        status, body = exc.code, exc.read(64 * 1024).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return False, {"url": url, "error": type(exc).__name__}
    try:
        detail: Any = json.loads(body)
    except json.JSONDecodeError:
        detail = body[:200]
    return status == 200, {"url": url, "status": status, "body": detail}


def probe_local(settings: Settings) -> tuple[bool, dict[str, Any]]:
    from cadrebot.indexer.store import IndexStore
    from cadrebot.storage import engine_from_settings

    engine = engine_from_settings(settings)
    try:
        report = check_health(engine, IndexStore(settings.index_dir).current_name)
    finally:
        engine.dispose()
    return report.ok, report.to_json()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cadrebot.ops.probe", description=__doc__)
    parser.add_argument("--url", default=None, help="health endpoint to GET")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    parser.add_argument("--local", action="store_true", help="check database and index directly")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.local:
        ok, detail = probe_local(settings)
    else:
        ok, detail = probe_url(args.url or default_url(settings), args.timeout)
    print(json.dumps({"healthy": ok, **detail}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
