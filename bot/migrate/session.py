"""One connection to the database for a migration command, and the locked preamble every changing command shares.

A changing command (migrate, rollback, stamp, accept-edit, restore) takes the migration lock, reads
where the database stands, opens its journal entry's origin, plans, asks, and refuses the same way;
that sequence lives here once, as `locked()` and `LockedSession.confirm`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.data.engine import create_engine
from bot.data.lock import migration_lock
from bot.data.presence import require_existing_database
from bot.data.urls import database_label, where
from bot.data.waiting import open_connection
from bot.errors import Refused
from bot.migrate import journal
from bot.migrate.graph import current_heads
from bot.migrate.journal import settle
from bot.migrate.journal.origin import Origin, this_process
from bot.migrate.plan import Confirm, Plan, PlannedStep
from bot.settings.config import Config
from bot.signals import run_guarded

T = TypeVar("T")


@asynccontextmanager
async def connection(config: Config) -> AsyncIterator[tuple[AsyncEngine, AsyncConnection]]:
    """An engine and one connection, waiting for the database if it is not up yet."""
    engine = create_engine(config.database_url, for_migrations=True)
    try:
        opened = await open_connection(engine, config.database_url, config.db_wait_timeout)
        try:
            yield engine, opened
        finally:
            await opened.close()
    finally:
        await engine.dispose()


async def read(config: Config, work: Callable[[Connection], T]) -> T:
    """Run a read-only sync function on a fresh connection to a database that must already exist."""
    require_existing_database(config.database_url)
    async with connection(config) as (_engine, opened):
        return await opened.run_sync(work)


def read_on_connection(config: Config, work: Callable[[Connection], T]) -> T:
    """`read`, from synchronous code, with stop signals handled."""
    return run_guarded(lambda _stop: read(config, work))


@dataclass(frozen=True)
class LockedSession:
    """A connection holding the migration lock, what alembic_version said once it was held, and who is acting."""

    config: Config
    engine: AsyncEngine
    connection: AsyncConnection
    before: tuple[str, ...]
    who: Origin
    half_applied: tuple[journal.Entry, ...]

    @property
    def location(self) -> str:
        """The database as logs and errors name it (no password)."""
        return where(self.config.database_url)

    def plan(self, direction: str, target: str, steps: tuple[PlannedStep, ...] = (),
             source: str | None = None) -> Plan:
        """What this command is about to do to this database, for the prompt and the report."""
        return Plan(direction, database_label(self.config.database_url), self.location, self.before, target, steps,
                    source)

    async def confirm(self, confirm: Confirm | None, planned: Plan) -> None:
        """Ask the operator (unless --yes); a wrong answer refuses with nothing changed."""
        if confirm is not None and not await ask(confirm, planned):
            raise Refused(f"{planned.direction} of {planned.location} was not confirmed", "the answer did not match",
                          "run it again and type the database name, or pass --yes")


@asynccontextmanager
async def locked(config: Config, *,
                 check: Callable[[tuple[str, ...], Dialect], None] | None = None) -> AsyncIterator[LockedSession]:
    """Connect, take the migration lock, read the revision, run `check` on it (and the server's dialect), then
    settle the journal."""
    async with connection(config) as (engine, opened):
        async with migration_lock(engine, config.database_url, config.migration_lock_timeout):
            before = await opened.run_sync(current_heads)
            if check is not None:
                # Before the journal table is created or settled: a refusal changes nothing.
                check(before, opened.dialect)
            who = this_process(config.env)
            half = await opened.run_sync(settle.prepare, who)
            yield LockedSession(config, engine, opened, before, who, tuple(half))


async def ask(confirm: Confirm, planned: Plan) -> bool:
    """Ask on a daemon thread, so a stop signal is not stuck behind a blocking prompt."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def settle(result: bool | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(bool(result))

    def prompt() -> None:
        try:
            result = confirm(planned)
        except BaseException as error:  # noqa: BLE001 - handed back to the loop as is
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=prompt, name="confirm", daemon=True).start()
    return await answer
