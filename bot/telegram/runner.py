"""Run the bot in this process: engine up, poll until a stop signal, engine disposed."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import async_sessionmaker

from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError

from bot.config import Config
from bot.database.engine import create_engine
from bot.errors import ConfigError, ToolkitError
from bot.logs import get_logger
from bot.signals import ShutdownGuard
from bot.telegram.app import build_bot, build_dispatcher

log = get_logger("bot.telegram")


async def serve(config: Config) -> None:
    """Poll Telegram until SIGTERM/SIGINT, then close the bot session and dispose the engine."""
    engine = create_engine(config.database_url)
    bot = build_bot(config)
    try:
        dispatcher = build_dispatcher(async_sessionmaker(engine, expire_on_commit=False))
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError:
            raise ConfigError("Telegram rejected BOT_TOKEN", "getMe answered 401 Unauthorized",
                              "copy the token again from @BotFather") from None
        except TelegramNetworkError as error:
            raise ToolkitError("cannot reach the Telegram Bot API", str(error),
                               "check the network or TELEGRAM_API_URL") from None
        log.info("bot connected", bot_id=me.id, username=me.username)
        await bot.delete_webhook(drop_pending_updates=False)
        log.info("polling started", bot_id=me.id)
        await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)
        log.info("bot stopped", bot_id=me.id)
    finally:
        await bot.session.close()
        await engine.dispose()


def run_bot(config: Config) -> None:
    """Block until the bot stops; a stop signal before polling begins raises Interrupted."""
    guard = ShutdownGuard()

    async def main() -> None:
        await guard.run(serve(config))

    asyncio.run(main())
