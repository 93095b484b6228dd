"""Confirm to Telegram only the updates that were handled, so a cut one goes to the next poller, not to nowhere.

aiogram's polling confirms a whole batch with its next getUpdates, while the batch's handlers may still run; an
update whose handler is then cut by the drain (SHUTDOWN_TIMEOUT) or dies with its process is lost. This request
middleware replaces each polling getUpdates' offset with the tracker's (it stops below the oldest update not yet
handled) and hides the updates Telegram therefore sends again, so aiogram never sees one twice.
"""

from __future__ import annotations

from typing import cast

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Update

from bot.telegram.tracker import HandlerTracker

# While a handler runs and Telegram has nothing new, each getUpdates answers at once with the held-back
# updates: wait this long (or until a handler finishes) before asking again, instead of asking in a loop.
HELD_BACK_PAUSE = 0.25


class ConfirmHandled(BaseRequestMiddleware):
    """While the tracker's poller runs, its getUpdates confirm only handled updates and return only new ones."""

    def __init__(self, tracker: HandlerTracker) -> None:
        self.tracker = tracker
        self._stalled_at: int | None = None  # tracker.finished when an answer held nothing new

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        get_updates = method if isinstance(method, GetUpdates) else None  # a narrowed `method` loses TelegramType
        if get_updates is None or not self.tracker.polling:
            return await make_request(bot, method)
        # aiogram annotates the chain as passing Response objects, but what it passes is the method's result
        # (AiohttpSession.make_request returns response.result): for getUpdates, a list of updates.
        if self._stalled_at is not None and self.tracker.held_back:
            await self.tracker.wait_for_progress(self._stalled_at, HELD_BACK_PAUSE)
        offset = self.tracker.confirm_offset()
        if offset is not None:
            get_updates.offset = offset
        updates = cast(list[Update], await make_request(bot, method))
        highest = self.tracker.highest
        fresh = [update for update in updates if highest is None or update.update_id > highest]
        self._stalled_at = self.tracker.finished if updates and not fresh else None
        self.tracker.received([update.update_id for update in fresh])
        return cast(Response[TelegramType], fresh)
