"""Build the Bot and the Dispatcher inside functions: no import-time singletons."""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings.config import Config
from bot.telegram.handlers import build_router
from bot.telegram.middleware import DatabaseSessionMiddleware
from bot.telegram.observe import HandlerLabel, UpdateObserver
from bot.telegram.tracker import HandlerTracker

# Observers whose handlers are not the bot's own: the dispatcher's update router and the error handlers.
UNLABELLED_OBSERVERS = ("update", "error")


def build_bot(config: Config, *request_middlewares: BaseRequestMiddleware) -> Bot:
    """A Bot for the configured token, talking to TELEGRAM_API_URL through TELEGRAM_PROXY when set."""
    token = config.require_bot_token().reveal()
    session = None
    if config.telegram_api_url or config.telegram_proxy is not None:
        # PRODUCTION and no proxy are AiohttpSession's own defaults.
        api = TelegramAPIServer.from_base(config.telegram_api_url) if config.telegram_api_url else PRODUCTION
        proxy = config.telegram_proxy.reveal() if config.telegram_proxy is not None else None
        session = AiohttpSession(proxy=proxy, api=api)
    bot = Bot(token=token, session=session)
    for middleware in request_middlewares:
        bot.session.middleware(middleware)
    return bot


def build_dispatcher(session_factory: async_sessionmaker[AsyncSession], tracker: HandlerTracker | None = None,
                     observer: UpdateObserver | None = None) -> Dispatcher:
    """A Dispatcher: in-flight tracker (outermost), update observer, database session middleware, handlers."""
    dispatcher = Dispatcher()
    if tracker is not None:
        dispatcher.update.outer_middleware(tracker)
    if observer is not None:
        dispatcher.update.outer_middleware(observer)
        label = HandlerLabel()
        for name, event_observer in dispatcher.observers.items():
            if name not in UNLABELLED_OBSERVERS:
                event_observer.middleware(label)
    dispatcher.update.middleware(DatabaseSessionMiddleware(session_factory))
    dispatcher.include_router(build_router())
    return dispatcher
