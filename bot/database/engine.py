"""Async engines for the bot and for migrations, with each driver's URL options made to work."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.errors import ConfigError

# Query options MySQL drivers accept as they are; the ssl ones are translated below.
_MYSQL_PASSTHROUGH = {"charset", "connect_timeout", "read_timeout", "write_timeout", "local_infile",
                      "program_name", "init_command", "autocommit", "sql_mode", "binary_prefix"}
_MYSQL_SSL_KEYS = ("ssl-mode", "ssl_mode", "sslmode", "sslaccept", "ssl")


def ensure_sqlite_folder(url: URL) -> None:
    """SQLite cannot create the folder of its file; do it for every entry point."""
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def connect_options(url: URL) -> tuple[URL, dict[str, Any]]:
    """Rewrite platform query options into what our drivers understand, or fail with a clear line."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url, {"timeout": 30}
    if backend == "postgresql":
        if url.query.get("ssl") in ("true", "1"):
            url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": "require"})
        return url, {}
    return _mysql_options(url)


def _mysql_options(url: URL) -> tuple[URL, dict[str, Any]]:
    """aiomysql/PyMySQL take an SSLContext, not the ssl-mode words platforms put in URLs."""
    connect_args: dict[str, Any] = {}
    mode = next((str(url.query[key]) for key in _MYSQL_SSL_KEYS if key in url.query), None)
    url = url.difference_update_query(_MYSQL_SSL_KEYS)
    unknown = sorted(set(url.query) - _MYSQL_PASSTHROUGH)
    if unknown:
        raise ConfigError(f"DATABASE_URL has query options the MySQL driver does not know: {', '.join(unknown)}",
                          "they would crash the driver at connect time",
                          "remove them, or use ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY, charset=…")
    if mode is not None:
        context = _mysql_ssl_context(mode)
        if context is not None:
            connect_args["ssl"] = context
    return url, connect_args


def _mysql_ssl_context(mode: str) -> ssl.SSLContext | None:
    """Map MySQL's ssl-mode words (and common aliases) onto an SSLContext."""
    word = mode.strip().upper().replace("-", "_")
    if word in ("DISABLED", "DISABLE", "FALSE", "0", "PREFERRED", "PREFER"):
        return None
    context = ssl.create_default_context()
    if word in ("REQUIRED", "REQUIRE", "TRUE", "1", "ACCEPT_INVALID_CERTS"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if word == "VERIFY_CA":
        context.check_hostname = False
        return context
    if word in ("VERIFY_IDENTITY", "VERIFY_FULL", "STRICT"):
        return context
    raise ConfigError(f"DATABASE_URL has an unknown ssl mode {mode!r}", "the MySQL driver needs a known ssl mode",
                      "use ssl-mode=DISABLED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY")


def create_engine(url: URL, *, for_migrations: bool = False, **options: Any) -> AsyncEngine:
    """An async engine that survives database restarts (pre-ping) and fits the backend."""
    ensure_sqlite_folder(url)
    url, connect_args = connect_options(url)
    if for_migrations:
        options.setdefault("poolclass", NullPool)
    engine = create_async_engine(url, connect_args=connect_args, pool_pre_ping=True, **options)
    if for_migrations and url.get_backend_name() == "sqlite":
        make_sqlite_ddl_transactional(engine)
    return engine


def make_sqlite_ddl_transactional(engine: AsyncEngine) -> None:
    """SQLAlchemy's documented recipe: let SQLite, not the driver, run transactions, so DDL rolls back too."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediately(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
