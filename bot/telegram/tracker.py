"""Know which updates are being handled, so a shutdown can wait for them (aiogram itself does not)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.logs import get_logger

log = get_logger("bot.telegram")

# getUpdates answers at most 100 updates from the offset: with this many unfinished, holding the offset back
# would keep the poller from seeing anything new, so a burst is confirmed on receipt, as aiogram does.
HOLD_BACK_LIMIT = 50


class HandlerTracker(BaseMiddleware):
    """An outer update middleware: registers the task handling each update until its handler returns, and which
    received updates have not been handled to the end (running, or cut by a drain)."""

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[Any], int] = {}
        self._unfinished: set[int] = set()
        self.highest: int | None = None  # the highest update id received
        self.finished = 0  # handlers that ran to the end (or raised): progress, for a poller waiting on it
        self._progress = asyncio.Event()
        self.polling = False  # aiogram's polling runs: its getUpdates go through ConfirmHandled's offsets

    @property
    def in_flight(self) -> int:
        """How many updates are being handled right now."""
        return len(self._running)

    @property
    def held_back(self) -> bool:
        """Some received update is not handled yet, so the confirmation offset stops below it."""
        return 0 < len(self._unfinished) < HOLD_BACK_LIMIT

    def begin_polling(self) -> None:
        """A poller's term starts: what an earlier term cut comes again from Telegram and must count as new."""
        self._unfinished.clear()
        self.highest = None
        self.polling = True

    def received(self, update_ids: list[int]) -> None:
        """getUpdates handed these (new) updates over: they count as unfinished until their handler returns."""
        self._unfinished.update(update_ids)
        if update_ids:
            self.highest = max(update_ids) if self.highest is None else max(self.highest, *update_ids)

    def confirm_offset(self) -> int | None:
        """The getUpdates offset that confirms exactly the updates handled to the end.

        It stops below the oldest update still running or cut by the drain, so Telegram hands that one (and the
        ones after it) to the next poller instead of forgetting it, unless HOLD_BACK_LIMIT updates are unfinished;
        None before any update arrived.
        """
        if self.held_back:
            return min(self._unfinished)
        return None if self.highest is None else self.highest + 1

    async def wait_for_progress(self, since: int, timeout: float) -> None:
        """Return once a handler finished after `since` (a value of `finished`), or after `timeout` seconds."""
        if self.finished > since:
            return
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), timeout)
        except TimeoutError:
            pass

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        task = asyncio.current_task()
        update_id = event.update_id if isinstance(event, Update) else -1
        if task is None:
            return await handler(event, data)
        self._running[task] = update_id
        if self.highest is None or update_id > self.highest:
            self.highest = update_id  # webhook mode: updates arrive without getUpdates
        cut = False
        try:
            return await handler(event, data)
        except asyncio.CancelledError:
            cut = True  # stays unfinished, so it is never confirmed
            raise
        finally:
            self._running.pop(task, None)
            if not cut:  # a handler that raised has still handled its update: a retry would fail the same way
                self._unfinished.discard(update_id)
                self.finished += 1
                self._progress.set()

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
