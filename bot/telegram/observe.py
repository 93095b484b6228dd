"""Per-update log context and metrics, and the count of every Bot API call: what operators filter and graph by."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.user_context import EventContext
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update

from bot.logs import already_logged, bind_update, get_logger, mark_logged, unbind_update
from bot.telegram.listener.metrics import BotMetrics

LOGGER = "bot.telegram.updates"
log = get_logger(LOGGER)

FIELDS_KEY = "update_log_fields"  # where the outer middleware leaves the log fields the inner one completes
NO_HANDLER = "none"
# The `result` label of bot_api_requests for each way a call fails (aiogram's error classes).
_RESULTS: tuple[tuple[type[TelegramAPIError], str], ...] = (
    (TelegramRetryAfter, "retry_after"), (TelegramBadRequest, "bad_request"), (TelegramForbiddenError, "forbidden"),
    (TelegramNotFound, "not_found"), (TelegramConflictError, "conflict"), (TelegramUnauthorizedError, "unauthorized"),
    (TelegramServerError, "server_error"), (TelegramNetworkError, "network_error"),
)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateObserver(BaseMiddleware):
    """Outer update middleware: every log line of an update carries its ids; each update is counted and timed."""

    def __init__(self, metrics: BotMetrics | None = None) -> None:
        self.metrics = metrics
        self._summary = logging.getLogger(LOGGER)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        update_type = event.event_type
        context: EventContext | None = data.get("event_context")
        # The log context of this update; HandlerLabel fills in `handler` once one matches.
        fields: dict[str, object] = {"update_id": event.update_id, "update_type": update_type,
                                     "chat_id": context.chat_id if context else None,
                                     "user_id": context.user_id if context else None, "handler": NO_HANDLER}
        data[FIELDS_KEY] = fields
        if self.metrics is not None:
            self.metrics.update_received(update_type)
        started = time.perf_counter()
        outcome = "error"
        token = bind_update(fields)
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as error:
            if not already_logged(error):  # e.g. a dropped message, already logged with its reason
                log.error("update failed", error=f"{type(error).__name__}: {error}", exc_info=error)
                mark_logged(error)
            raise
        finally:
            seconds = time.perf_counter() - started
            name = str(fields["handler"])
            if self.metrics is not None:
                self.metrics.update_done(update_type, name, outcome, seconds)
            if self._summary.isEnabledFor(logging.DEBUG):  # skip building a line that would be dropped
                log.debug("update finished", outcome=outcome, duration_ms=round(seconds * 1000, 2))
            unbind_update(token)


class HandlerLabel(BaseMiddleware):
    """Inner middleware of every event type: names the handler that took the update, for the logs and metrics."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        fields = data.get(FIELDS_KEY)
        if fields is not None:
            callback = getattr(data.get("handler"), "callback", None)
            fields["handler"] = getattr(callback, "__name__", None) or type(callback).__name__
        return await handler(event, data)


class ApiCallObserver(BaseRequestMiddleware):
    """Counts each Bot API request by method and result, 429s with the wait Telegram asked for."""

    def __init__(self, metrics: BotMetrics) -> None:
        self.metrics = metrics

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        name = method.__api_method__
        try:
            response = await make_request(bot, method)
        except TelegramAPIError as error:
            self.metrics.api_answered(name, api_result(error))
            if isinstance(error, TelegramRetryAfter):
                self.metrics.api_retry_after.labels(name).inc(error.retry_after)
            raise
        self.metrics.api_answered(name, "ok")
        return response


def api_result(error: TelegramAPIError) -> str:
    """The `result` label for a failed call."""
    for kind, label in _RESULTS:
        if isinstance(error, kind):
            return label
    return "error"
