"""A local stand-in for the Telegram Bot API that the real aiogram client talks to over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Test Bot", "username": "test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}


class ApiError(Exception):
    """An error answer of the Bot API (ok: false) with its HTTP status."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


WEBHOOK_CONFLICT = ("Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first")
POLLING_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


@dataclass
class Call:
    """One request the bot made."""

    token: str
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FakeTelegram:
    """Serves getMe/getUpdates/sendMessage/… per token on 127.0.0.1, in a thread with its own loop."""

    def __init__(self, *, updates_delay: float = 0.0) -> None:
        self.calls: list[Call] = []
        self.updates: dict[str, list[dict[str, Any]]] = {}
        self.fail_methods: dict[str, tuple[int, str]] = {}
        self.updates_delay = updates_delay
        # Seconds to hold a method's answer (a slow Bot API makes a handler slow, e.g. for drain tests).
        self.method_delays: dict[str, float] = {}
        # Tokens whose getUpdates always answers 409, as if a process outside the test polled them.
        self.foreign_pollers: set[str] = set()
        # Calls answered successfully, in the order their answers went out.
        self.completed: list[Call] = []
        # Per token: the webhook set with setWebhook ({} when none), and how many polls were cut by a newer one.
        self.webhooks: dict[str, dict[str, str]] = {}
        self.conflicts: dict[str, int] = {}
        # Per method: error bodies to answer once each, in order, before answering normally again
        # (e.g. {"ok": False, "error_code": 429, "description": "...", "parameters": {"retry_after": 1}}).
        self.fail_next: dict[str, list[dict[str, Any]]] = {}
        self._polls: dict[str, object] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._new_update: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTelegram:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Telegram server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)  # cut method_delays short
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._new_update = asyncio.Event()
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.close()

    # -- what tests do -------------------------------------------------------------------
    def push_update(self, token: str, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for the bot with this token (update_id assigned here)."""
        update = {"update_id": next(self._ids), **update}
        with self._lock:
            self.updates.setdefault(token, []).append(update)
        if self._loop is not None and self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)
        return update

    def push_message(self, token: str, text: str, *, user_id: int = 1001, first_name: str = "Ann",
                     username: str | None = "ann") -> dict[str, Any]:
        """Queue a private text message (a command gets its bot_command entity)."""
        sender = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "en"}
        if username:
            sender["username"] = username
        message: dict[str, Any] = {"message_id": next(self._ids), "date": int(time.time()),
                                   "chat": {"id": user_id, "type": "private", "first_name": first_name},
                                   "from": sender, "text": text}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self.push_update(token, {"message": message})

    def throttle(self, method: str, retry_after: int, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 Too Many Requests and this retry_after, like Telegram."""
        answer = {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
                  "parameters": {"retry_after": retry_after}}
        with self._lock:
            self.fail_next.setdefault(method, []).extend(dict(answer) for _ in range(times))

    def calls_to(self, method: str, token: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (token is None or c.token == token)]

    def wait_for(self, method: str, *, token: str | None = None, count: int = 1, timeout: float = 20.0,
                 predicate: Any = None) -> list[Call]:
        """Block until the bot has made `count` matching calls."""
        deadline = time.monotonic() + timeout
        while True:
            calls = [c for c in self.calls_to(method, token) if predicate is None or predicate(c)]
            if len(calls) >= count:
                return calls
            if time.monotonic() > deadline:
                seen = sorted({c.method for c in self.calls})
                raise AssertionError(f"no {count}× {method} within {timeout}s; methods seen: {seen}")
            time.sleep(0.05)

    # -- the Bot API ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params = dict(await request.post()) if request.can_read_body else {}
        params.update(request.query)
        call = Call(token, method, {k: str(v) for k, v in params.items()})
        with self._lock:
            self.calls.append(call)
        if method in self.fail_methods:
            code, description = self.fail_methods[method]
            return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)
        with self._lock:
            queued = self.fail_next.get(method)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            return web.json_response(failure, status=int(failure.get("error_code", 400)))
        if self.method_delays.get(method):
            assert self._closing is not None
            try:
                await asyncio.wait_for(self._closing.wait(), self.method_delays[method])
            except TimeoutError:
                pass
        handler = getattr(self, f"_api_{method}", None)
        try:
            result = await handler(token, params) if handler else True
        except ApiError as error:
            return web.json_response({"ok": False, "error_code": error.code, "description": error.description},
                                     status=error.code)
        with self._lock:
            self.completed.append(call)
        return web.json_response({"ok": True, "result": result})

    async def _api_getMe(self, token: str, _params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_getUpdates(self, token: str, params: dict[str, Any]) -> Any:
        if token in self.foreign_pollers:
            raise ApiError(409, POLLING_CONFLICT)
        if self.webhooks.get(token):
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = int(params.get("offset", 0) or 0)
        if offset:
            with self._lock:  # like Telegram: an offset confirms (forgets) every earlier update
                self.updates[token] = [u for u in self.updates.get(token, []) if u["update_id"] >= offset]
        wait = min(float(params.get("timeout", 0) or 0), 1.0)
        deadline = time.monotonic() + wait
        assert self._new_update is not None
        poll = object()
        previous = self._polls.get(token)
        self._polls[token] = poll
        if previous is not None:
            # Telegram ends the older of two overlapping long polls with 409.
            self.conflicts[token] = self.conflicts.get(token, 0) + 1
        while True:
            if self._polls.get(token) is not poll:
                raise ApiError(409, POLLING_CONFLICT)
            with self._lock:
                pending = [u for u in self.updates.get(token, []) if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                if pending and self.updates_delay:
                    await asyncio.sleep(self.updates_delay)
                if self._polls.get(token) is poll:
                    del self._polls[token]
                return pending[:int(params.get("limit", 100) or 100)]
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                pass

    async def _api_sendMessage(self, token: str, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        return {"message_id": next(self._ids), "date": int(time.time()), "from": BOT_USER,
                "chat": {"id": chat_id, "type": "private"}, "text": params.get("text", "")}

    async def _api_getWebhookInfo(self, token: str, _params: dict[str, Any]) -> Any:
        url = self.webhooks.get(token, {}).get("url", "")
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_setWebhook(self, token: str, params: dict[str, Any]) -> Any:
        self.webhooks[token] = {key: str(value) for key, value in params.items()}
        return True

    async def _api_deleteWebhook(self, token: str, _params: dict[str, Any]) -> Any:
        self.webhooks.pop(token, None)
        return True


def decoded(params: dict[str, Any], key: str) -> Any:
    """A parameter aiogram sent JSON-encoded."""
    return json.loads(params[key])
