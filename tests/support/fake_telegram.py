"""A fake Telegram Bot API server on loopback, and scripted users that talk to the bot.

Real HTTP (aiohttp): the real python-telegram-bot Application reaches it through
``base_url``/``base_file_url``, exactly as it would reach a self-hosted Bot API server.
Implements what the bot uses: getMe, getUpdates (long poll), sendMessage, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, sendDocument (multipart), getFile and the file
download, setWebhook/deleteWebhook (then delivering updates by POST with the secret token),
set/delete/getMyCommands. Parameters arrive the way PTB sends them: form fields whose values
are JSON except for plain strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

Json = dict[str, Any]
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "parse_mode",
        "filename",
    }
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _decode(name: str, value: Any) -> Any:
    if not isinstance(value, str) or name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass
class SentDocument:
    chat_id: int
    file_name: str
    data: bytes
    caption: str
    message_id: int


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-TOKEN"
    bot_id: int = 123456
    username: str = "cadrebot_test_bot"
    host: str = "127.0.0.1"

    updates: list[Json] = field(default_factory=list)  # not yet confirmed by the bot
    delivered: dict[int, int] = field(default_factory=dict)  # update id -> times delivered
    acked_offset: int = 0
    messages: dict[int, Json] = field(default_factory=dict)  # bot messages by message id
    chat_log: dict[int, list[int]] = field(default_factory=dict)  # chat -> message ids
    documents: list[SentDocument] = field(default_factory=list)
    callback_answers: list[Json] = field(default_factory=list)
    calls: list[tuple[str, Json]] = field(default_factory=list)
    webhook: Json | None = None
    webhook_deliveries: list[int] = field(default_factory=list)  # HTTP status per POST
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (path, data)
    get_updates_calls: int = 0
    stopping: bool = False  # answer polls at once (a bot is shutting down)
    offsets: list[int] = field(default_factory=list)  # the offset of every getUpdates, in order
    on_get_updates: Callable[[int], None] | None = None
    """Called with a getUpdates call's offset before it confirms anything (tests check what
    the bot had stored by then)."""
    holding_replies: bool = False  # see hold_replies

    def __post_init__(self) -> None:
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._new_update = asyncio.Event()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.stopping = True  # end pending long polls (a killed bot's too) before shutting down
        self.wake()
        self.release_replies()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ users' side

    def user(self, user_id: int, first_name: str = "用户") -> FakeUser:
        return FakeUser(self, user_id, first_name)

    def enqueue(self, body: Json) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **body}
        if self.webhook is not None:
            asyncio.get_running_loop().create_task(self._post_to_webhook(update))
        else:
            self.updates.append(update)
            self._new_update.set()
        return update_id

    async def _post_to_webhook(self, update: Json) -> None:
        assert self.webhook is not None
        if self._session is None:
            self._session = ClientSession()
        headers = {}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        async with self._session.post(self.webhook["url"], json=update, headers=headers) as resp:
            self.webhook_deliveries.append(resp.status)
            self.delivered[update["update_id"]] = self.delivered.get(update["update_id"], 0) + 1

    def wake(self) -> None:
        """End a pending long poll now (with no updates): lets a stopping bot stop at once."""
        self._new_update.set()

    def hold_replies(self) -> None:
        """From now on a sent message is stored (users see it) but the bot's sendMessage call
        gets no answer until :meth:`release_replies`: the bot is stuck mid-update."""
        self.holding_replies = True
        self._released.clear()

    def release_replies(self) -> None:
        self.holding_replies = False
        self._released.set()

    def add_file(self, file_name: str, data: bytes) -> str:
        file_id = f"file-{next(self._file_ids)}"
        self.files[file_id] = (f"documents/{file_id}-{file_name}", data)
        return file_id

    def chat_messages(self, chat_id: int) -> list[Json]:
        return [self.messages[i] for i in self.chat_log.get(chat_id, [])]

    async def wait_until(self, predicate: Callable[[], Any], within: float = 20.0) -> Any:
        """Wait until ``predicate()`` is truthy (checked after every bot action); return it."""
        deadline = time.monotonic() + within
        async with self._changed:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the bot did not do what was expected in time")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ the Bot API

    async def _params(self, request: web.Request) -> Json:
        params: Json = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                body = await request.json()
                params.update(body)
                return params
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    params[name] = (value.filename, value.file.read())
                else:
                    params[name] = _decode(name, value)
        return {k: _decode(k, v) if isinstance(v, str) else v for k, v in params.items()}

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": f"Not Found: {method}"},
                status=404,
            )
        try:
            if method.lower() == "getupdates":
                result = await self._m_getupdates(params, request)
            else:
                result = await handler(params)
        except _ApiError as error:
            return web.json_response(
                {"ok": False, "error_code": error.code, "description": error.description},
                status=error.code,
            )
        await self._touch()
        return web.json_response({"ok": True, "result": result})

    def _bot_user(self) -> Json:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "政策助手",
            "username": self.username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getme(self, params: Json) -> Json:
        return self._bot_user()

    async def _m_getupdates(self, params: Json, request: web.Request | None = None) -> list[Json]:
        if self.webhook is not None:
            raise _ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
        self.get_updates_calls += 1
        offset = int(params.get("offset") or 0)
        self.offsets.append(offset)
        if self.on_get_updates is not None:
            self.on_get_updates(offset)
        if offset:
            self.acked_offset = max(self.acked_offset, offset)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        await self._touch()
        if self.stopping:
            return []
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        while not self.updates:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), remaining)
            except TimeoutError:
                return []
            if not self.updates:  # woken to end the poll (see wake)
                return []
        batch = self.updates[:limit]
        transport = request.transport if request is not None else None
        if request is not None and (transport is None or transport.is_closing()):
            return []  # the poller is gone (a killed bot): nothing was delivered
        for update in batch:
            self.delivered[update["update_id"]] = self.delivered.get(update["update_id"], 0) + 1
        return batch

    def _store(self, chat_id: int, body: Json) -> Json:
        message_id = next(self._message_ids)
        message = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": self._bot_user(),
            **body,
        }
        self.messages[message_id] = message
        self.chat_log.setdefault(chat_id, []).append(message_id)
        return message

    async def _m_sendmessage(self, params: Json) -> Json:
        body: Json = {"text": str(params["text"])}
        markup = params.get("reply_markup")
        if markup and "inline_keyboard" in markup:
            body["reply_markup"] = markup
        elif markup:  # ForceReply and reply keyboards are not part of the message Telegram returns
            body["x_requested_markup"] = markup
        message = self._store(int(params["chat_id"]), body)
        if self.holding_replies:
            await self._touch()
            await self._released.wait()
        return message

    def _existing(self, params: Json) -> Json:
        message = self.messages.get(int(params.get("message_id") or 0))
        if message is None or message["chat"]["id"] != int(params["chat_id"]):
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    async def _m_editmessagetext(self, params: Json) -> Json:
        message = self._existing(params)
        markup = params.get("reply_markup") or None
        if message.get("text") == params["text"] and message.get("reply_markup") == markup:
            raise _ApiError(400, "Bad Request: message is not modified")
        message["text"] = str(params["text"])
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        message["edits"] = message.get("edits", 0) + 1
        return message

    async def _m_editmessagereplymarkup(self, params: Json) -> Json:
        message = self._existing(params)
        markup = params.get("reply_markup") or None
        if message.get("reply_markup") == markup:
            raise _ApiError(400, "Bad Request: message is not modified")
        if markup is None or not markup.get("inline_keyboard"):
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edits"] = message.get("edits", 0) + 1
        return message

    async def _m_answercallbackquery(self, params: Json) -> bool:
        self.callback_answers.append(params)
        return True

    async def _m_senddocument(self, params: Json) -> Json:
        file_name, data = params["document"]
        chat_id = int(params["chat_id"])
        file_id = self.add_file(file_name, data)
        message = self._store(
            chat_id,
            {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": f"u{file_id}",
                    "file_name": file_name,
                    "file_size": len(data),
                },
                "caption": str(params.get("caption") or ""),
            },
        )
        self.documents.append(
            SentDocument(
                chat_id, file_name, data, str(params.get("caption") or ""), message["message_id"]
            )
        )
        return message

    async def _m_getfile(self, params: Json) -> Json:
        file_id = str(params["file_id"])
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, data = self.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": path,
        }

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        for stored_path, data in self.files.values():
            if stored_path == path:
                return web.Response(body=data)
        return web.Response(status=404)

    async def _m_setwebhook(self, params: Json) -> bool:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        return True

    async def _m_deletewebhook(self, params: Json) -> bool:
        self.webhook = None
        return True

    async def _m_getwebhookinfo(self, params: Json) -> Json:
        return {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self.updates),
        }

    async def _m_setmycommands(self, params: Json) -> bool:
        return True

    async def _m_deletemycommands(self, params: Json) -> bool:
        return True

    async def _m_getmycommands(self, params: Json) -> list[Json]:
        return []


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class FakeUser:
    """A person in a private chat with the bot (chat id = user id)."""

    def __init__(self, server: FakeTelegram, user_id: int, first_name: str) -> None:
        self.server = server
        self.id = user_id
        self.first_name = first_name
        self._seen = 0  # bot messages in this chat already consumed by expect()

    def _from(self) -> Json:
        return {
            "id": self.id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": "zh-hans",
        }

    def _message(self, **body: Any) -> Json:
        return {
            "message_id": next(self.server._message_ids),
            "date": int(time.time()),
            "chat": {"id": self.id, "type": "private", "first_name": self.first_name},
            "from": self._from(),
            **body,
        }

    def say(self, text: str, *, reply_to: Json | None = None) -> int:
        body: Json = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if reply_to is not None:
            body["reply_to_message"] = reply_to
        return self.server.enqueue({"message": self._message(**body)})

    def send_document(self, file_name: str, data: bytes, *, claimed_size: int | None = None) -> int:
        file_id = self.server.add_file(file_name, data)
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": file_name,
            "file_size": len(data) if claimed_size is None else claimed_size,
        }
        return self.server.enqueue({"message": self._message(document=document)})

    def press(self, message: Json, label: str) -> int:
        """Tap the inline button whose text is ``label`` (a leading ✓ is ignored)."""
        current = self.server.messages.get(message["message_id"], message)
        data = button_data(current, label)
        query = {
            "id": str(next(self.server._callback_ids)),
            "from": self._from(),
            "chat_instance": f"ci-{self.id}",
            "message": json.loads(json.dumps(current)),  # a snapshot, as Telegram sends it
            "data": data,
        }
        return self.server.enqueue({"callback_query": query})

    def messages(self) -> list[Json]:
        return self.server.chat_messages(self.id)

    async def expect(self, contains: str = "", *, within: float = 20.0) -> Json:
        """The next bot message in this chat (after the ones already consumed) that contains
        ``contains``; skipped messages are consumed too."""

        def find() -> Json | None:
            messages = self.messages()
            for index in range(self._seen, len(messages)):
                if contains in messages[index].get("text", messages[index].get("caption", "")):
                    self._seen = index + 1
                    return messages[index]
            return None

        try:
            found: Json = await self.server.wait_until(find, within)
        except TimeoutError:
            texts = [m.get("text", "")[:60] for m in self.messages()[self._seen :]]
            raise AssertionError(
                f"no reply containing {contains!r}; new messages: {texts}"
            ) from None
        return found

    def skip_all(self) -> None:
        self._seen = len(self.messages())

    async def expect_edit(self, message: Json, contains: str, *, within: float = 20.0) -> Json:
        message_id = message["message_id"]

        def edited() -> Json | None:
            current = self.server.messages[message_id]
            return current if contains in current.get("text", "") and current.get("edits") else None

        return await self.server.wait_until(edited, within)  # type: ignore[no-any-return]


def buttons(message: Json) -> list[Json]:
    markup = message.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def button_labels(message: Json) -> list[str]:
    return [b["text"] for b in buttons(message)]


def button_data(message: Json, label: str) -> str:
    for button in buttons(message):
        if button["text"] == label or button["text"].removeprefix("✓ ") == label:
            return str(button["callback_data"])
    raise AssertionError(f"no button {label!r}; buttons: {button_labels(message)}")
