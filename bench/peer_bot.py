"""The bot a user would otherwise write: an aiogram 3 bot in the style of the popular templates (bench G6's peer).

A session-per-update middleware from `async_sessionmaker`, an ORM SELECT of the user then an INSERT or an
UPDATE through the unit of work, a commit per update, and the same replies as the toolkit's handlers.
bench/run.py starts it as `python bench/peer_bot.py` with BOT_TOKEN, TELEGRAM_API_URL and DATABASE_URL (an
async SQLAlchemy URL) set, on a database the toolkit's revisions created, and measures updates per second.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.types import Message, TelegramObject
from sqlalchemy import BigInteger, DateTime, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

HELP_TEXT = "Commands:\n/start - register and say hello\n/help - this list\n/me - what I store about you"


class Base(DeclarativeBase):
    """The models."""


class User(Base):
    """The users table as the toolkit's revisions create it."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str] = mapped_column(String(255))
    language_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_count: Mapped[int] = mapped_column(Integer, server_default="0")


class DbSessionMiddleware(BaseMiddleware):
    """One session per update, handed to handlers as `session` (the templates' middleware)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.sessions() as session:
            data["session"] = session
            return await handler(event, data)


router = Router()


@router.message(CommandStart())
async def start(message: Message, session: AsyncSession) -> None:
    """Register the user or refresh their names, the ORM way, then greet them."""
    sender = message.from_user
    if sender is None:
        return
    user = await session.scalar(select(User).where(User.id == sender.id))
    now = datetime.now(UTC)
    if user is None:
        session.add(User(id=sender.id, username=sender.username, first_name=sender.first_name,
                         language_code=sender.language_code, last_seen_at=now, message_count=0))
    else:
        user.username, user.first_name, user.language_code = sender.username, sender.first_name, sender.language_code
        user.last_seen_at = now
    await session.commit()
    await message.answer(f"Hello, {sender.first_name}! Send /help to see what I can do.")


@router.message(Command("help"))
async def show_help(message: Message) -> None:
    """List the commands."""
    await message.answer(HELP_TEXT)


@router.message(F.from_user)
async def count(message: Message, session: AsyncSession) -> None:
    """Any other message: count it."""
    assert message.from_user is not None
    user = await session.get(User, message.from_user.id)
    if user is not None:
        user.message_count += 1
        user.last_seen_at = datetime.now(UTC)
        await session.commit()


async def main() -> None:
    """Engine, sessions, middleware, router, polling."""
    logging.basicConfig(level=logging.WARNING)
    engine = create_async_engine(os.environ["DATABASE_URL"])
    dispatcher = Dispatcher()
    dispatcher.update.middleware(DbSessionMiddleware(async_sessionmaker(engine, expire_on_commit=False)))
    dispatcher.include_router(router)
    bot = Bot(token=os.environ["BOT_TOKEN"],
              session=AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"])))
    try:
        await dispatcher.start_polling(bot, polling_timeout=10, handle_signals=True)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
