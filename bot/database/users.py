"""The bot's queries on users: one atomic statement on the hot path."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.database.models import User


async def register_user(session: AsyncSession, user_id: int, first_name: str, username: str | None,
                        language_code: str | None) -> User:
    """Create the user or refresh their names; safe when two updates race."""
    now = datetime.now(UTC)
    values = {"first_name": first_name, "username": username, "language_code": language_code, "last_seen_at": now}
    result = await session.execute(update(User).where(User.id == user_id).values(**values))
    if result.rowcount == 0:
        try:
            async with session.begin_nested():
                session.add(User(id=user_id, message_count=0, **values))
        except IntegrityError:
            await session.execute(update(User).where(User.id == user_id).values(**values))
    await session.commit()
    return await _get(session, user_id)


async def record_message(session: AsyncSession, user_id: int, first_name: str, username: str | None) -> None:
    """Count a message and stamp last_seen_at in one UPDATE; register the user if they are new."""
    now = datetime.now(UTC)
    result = await session.execute(
        update(User).where(User.id == user_id)
        .values(message_count=User.message_count + 1, last_seen_at=now)
    )
    if result.rowcount == 0:
        try:
            async with session.begin_nested():
                session.add(User(id=user_id, first_name=first_name, username=username, message_count=1,
                                 last_seen_at=now))
        except IntegrityError:
            await session.execute(update(User).where(User.id == user_id)
                                  .values(message_count=User.message_count + 1, last_seen_at=now))
    await session.commit()


async def find_user(session: AsyncSession, user_id: int) -> User | None:
    """The stored user, if any."""
    return await session.scalar(select(User).where(User.id == user_id))


async def _get(session: AsyncSession, user_id: int) -> User:
    user = await find_user(session, user_id)
    assert user is not None
    return user
