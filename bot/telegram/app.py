"""Build the Bot and the Dispatcher inside functions: no import-time singletons."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Config
from bot.telegram.handlers import router
from bot.telegram.middleware import DatabaseSessionMiddleware


def build_bot(config: Config) -> Bot:
    """A Bot for the configured token, talking to TELEGRAM_API_URL when set."""
    token = config.require_bot_token().reveal()
    session = None
    if config.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(config.telegram_api_url))
    return Bot(token=token, session=session)


def build_dispatcher(session_factory: async_sessionmaker[AsyncSession]) -> Dispatcher:
    """A Dispatcher with the database middleware and the bot's handlers."""
    dispatcher = Dispatcher()
    dispatcher.update.middleware(DatabaseSessionMiddleware(session_factory))
    dispatcher.include_router(router)
    return dispatcher
