"""Named cross-process locks held by the database itself, so two replicas never migrate at once."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.data.waiting import is_lock_wait, reason
from bot.errors import LockTimeout
from bot.logs import get_logger

log = get_logger(__name__)

WAIT_SLICE = 0.2          # the longest single wait on a lock, so a stop request is seen this often
FILE_LOCK_POLL = 0.02     # flock cannot wait with a timeout: try this often instead
WAIT_LOG_INTERVAL = 5.0


def holder_label() -> str:
    """Who we are, as another waiting process will see us."""
    return f"pid={os.getpid()} host={socket.gethostname()}"


def lock_name(purpose: str, url: URL) -> str:
    """Locks are per database: PostgreSQL advisory locks and MySQL named locks are server-wide."""
    return f"bot:{purpose}:{url.database}"


def pg_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def mysql_name(name: str) -> str:
    """MySQL limits lock names to 64 characters; hash long ones."""
    return name if len(name) <= 64 else "bot:" + hashlib.sha256(name.encode()).hexdigest()[:56]


class _Lock:
    """One backend's try-acquire, wait-acquire, release and who-holds-it."""

    async def try_acquire(self) -> bool:
        raise NotImplementedError

    async def wait_acquire(self, seconds: float) -> bool:
        """Wait up to `seconds` for the lock; the server-side locks below are woken the moment it is released."""
        deadline = time.monotonic() + seconds
        while not await self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(FILE_LOCK_POLL, max(deadline - time.monotonic(), 0)))
        return True

    async def release(self) -> None:
        raise NotImplementedError

    async def holder(self) -> str | None:
        return None


class _FileLock(_Lock):
    """SQLite: flock on a file beside the database (never the database file itself, see docs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    async def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, holder_label().encode())
        self.fd = fd
        return True

    async def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    async def holder(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None


class _PostgresLock(_Lock):
    """A session-level advisory lock on a dedicated autocommit connection."""

    def __init__(self, connection: AsyncConnection, name: str) -> None:
        self.connection = connection
        self.key = pg_key(name)
        self.lock_timeout: str | None = None

    async def try_acquire(self) -> bool:
        result = await self.connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        return bool(result.scalar())

    async def wait_acquire(self, seconds: float) -> bool:
        if seconds <= 0:
            return await self.try_acquire()
        limit = f"{max(1, round(seconds * 1000))}ms"
        if limit != self.lock_timeout:  # the connection only ever holds this lock: the setting can stay
            await self.connection.execute(text("SELECT set_config('lock_timeout', :limit, false)"), {"limit": limit})
            self.lock_timeout = limit
        try:
            await self.connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
            return True
        except DBAPIError as error:  # in autocommit, so a failed wait leaves no aborted transaction behind
            if is_lock_wait(error):
                return False
            raise

    async def release(self) -> None:
        await self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})

    async def holder(self) -> str | None:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        row = (await self.connection.execute(text(
            "SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid = :high AND l.objid = :low AND l.objsubid = 1"),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF})).first()
        if row is None:
            return None
        return f"{row.application_name or 'backend'} (server pid {row.pid}, from {row.client_addr or 'local'})"


class _MysqlLock(_Lock):
    """MySQL/MariaDB named lock, held by the dedicated connection's session."""

    def __init__(self, connection: AsyncConnection, name: str) -> None:
        self.connection = connection
        self.name = mysql_name(name)

    async def try_acquire(self) -> bool:
        return await self.wait_acquire(0)

    async def wait_acquire(self, seconds: float) -> bool:
        started = time.monotonic()
        result = await self.connection.execute(text("SELECT GET_LOCK(:name, :seconds)"),
                                               {"name": self.name, "seconds": max(seconds, 0)})
        if result.scalar() == 1:
            return True
        # A server that rounds a fractional timeout down to 0 answers at once: wait out the slice here instead.
        await asyncio.sleep(max(seconds - (time.monotonic() - started), 0))
        return False

    async def release(self) -> None:
        await self.connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": self.name})

    async def holder(self) -> str | None:
        row = (await self.connection.execute(text(
            "SELECT p.id, p.host FROM information_schema.processlist p WHERE p.id = IS_USED_LOCK(:name)"),
            {"name": self.name})).first()
        return None if row is None else f"connection {row.id} from {row.host}"


@asynccontextmanager
async def database_lock(engine: AsyncEngine, url: URL, purpose: str, timeout: float,
                        *, waiting_event: str | None, connection: AsyncConnection | None = None,
                        give_up: asyncio.Event | None = None) -> AsyncIterator[None]:
    """Hold the named lock for the block; wait up to `timeout` seconds (or until `give_up` is set), logging who
    holds it."""
    name = lock_name(purpose, url)
    backend = url.get_backend_name()
    own_connection = None
    lock: _Lock
    if backend == "sqlite":
        lock = _FileLock(Path(f"{url.database}-{purpose}.lock"))
    else:
        own_connection = connection or await engine.connect()
        lock = _PostgresLock(own_connection, name) if backend == "postgresql" else _MysqlLock(own_connection, name)
    try:
        if own_connection is not None:
            await _prepare_session(own_connection, backend, purpose)
        await _acquire(lock, purpose, timeout, waiting_event, give_up)
        try:
            yield
        finally:
            await asyncio.shield(_release(lock, purpose))
    finally:
        if own_connection is not None and connection is None:
            await asyncio.shield(_close(own_connection))


async def _prepare_session(connection: AsyncConnection, backend: str, purpose: str) -> None:
    """Autocommit, a name other replicas can read, and no idle timeout: the session holds the lock while idle."""
    await connection.execution_options(isolation_level="AUTOCOMMIT")
    if backend == "postgresql":
        await connection.execute(text("SELECT set_config('application_name', :name, false)"),
                                 {"name": f"bot {purpose} {holder_label()}"[:63]})
        # idle_session_timeout (PostgreSQL 14+) would end the lock's idle session in the middle of a migration.
        await connection.execute(text(
            "SELECT set_config('idle_session_timeout', '0', false) WHERE current_setting('server_version_num')::int "
            ">= 140000"))
    else:
        # Hosted MySQL often lowers wait_timeout to minutes; a long migration must not lose the lock with it.
        await connection.execute(text("SET SESSION wait_timeout = 31536000"))


async def _release(lock: _Lock, purpose: str) -> None:
    """Release the lock; if its connection already died, the server has released it with the session."""
    try:
        await lock.release()
    except (SQLAlchemyError, OSError) as error:
        log.warning("lock release failed", lock=purpose, reason=reason(error),
                    note="the session is gone, and its lock with it")


async def _close(connection: AsyncConnection) -> None:
    """Close the lock's connection; a dead one needs no closing."""
    try:
        await connection.close()
    except (SQLAlchemyError, OSError):
        pass


async def _acquire(lock: _Lock, purpose: str, timeout: float, waiting_event: str | None,
                   give_up: asyncio.Event | None) -> None:
    """Wait on the lock in short slices, so a release wakes the waiter at once while a stop request (SIGTERM)
    and the log lines still get their turn between slices; no waiting_event: wait without logging."""
    started = time.monotonic()
    next_log = started
    wait = 0.0  # the first try does not wait, so a busy lock is logged (and named) at once
    while not await lock.wait_acquire(wait):
        now = time.monotonic()
        waited = now - started
        if waited >= timeout or (give_up is not None and give_up.is_set()):
            holder = await lock.holder()
            raise LockTimeout(f"gave up waiting for the {purpose} lock after {timeout:g}s",
                              f"held by {holder or 'another process'}",
                              "wait for it to finish, or raise MIGRATION_LOCK_TIMEOUT")
        if waiting_event is not None and now >= next_log:
            fields: dict[str, Any] = {"lock": purpose, "waited_s": round(waited, 1), "timeout_s": timeout}
            fields["holder"] = await lock.holder()
            log.info(waiting_event, **fields)
            next_log = now + WAIT_LOG_INTERVAL
        wait = min(WAIT_SLICE, max(timeout - (time.monotonic() - started), 0))
    if waiting_event is not None and time.monotonic() - started > WAIT_SLICE:
        log.info("lock acquired", lock=purpose, waited_s=round(time.monotonic() - started, 2))


@asynccontextmanager
async def migration_lock(engine: AsyncEngine, url: URL, timeout: float) -> AsyncIterator[None]:
    """The lock every schema-changing command holds."""
    async with database_lock(engine, url, "migration", timeout, waiting_event="waiting for migration lock"):
        yield
