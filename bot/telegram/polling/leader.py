"""One poller per token: replicas elect a leader through a database lock keyed by the bot id; the rest stand by."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import NullPool

from bot.data.engine import create_engine
from bot.data.lock import database_lock
from bot.data.waiting import reason
from bot.errors import LockTimeout
from bot.logs import get_logger
from bot.settings.config import Config
from bot.telegram.listener.health import RuntimeState

log = get_logger("bot.telegram.leader")

CHECK_INTERVAL = 1.0          # how long a standby waits on the lock per try, how often the leader checks its own
STANDBY_LOG_INTERVAL = 60.0   # a standby repeats "standing by" this often, not every second
FAILURE_LOG_INTERVAL = 30.0   # while the database is down, repeat the failure this often, not every second
LIVENESS_TIMEOUT = 5.0        # a lock connection that does not answer SELECT 1 this fast is lost

Lead = Callable[[asyncio.Event, bool], Awaitable[None]]
RoleChanged = Callable[[str], None]


def lock_purpose(bot_id: int) -> str:
    """The lock's name part: one poller per bot, so the key holds the bot id."""
    return f"polling-{bot_id}"


class LeaderElection:
    """Stand by until the lock is free, then lead while holding it; step down if its connection dies."""

    def __init__(self, config: Config, bot_id: int, state: RuntimeState, stop: asyncio.Event,
                 *, on_role: RoleChanged | None = None, interval: float = CHECK_INTERVAL) -> None:
        self.config = config
        self.bot_id = bot_id
        self.state = state
        self.stop = stop
        self.on_role = on_role
        self.interval = interval
        self.terms = 0

    async def run(self, lead: Lead) -> None:
        """Until a stop: wait on the lock (its release wakes a standby at once); while held, run `lead(lost, …)`."""
        url = self.config.database_url
        engine = create_engine(url, poolclass=NullPool)
        sqlite = url.get_backend_name() == "sqlite"
        connection: AsyncConnection | None = None
        last_standby_log = -STANDBY_LOG_INTERVAL
        failures, last_failure_log = 0, -FAILURE_LOG_INTERVAL
        try:
            while not self.stop.is_set():
                try:
                    if connection is None and not sqlite:
                        connection = await engine.connect()
                    if await self._term(engine, connection, lead):
                        return
                    await _discard(connection)
                    connection = None
                except LockTimeout as busy:
                    failures, last_failure_log = 0, -FAILURE_LOG_INTERVAL
                    if connection is not None:
                        try:
                            await connection.commit()  # end SQLAlchemy's autobegun block, so the next try reuses it
                        except (SQLAlchemyError, OSError):
                            await _discard(connection)
                            connection = None
                    if self.state.role != "standby":
                        self._set_role("standby")
                        last_standby_log = -STANDBY_LOG_INTERVAL
                    if time.monotonic() - last_standby_log >= STANDBY_LOG_INTERVAL:
                        last_standby_log = time.monotonic()
                        log.info("standing by", bot_id=self.bot_id, leader=busy.why.removeprefix("held by "),
                                 check_every_s=self.interval)
                    continue  # a standby's next try waits on the lock itself
                except (SQLAlchemyError, OSError) as error:
                    failures += 1
                    if time.monotonic() - last_failure_log >= FAILURE_LOG_INTERVAL:
                        last_failure_log = time.monotonic()
                        log.warning("leader election failed", bot_id=self.bot_id, reason=reason(error),
                                    failures=failures, retry_in_s=self.interval)
                    if self.state.role == "leader":
                        self._set_role("lost")  # whatever failed, this replica no longer polls
                    await _discard(connection)
                    connection = None
                else:
                    failures, last_failure_log = 0, -FAILURE_LOG_INTERVAL
                await _wait(self.stop, self.interval)
        finally:
            await _discard(connection)
            await engine.dispose()

    async def _term(self, engine: AsyncEngine, connection: AsyncConnection | None, lead: Lead) -> bool:
        """One attempt; True when this leader stopped because of a stop request, False when it lost the lock."""
        # The first try does not wait, so a busy lock makes this replica a standby (and says so) at once.
        wait = self.interval if self.state.role == "standby" else 0
        async with database_lock(engine, self.config.database_url, lock_purpose(self.bot_id), wait,
                                 waiting_event=None, connection=connection, give_up=self.stop):
            took_over = self.state.role == "standby"
            self.terms += 1
            log.info("leader elected", bot_id=self.bot_id, took_over=took_over, term=self.terms)
            self._set_role("leader")
            lost = asyncio.Event()
            done = asyncio.Event()
            watcher = asyncio.create_task(self._watch(connection, lost, done))
            try:
                await lead(lost, took_over)
            finally:
                done.set()
                await watcher
            if lost.is_set():
                self._set_role("lost")
                return False
            return True

    async def _watch(self, connection: AsyncConnection | None, lost: asyncio.Event, done: asyncio.Event) -> None:
        """A session lock lives as long as its connection: check it, and step down the moment it dies."""
        if connection is None:
            return  # SQLite: the flock belongs to this process and cannot be lost while it lives
        while not done.is_set():
            await _wait(done, self.interval)
            if done.is_set():
                return
            try:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), LIVENESS_TIMEOUT)
            except (SQLAlchemyError, OSError, TimeoutError) as error:
                log.error("leadership lost", bot_id=self.bot_id, reason=reason(error))
                lost.set()
                return

    def _set_role(self, role: str) -> None:
        """Record the role where /readyz reads it, and tell the runner (for the admins' notices)."""
        self.state.role = role
        if self.on_role is not None:
            self.on_role(role)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake up at once when the event is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


async def _discard(connection: AsyncConnection | None) -> None:
    """Close a lock connection that may already be dead."""
    if connection is not None:
        try:
            await connection.close()
        except (SQLAlchemyError, OSError):
            try:
                await connection.invalidate()
            except (SQLAlchemyError, OSError):
                pass  # the server already dropped it: nothing is left to release
    return None
