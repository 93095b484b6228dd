"""The bot's user queries on each real backend: inserts, refreshes, counts, concurrent sessions, racing replicas."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.data.engine import create_engine
from bot.data.models import User
from bot.data.users import find_user, record_message, register_user
from bot.migrate import api as migrations
from bot.settings.config import Config
from tests.support.database import query


def with_sessions(url: URL, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[Any]],
                  before_statement: Callable[[str], None] | None = None) -> Any:
    """Migrate the test's database as a deploy would, run `work` with the bot's session factory, dispose."""
    migrations.upgrade(Config(database_url=url))

    async def scenario() -> Any:
        engine = create_engine(url)
        try:
            if before_statement is not None:
                event.listen(engine.sync_engine, "before_cursor_execute",
                             lambda _conn, _cursor, statement, *_rest: before_statement(statement))
            return await work(async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()

    return asyncio.run(scenario())


def test_register_user_inserts_then_refreshes(any_url: URL) -> None:
    """A new user gets a row with created_at; a second /start refreshes names and keeps one row."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as session:
            await register_user(session, 7, "Ann", "ann", "en")
        async with sessions() as session:
            await register_user(session, 7, "Anna", None, "de")

    with_sessions(any_url, work)
    rows = query(any_url, "SELECT first_name, username, language_code, message_count, created_at IS NOT NULL "
                          "FROM users WHERE id = 7")
    assert rows == [("Anna", None, "de", 0, True)]  # True == 1: the drivers return either


def test_record_message_counts_and_registers_new_users(any_url: URL) -> None:
    """The first message registers the user with a count of 1; each later one adds 1."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> None:
        for _ in range(3):
            async with sessions() as session:
                await record_message(session, 9, "Bo", "bo")

    with_sessions(any_url, work)
    assert query(any_url, "SELECT message_count, first_name FROM users WHERE id = 9") == [(3, "Bo")]


def test_concurrent_updates_for_a_new_user_all_succeed_with_one_row(any_url: URL) -> None:
    """Sixteen concurrent sessions registering and counting the same new user all succeed, leaving one row."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> None:
        async def one(index: int) -> None:
            async with sessions() as session:
                if index % 2:
                    await record_message(session, 11, "Cy", "cy")
                else:
                    await register_user(session, 11, "Cy", "cy", "en")

        await asyncio.gather(*(one(index) for index in range(16)))

    with_sessions(any_url, work)
    assert query(any_url, "SELECT message_count FROM users WHERE id = 11") == [(8,)]


def test_a_session_stays_usable_and_transactional_after_register_user(any_url: URL) -> None:
    """After register_user commits, the same session's later writes still roll back as one transaction."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> User | None:
        async with sessions() as session:
            await register_user(session, 21, "Di", "di", "en")
            session.add(User(id=22, first_name="Ed", message_count=0))
            await session.flush()
            await session.rollback()
            return await find_user(session, 21)

    found = with_sessions(any_url, work)
    assert found is not None and found.first_name == "Di"
    assert query(any_url, "SELECT id FROM users ORDER BY id") == [(21,)]


def test_register_user_joins_a_transaction_the_caller_already_began(any_url: URL) -> None:
    """A caller's earlier write in the same session commits together with the user's row."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
        async with sessions() as session:
            session.add(User(id=31, first_name="Fay", message_count=0))
            await session.flush()
            await register_user(session, 32, "Gus", None, None)
        async with sessions() as session:
            return list((await session.scalars(select(User.id).order_by(User.id))).all())

    assert with_sessions(any_url, work) == [31, 32]


@pytest.mark.parametrize("caller_began", [False, True], ids=["fresh session", "caller's transaction"])
@pytest.mark.parametrize("write", ["register", "count"])
def test_a_user_inserted_meanwhile_by_another_process_is_updated_instead(postgres_url: URL, caller_began: bool,
                                                                        write: str) -> None:
    """PostgreSQL: when another replica inserts the user between our UPDATE and INSERT, the upsert updates it."""
    inserted: list[str] = []

    def another_replica_inserts_first(statement: str) -> None:
        if statement.startswith("INSERT INTO users") and not inserted:
            inserted.append(statement)
            query(postgres_url, "INSERT INTO users (id, first_name, message_count) VALUES (51, 'Other', 5)")

    async def work(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with sessions() as session:
            if caller_began:
                session.add(User(id=52, first_name="Kit", message_count=0))
                await session.flush()
            if write == "register":
                await register_user(session, 51, "Jo", "jo", "en")
            else:
                await record_message(session, 51, "Jo", "jo")

    with_sessions(postgres_url, work, another_replica_inserts_first)
    assert inserted
    expected = ("Jo", "jo", 5) if write == "register" else ("Other", None, 6)  # a count leaves the names
    assert query(postgres_url, "SELECT first_name, username, message_count FROM users WHERE id = 51") == [expected]
    assert query(postgres_url, "SELECT count(*) FROM users WHERE id = 52") == [(1 if caller_began else 0,)]


def test_bot_sessions_on_mariadb_read_committed(mariadb_url: URL) -> None:
    """MariaDB: the bot's sessions run at READ COMMITTED, so an UPDATE that finds no user takes no gap lock."""

    async def work(sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session:
            return await session.scalar(text("SELECT @@tx_isolation"))

    assert with_sessions(mariadb_url, work) == "READ-COMMITTED"


def test_a_pooled_sqlite_connection_is_rolled_back_when_returned_open(sqlite_url: URL) -> None:
    """A connection returned mid-transaction (a session's write, or the driver's own BEGIN behind SQLAlchemy's
    back, which only the pool's reset can end) is rolled back and frees SQLite's write lock."""
    database = sqlite_url.database
    assert database is not None

    def other_writer_can_write() -> None:
        with sqlite3.connect(database, timeout=0) as other:  # "database is locked" if a write is still open
            other.execute("UPDATE users SET username = 'other' WHERE id = 7")

    async def work(sessions: async_sessionmaker[AsyncSession]) -> bool:
        async with sessions() as session:
            await register_user(session, 7, "Ada", None, None)
        async with sessions() as session:
            await session.execute(text("UPDATE users SET first_name = 'session, uncommitted' WHERE id = 7"))
        other_writer_can_write()
        async with sessions.kw["bind"].connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            await driver.execute("BEGIN")
            await driver.execute("UPDATE users SET first_name = 'driver, uncommitted' WHERE id = 7")
        other_writer_can_write()
        async with sessions() as session:
            await register_user(session, 7, "Ada", "other", None)
        return bool(driver.in_transaction)

    assert with_sessions(sqlite_url, work) is False
    assert query(sqlite_url, "SELECT first_name, username FROM users") == [("Ada", "other")]
