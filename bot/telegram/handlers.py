"""What the bot answers: /start, /help, /me, and counting every other message."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.data.users import find_user, record_message, register_user

HELP_TEXT = (
    "Commands:\n"
    "/start - register and say hello\n"
    "/help - this list\n"
    "/me - what I store about you"
)


async def greet(message: Message, session: AsyncSession) -> None:
    """Register or refresh the user, then greet them by name."""
    sender = message.from_user
    if sender is None:
        return
    await register_user(session, sender.id, sender.first_name, sender.username, sender.language_code)
    await message.answer(f"Hello, {sender.first_name}! Send /help to see what I can do.")


async def show_help(message: Message) -> None:
    """List the commands."""
    await message.answer(HELP_TEXT)


async def show_profile(message: Message, session: AsyncSession) -> None:
    """Show what the bot stores about the sender."""
    sender = message.from_user
    if sender is None:
        return
    user = await find_user(session, sender.id)
    if user is None:
        await message.answer("I don't know you yet: send /start first.")
        return
    first_seen = user.created_at.strftime("%Y-%m-%d %H:%M") if user.created_at else "unknown"
    await message.answer(f"Name: {user.first_name}\nFirst seen: {first_seen} UTC\nMessages: {user.message_count}")


async def count_message(message: Message, session: AsyncSession) -> None:
    """Any other message: remember when we last saw the user and count it."""
    sender = message.from_user
    assert sender is not None
    await record_message(session, sender.id, sender.first_name, sender.username)


def build_router() -> Router:
    """A fresh router per Dispatcher (aiogram attaches a router to one parent only); order matters."""
    router = Router(name="core")
    router.message.register(greet, CommandStart())
    router.message.register(show_help, Command("help"))
    router.message.register(show_profile, Command("me"))
    router.message.register(count_message, F.from_user)
    return router
