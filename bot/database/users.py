"""The bot's queries on users: one atomic statement on the hot path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.database.models import User

# Built once, executed with parameters: constructing the statement per update, and the ORM's session
# synchronization (nothing to sync: no User is loaded), cost a third of the handler's CPU (bench G6).
_REFRESH = (update(User).where(User.id == bindparam("user_key"))
            .values(first_name=bindparam("new_first_name"), username=bindparam("new_username"),
                    language_code=bindparam("new_language_code"), last_seen_at=bindparam("seen_at"))
            .execution_options(synchronize_session=False))
_COUNT = (update(User).where(User.id == bindparam("user_key"))
          .values(message_count=User.message_count + 1, last_seen_at=bindparam("seen_at"))
          .execution_options(synchronize_session=False))


async def register_user(session: AsyncSession, user_id: int, first_name: str, username: str | None,
                        language_code: str | None) -> None:
    """Create the user or refresh their names; safe when two updates race (one commit, no read-back)."""
    now = datetime.now(UTC)
    names = {"first_name": first_name, "username": username, "language_code": language_code}
    result = await session.execute(_REFRESH, {"user_key": user_id, "new_first_name": first_name,
                                              "new_username": username, "new_language_code": language_code,
                                              "seen_at": now})
    if result.rowcount == 0:
        await session.execute(_insert_or_update(session, {"id": user_id, "message_count": 0, "last_seen_at": now,
                                                           **names}, {**names, "last_seen_at": now}))
    await session.commit()


async def record_message(session: AsyncSession, user_id: int, first_name: str, username: str | None) -> None:
    """Count a message and stamp last_seen_at in one UPDATE; register the user if they are new."""
    now = datetime.now(UTC)
    result = await session.execute(_COUNT, {"user_key": user_id, "seen_at": now})
    if result.rowcount == 0:
        new_user = {"id": user_id, "first_name": first_name, "username": username, "message_count": 1,
                    "last_seen_at": now}
        await session.execute(_insert_or_update(session, new_user, {"message_count": User.message_count + 1,
                                                                    "last_seen_at": now}))
    await session.commit()


def _insert_or_update(session: AsyncSession, row: dict[str, Any], changes: dict[str, Any]) -> Any:
    """A new user's INSERT that applies `changes` instead when a racing update inserted the user first.

    One statement in the backend's own upsert form: an INSERT that fails and an UPDATE after it would hold
    InnoDB's shared lock on the row between them, and two such updates deadlock.
    """
    backend = session.get_bind().dialect.name
    if backend in ("mysql", "mariadb"):
        return mysql.insert(User).values(**row).on_duplicate_key_update(**changes)
    dialect_insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    return dialect_insert(User).values(**row).on_conflict_do_update(index_elements=[User.id], set_=changes)


async def find_user(session: AsyncSession, user_id: int) -> User | None:
    """The stored user, if any."""
    return await session.scalar(select(User).where(User.id == user_id))
