"""Know which updates are being handled, so a shutdown can wait for them (aiogram itself does not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.logs import get_logger

log = get_logger("bot.telegram")


class HandlerTracker(BaseMiddleware):
    """An outer update middleware: registers the task handling each update until its handler returns."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], int] = {}
        self.last_update_id: int | None = None

    @property
    def in_flight(self) -> int:
        """How many updates are being handled right now."""
        return len(self._running)

    def confirm_offset(self) -> int | None:
        """The getUpdates offset that acknowledges every update this process received.

        aiogram's own next getUpdates already acknowledged all but the last batch, so a cut update is lost
        either way (Telegram cannot take an acknowledgement back): that is why the drain waits and logs ids.
        """
        return None if self.last_update_id is None else self.last_update_id + 1

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        task = asyncio.current_task()
        update_id = event.update_id if isinstance(event, Update) else -1
        if task is None:
            return await handler(event, data)
        self._running[task] = update_id
        if self.last_update_id is None or update_id > self.last_update_id:
            self.last_update_id = update_id
        try:
            return await handler(event, data)
        finally:
            self._running.pop(task, None)

    async def drain(self, timeout: float) -> tuple[int, int]:
        """Wait up to `timeout` seconds for in-flight handlers, cancel the rest; return (drained, cut)."""
        await asyncio.sleep(0)  # let update tasks created by the last getUpdates/POST reach this middleware
        tasks = [task for task in self._running if task is not asyncio.current_task()]
        if not tasks:
            return 0, 0
        log.info("draining", in_flight=len(tasks), timeout_s=timeout)
        _done, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), set(tasks))
        cut_ids = sorted(self._running.get(task, -1) for task in pending)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            log.warning("handlers cut", cut=len(pending), update_ids=cut_ids, timeout_s=timeout)
        return len(tasks) - len(pending), len(pending)
