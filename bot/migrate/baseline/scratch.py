"""Throwaway databases for squashing: one per build, made on a server the operator names, always dropped."""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import SQLAlchemyError

from bot.data.engine import connect_options
from bot.data.urls import sync_url, where
from bot.errors import DatabaseUnreachable

PREFIX = "toolkit_squash_"


@contextmanager
def scratch_database(server: URL) -> Iterator[URL]:
    """A new, empty database on the server of `server` (SQLite: a temporary file); dropped afterwards."""
    if server.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory(prefix=PREFIX) as folder:
            yield URL.create("sqlite+aiosqlite", database=str(Path(folder) / "scratch.db"))
        return
    name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
    engine = sync_engine(server, isolation_level="AUTOCOMMIT")
    quoted = engine.dialect.identifier_preparer.quote(name)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except SQLAlchemyError as error:
        engine.dispose()
        raise DatabaseUnreachable(f"no scratch database could be made on {where(server)}",
                                  str(error.orig if hasattr(error, "orig") else error).splitlines()[0],
                                  "squash needs a server where its user may CREATE DATABASE; pass --server URL") \
            from None
    try:
        yield server.set(database=name)
    finally:
        drop = f"DROP DATABASE IF EXISTS {quoted}" + (" WITH (FORCE)" if server.get_backend_name() == "postgresql"
                                                      else "")
        with engine.connect() as connection:
            connection.execute(sa.text(drop))
        engine.dispose()


@contextmanager
def scratch_connection(server: URL) -> Iterator[Connection]:
    """One connection to a new scratch database on the server of `server`; database and engine go afterwards."""
    with scratch_database(server) as url:
        engine = sync_engine(url)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()


def sync_engine(url: URL, **options: object) -> sa.Engine:
    """A synchronous engine (the driver's sync twin), one connection at a time."""
    driver_url, connect_args = connect_options(sync_url(url))
    return sa.create_engine(driver_url, connect_args=connect_args, poolclass=sa.pool.NullPool, **options)


@contextmanager
def quiet_alembic() -> Iterator[None]:
    """Alembic's "Running upgrade" line per revision is noise while a scratch database replays the history."""
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)

