"""python-telegram-bot's HTTP transport on aiohttp.

PTB talks to the Bot API through a :class:`telegram.request.BaseRequest`; its default is
httpx. Under load httpx dominated a serving worker: 42% of the time a worker held the GIL was
spent sending replies, much of it in httpcore's connection-pool bookkeeping, which grows with
the number of concurrent requests (py-spy on `bench/serve_load.py`). aiohttp's client (the
webhook itself is served by uvicorn since the web app joined it) does the same requests for
a fraction of that. Behaviour is PTB's: the same
timeouts, ``TimedOut`` for a timeout and ``NetworkError`` for any other transport failure (PTB
turns HTTP error statuses into its own exceptions from the status and body returned here).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

_DEFAULT = BaseRequest.DEFAULT_NONE


class AiohttpRequest(BaseRequest):
    """A :class:`BaseRequest` on one :class:`aiohttp.ClientSession` (kept-alive connections)."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 64,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = _DEFAULT,
        write_timeout: Any = _DEFAULT,
        connect_timeout: Any = _DEFAULT,
        pool_timeout: Any = _DEFAULT,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data is not None else None
        if read_timeout is _DEFAULT:
            read_timeout = self._read_timeout
        if write_timeout is _DEFAULT:
            write_timeout = self._media_write_timeout if files else self._write_timeout
        if connect_timeout is _DEFAULT:
            connect_timeout = self._connect_timeout
        if pool_timeout is _DEFAULT:
            pool_timeout = self._pool_timeout
        # aiohttp has no separate write timeout: the request's time to first response byte
        # covers sending it, so the write allowance is added to the read one.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_sum(pool_timeout, connect_timeout),
            sock_connect=connect_timeout,
            sock_read=_sum(read_timeout, write_timeout),
        )
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            data = _form(request_data, files) if files else request_data.json_parameters
        try:
            async with session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


def _sum(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return None
    return first + second


def _form(request_data: RequestData, files: dict[str, Any]) -> aiohttp.FormData:
    # Filenames go as UTF-8, as httpx sends them and Telegram shows them (aiohttp would
    # percent-encode 案件台账.xlsx into %E6%A1%88...).
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form
