"""Turn aiogram's silent retry on 409 Conflict into a clear error event and a not-ready replica."""

from __future__ import annotations

import time
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from bot.logs import get_logger
from bot.telegram.listener.health import RuntimeState

log = get_logger("bot.telegram")

# While the conflict lasts, repeat the error event at most this often.
REPEAT_EVERY_S = 30.0


class ConflictWatch(BaseRequestMiddleware):
    """Watches getUpdates: a 409 means another process polls this token (or a webhook is set)."""

    def __init__(self, state: RuntimeState) -> None:
        self.state = state
        self.conflicts = 0
        self._last_logged = 0.0

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        # A flag, not `if isinstance(...)` around the call: narrowing `method` to GetUpdates would lose TelegramType.
        polling = isinstance(method, GetUpdates)
        try:
            response = await make_request(bot, method)
        except TelegramConflictError as error:
            if polling:
                self._record(bot, error)
            raise
        if polling and self.state.conflict:
            log.info("polling conflict resolved", bot_id=bot.id, conflicts=self.conflicts)
            self.state.conflict = False
            self.conflicts = 0
        return response

    def _record(self, bot: Bot, error: TelegramConflictError) -> None:
        """Log the first conflict at once, then one reminder per REPEAT_EVERY_S while it lasts."""
        self.conflicts += 1
        self.state.conflict = True
        now = time.monotonic()
        if self.conflicts == 1 or now - self._last_logged >= REPEAT_EVERY_S:
            self._last_logged = now
            fields: dict[str, Any] = {"bot_id": bot.id, "conflicts": self.conflicts, "description": error.message}
            log.error("polling conflict", **fields,
                      fix="another process polls this token outside this deployment's leader election, or a "
                          "webhook is set; stop it or use one DATABASE_URL for every replica")
