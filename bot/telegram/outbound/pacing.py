"""Flood control for outbound messages: paced under Telegram's limits, and a 429 waited out instead of dropped.

aiogram sends what it is told and raises TelegramRetryAfter on a 429 (its issue #1875). This request middleware
sits on the bot's session, so replies and the admins' notices alike go through it. The pacing itself is
`aiolimiter`'s leaky bucket, not a hand-written one.
"""

from __future__ import annotations

import asyncio
import time

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiolimiter import AsyncLimiter

from bot.logs import get_logger, mark_logged
from bot.telegram.listener.metrics import BotMetrics

log = get_logger("bot.telegram.pacing")

# Telegram's published limits (core.telegram.org/bots/faq): about 30 messages per second overall, about one per
# second in one chat, 20 per minute in one group. As (max_rate, time_period): a chat may burst 3, then 1 per s.
OVERALL_LIMIT = (30.0, 1.0)
CHAT_LIMIT = (3.0, 3.0)
GROUP_LIMIT = (20.0, 60.0)
# Methods that put a message into a chat: the ones Telegram's limits count (a typing indicator does not).
OUTBOUND_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage")
NOT_OUTBOUND = ("sendChatAction",)
# Past this many per-chat limiters, the idle ones (bucket empty) are forgotten; they hold no state worth keeping.
PRUNE_ABOVE = 10_000

Limit = tuple[float, float]


def is_outbound(method_name: str) -> bool:
    """Whether a Bot API method sends (or edits) a message in a chat."""
    return method_name.startswith(OUTBOUND_PREFIXES) and method_name not in NOT_OUTBOUND


class FloodControl(BaseRequestMiddleware):
    """Paces outbound messages (overall, per chat, per group) and retries them after a 429's retry_after."""

    def __init__(self, *, pacing: bool = True, max_wait: float = 30.0, metrics: BotMetrics | None = None,
                 overall: Limit = OVERALL_LIMIT, chat: Limit = CHAT_LIMIT, group: Limit = GROUP_LIMIT) -> None:
        self.pacing = pacing
        self.max_wait = max_wait
        self.metrics = metrics
        self.chat_limit = chat
        self.group_limit = group
        self.overall = AsyncLimiter(*overall)
        self._chats: dict[int | str, AsyncLimiter] = {}
        self._groups: dict[int | str, AsyncLimiter] = {}

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        name = method.__api_method__
        if not is_outbound(name):
            return await make_request(bot, method)
        chat_id = getattr(method, "chat_id", None)
        waited = 0.0
        attempt = 1
        while True:
            if self.pacing:
                await self._pace(chat_id)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if waited + error.retry_after > self.max_wait:
                    log.error("bot api call dropped", method=name, chat_id=chat_id, retry_after_s=error.retry_after,
                              waited_s=waited, max_wait_s=self.max_wait, attempt=attempt)
                    if self.metrics is not None:
                        self.metrics.api_dropped.labels(name).inc()
                    mark_logged(error)
                    raise
                log.warning("bot api throttled", method=name, chat_id=chat_id, retry_after_s=error.retry_after,
                            attempt=attempt)
                await asyncio.sleep(error.retry_after)
                waited += error.retry_after
                attempt += 1

    async def _pace(self, chat_id: int | str | None) -> None:
        """Wait for the chat's bucket, the group's when it is one, then the overall one."""
        if chat_id is not None:
            await self._acquire(_limiter(self._chats, chat_id, self.chat_limit), "chat")
            if _is_group(chat_id):
                await self._acquire(_limiter(self._groups, chat_id, self.group_limit), "group")
        await self._acquire(self.overall, "overall")

    async def _acquire(self, limiter: AsyncLimiter, limit: str) -> None:
        """Take one slot; the time spent waiting for it is counted, the common case costs no clock read."""
        if limiter.has_capacity():
            await limiter.acquire()
            return
        started = time.monotonic()
        await limiter.acquire()
        if self.metrics is not None:
            self.metrics.pacing_delay.labels(limit).inc(time.monotonic() - started)


def _is_group(chat_id: int | str) -> bool:
    """Groups and channels have negative ids (or an @username); private chats are users' positive ids."""
    return isinstance(chat_id, str) or chat_id < 0


def _limiter(limiters: dict[int | str, AsyncLimiter], chat_id: int | str, limit: Limit) -> AsyncLimiter:
    """The chat's own bucket, made on first use; idle buckets are forgotten once there are many."""
    limiter = limiters.get(chat_id)
    if limiter is None:
        if len(limiters) >= PRUNE_ABOVE:
            for idle in [key for key, bucket in limiters.items() if bucket.has_capacity(bucket.max_rate)]:
                del limiters[idle]
        limiter = limiters[chat_id] = AsyncLimiter(*limit)
    return limiter
