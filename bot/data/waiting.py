"""Connect to the database, waiting with backoff through the failures that time can heal."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.data.urls import where
from bot.errors import DatabaseUnreachable
from bot.logs import get_logger
from bot.resolution import unresolvable

if TYPE_CHECKING:  # the asyncio layer loads with the engines, not with this module (the fast path imports it)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = get_logger(__name__)

_TRANSIENT_TEXT = (
    "connection refused", "could not translate host name", "temporary failure in name resolution",
    "timeout", "timed out",
    "the database system is starting up", "the database system is shutting down",
    "the database system is in recovery mode", "server closed the connection unexpectedly",
    "no route to host", "network is unreachable", "connection reset", "can't connect to",
    "lost connection", "too many connections", "server has gone away", "connection is closed",
    "too many clients", "not yet accepting connections", "terminating connection", "could not receive data",
    "server shutdown in progress", "connection timeout expired",
)
_FATAL_TEXT = ("password authentication failed", "does not exist", "access denied", "no pg_hba.conf entry",
               "ssl was required", "certificate verify failed", "invalid connection option", "invalid sslmode")
_TRANSIENT_MYSQL_CODES = {1040, 1053, 2002, 2003, 2005, 2006, 2013}
_FATAL_MYSQL_CODES = {1044, 1045, 1049, 1698}


def reason(error: BaseException) -> str:
    """The driver's own first line of an error, which is what an operator needs to read."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


# PostgreSQL's lock_not_available SQLSTATE and MySQL/MariaDB's lock wait timeout error number.
LOCK_WAIT_CODES: frozenset[object] = frozenset({"55P03", 1205})


def error_codes(error: BaseException) -> set[object]:
    """The driver's SQLSTATE and error number of an error (or of the error SQLAlchemy wrapped)."""
    original = getattr(error, "orig", None) or error
    return {getattr(original, "sqlstate", None), original.args[0] if getattr(original, "args", None) else None}


def is_lock_wait(error: BaseException) -> bool:
    """The error is a statement giving up on a lock after the session's lock timeout."""
    return bool(error_codes(error) & LOCK_WAIT_CODES)


def is_transient(error: BaseException) -> bool:
    """True for refused, timed out or still-starting servers and DNS hiccups; False for wrong credentials,
    a host name that does not exist, or anything a driver cannot even attempt (a malformed host or port)."""
    if unresolvable(error) or isinstance(error, (UnicodeError, ValueError, OverflowError)):
        return False
    original = getattr(error, "orig", None) or error
    args = getattr(original, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    text = str(original).lower()
    if code in _FATAL_MYSQL_CODES or any(marker in text for marker in _FATAL_TEXT):
        return False
    if code in _TRANSIENT_MYSQL_CODES:
        return True
    if isinstance(original, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    return any(marker in text for marker in _TRANSIENT_TEXT)


async def open_connection(engine: AsyncEngine, url: URL, timeout: float) -> AsyncConnection:
    """Open a connection, retrying transient failures until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    delay = 0.25
    attempt = 0
    while True:
        attempt += 1
        try:
            # One attempt never outlives the wait by more than a second, whatever the driver's own timeout.
            return await asyncio.wait_for(engine.connect(), max(deadline - time.monotonic(), 0) + 1.0)
        except (OperationalError, InterfaceError, DBAPIError, OSError, TimeoutError, UnicodeError, ValueError,
                OverflowError) as error:
            why = reason(error) if not isinstance(error, TimeoutError) else "connecting timed out"
            remaining = deadline - time.monotonic()
            unknown_host = unresolvable(error)
            if unknown_host:
                raise DatabaseUnreachable(f"the database host {url.host!r} does not resolve",
                                          f"{unknown_host}, which waiting does not change",
                                          "check the host in DATABASE_URL for a typo") from None
            if not is_transient(error):
                raise DatabaseUnreachable(f"cannot use the database at {where(url)}", why,
                                          "check DATABASE_URL (credentials, database name)") from None
            if remaining <= 0:
                raise DatabaseUnreachable(f"database at {where(url)} is unreachable after {timeout:g}s", why,
                                          "start the database or raise DB_WAIT_TIMEOUT") from None
            log.warning("waiting for database", attempt=attempt, target=where(url), reason=why,
                        retry_in_s=round(min(delay, remaining), 2))
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)
