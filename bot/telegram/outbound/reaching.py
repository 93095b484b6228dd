"""Reaching the Bot API at start: retry what time heals within BOT_API_WAIT_TIMEOUT, then exit 9 with one line.

A network that is not up yet, Telegram's 5xx and its 429 (flood wait) heal; a rejected token, a Bot API
URL that answers 404, or a host name that does not exist do not, and end the start at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.errors import BotApiUnreachable, ConfigError
from bot.logs import get_logger
from bot.resolution import unresolvable
from bot.settings.config import Config
from bot.settings.table import TELEGRAM_API_DEFAULT

log = get_logger("bot.telegram")

FIRST_DELAY = 0.5
LONGEST_DELAY = 5.0
# One getMe may outlive the wait by this much, whatever aiogram's own request timeout.
ATTEMPT_GRACE = 5.0


async def reach_bot_api(bot: Bot, config: Config, stop: asyncio.Event) -> Any | None:
    """getMe (cached on the Bot), retried with backoff until BOT_API_WAIT_TIMEOUT; None if a stop signal came first."""
    timeout = config.bot_api_wait_timeout
    host = urlsplit(config.telegram_api_url or TELEGRAM_API_DEFAULT).hostname or ""
    deadline = time.monotonic() + timeout
    delay, attempt = FIRST_DELAY, 0
    while True:
        attempt += 1
        try:
            return await asyncio.wait_for(bot.me(), max(deadline - time.monotonic(), 0) + ATTEMPT_GRACE)
        except TelegramUnauthorizedError:
            raise ConfigError("Telegram rejected BOT_TOKEN", "getMe answered 401 Unauthorized",
                              "copy the token again from @BotFather") from None
        except TelegramNotFound:
            raise ConfigError(f"the Bot API at {host} answered 404 to getMe",
                              "TELEGRAM_API_URL does not point at a Bot API server", "check TELEGRAM_API_URL") from None
        except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter, TimeoutError) as error:
            why = "getMe timed out" if isinstance(error, TimeoutError) else str(error)
            unknown_host = unresolvable(error)
            if unknown_host:
                raise BotApiUnreachable(f"the Bot API host {host!r} does not resolve",
                                        f"{unknown_host}, which waiting does not change",
                                        "check TELEGRAM_API_URL, or the DNS of this network") from None
            pause = max(delay, float(error.retry_after) if isinstance(error, TelegramRetryAfter) else 0.0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BotApiUnreachable(f"the Telegram Bot API at {host} is unreachable after {timeout:g}s", why,
                                        "check the network, TELEGRAM_API_URL or TELEGRAM_PROXY, or raise "
                                        "BOT_API_WAIT_TIMEOUT") from None
            log.warning("waiting for bot api", attempt=attempt, host=host, reason=why,
                        retry_in_s=round(min(pause, remaining), 2))
            if await _stopped_within(stop, min(pause, remaining)):
                log.info("bot api wait stopped", attempt=attempt, host=host)
                return None
            delay = min(delay * 2, LONGEST_DELAY)
        except TelegramAPIError as error:
            raise BotApiUnreachable(f"the Bot API at {host} refused getMe", str(error),
                                    "check TELEGRAM_API_URL and BOT_TOKEN") from None


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, unless a stop signal arrives first (then say so at once)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
