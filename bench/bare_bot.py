"""The floor of this stack: an aiogram 3 + SQLAlchemy asyncio bot with no configuration layer and no migration check.

bench/run.py starts it as `python bench/bare_bot.py` with BOT_TOKEN, TELEGRAM_API_URL and DATABASE_URL
(an async SQLAlchemy URL) set, and times it to its first getUpdates, exactly like `invoke start`.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message
from sqlalchemy import BigInteger, Integer, String, update
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The bot's models, as any SQLAlchemy bot declares them."""


class User(Base):
    """The same users table the toolkit's revisions create (only the columns this bot touches)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(255))
    message_count: Mapped[int] = mapped_column(Integer)


async def main() -> None:
    """Build the engine, the bot and one handler that writes, then poll."""
    logging.basicConfig(level=logging.INFO)
    engine = create_async_engine(os.environ["DATABASE_URL"])
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    dispatcher = Dispatcher()

    @dispatcher.message(CommandStart())
    async def greet(message: Message) -> None:
        async with sessions() as session:
            await session.execute(update(User).where(User.id == message.chat.id)
                                  .values(message_count=User.message_count + 1))
            await session.commit()
        await message.answer("Hello!")

    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(token=os.environ["BOT_TOKEN"], session=session)
    try:
        await dispatcher.start_polling(bot, polling_timeout=10, handle_signals=True)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
