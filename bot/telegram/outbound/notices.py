"""Admin notices from the running bot, sent through its own session: paced with the replies, 429s waited out."""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot.logs import get_logger
from bot.redact import redact
from bot.settings.config import Config
from bot.telegram.outbound.notify import NOTIFY_TIMEOUT
from bot.telegram.outbound.notify import enabled as notices_enabled

log = get_logger("bot.telegram.notify")


class Notices:
    """Fire-and-forget notices (start, take-over, stop); a slow Bot API never blocks updates or the exit for long."""

    def __init__(self, config: Config, bot: Bot, *, timeout: float = NOTIFY_TIMEOUT) -> None:
        self.config = config
        self.bot = bot
        self.timeout = timeout
        self._pending: set[asyncio.Task[int]] = set()

    def send(self, kind: str, text: str) -> None:
        """Queue a notice to every admin; flush() waits for what is still on its way."""
        if not notices_enabled(self.config):
            return
        task = asyncio.create_task(self._deliver(kind, redact(text, self.config.secrets())))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for notices still on their way (each is bounded by its own timeout)."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    async def _deliver(self, kind: str, text: str) -> int:
        """Send to each admin in turn within the timeout; return how many got it, never raise."""
        delivered = 0
        admins = list(self.config.admin_ids)
        try:
            async with asyncio.timeout(self.timeout):
                while admins:
                    try:
                        await self.bot.send_message(admins[0], text, disable_notification=kind == "stop")
                        delivered += 1
                    except TelegramAPIError as error:
                        log.warning("admin notification failed", kind=kind, admin_id=admins[0], reason=error.message)
                    admins.pop(0)
        except TimeoutError:
            for admin in admins:
                log.warning("admin notification failed", kind=kind, admin_id=admin, reason="out of time")
        log.info("admin notification sent", kind=kind, delivered=delivered, admins=len(self.config.admin_ids))
        return delivered
