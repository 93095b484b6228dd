"""Async engines for the bot and for migrations, with each driver's URL options made to work."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from bot.data.sqlite_files import prepare_sqlite_location
from bot.data.urls import mysql_wire_password, where
from bot.errors import ConfigError, DatabaseUnreachable

if TYPE_CHECKING:  # the asyncio layer is imported when an engine is made, not by the sync fast path
    from sqlalchemy.ext.asyncio import AsyncEngine

# One attempt to connect gives up after this long unless the URL says otherwise (connect_timeout=…),
# so a black-holed host turns into a retry within DB_WAIT_TIMEOUT instead of a two-minute TCP hang.
CONNECT_TIMEOUT = 10
# PostgreSQL 14+: how often a migration session checks, mid-statement, that its client is still there,
# so a killed migrator's statement (and its locks) end within seconds instead of when the statement ends.
CLIENT_CHECK_INTERVAL_MS = 2000

# Statements the toolkit sends on a migration connection for itself (journal rows, SQLite's BEGIN) carry this
# execution option, so the migration review never mistakes them for a revision's.
INTERNAL = {"bot_toolkit_internal": True}

# Query options both MySQL drivers (aiomysql for the bot and Alembic, PyMySQL for the sync paths) accept as
# they are, with the values each must hold; the ssl ones are translated below.
_MYSQL_PASSTHROUGH = {"charset": "a character set name such as utf8mb4", "connect_timeout": "a whole number of seconds",
                      "init_command": "an SQL statement", "sql_mode": "a list of SQL modes",
                      "program_name": "a name", "local_infile": "true or false"}
# Options PyMySQL knows but aiomysql does not (a TypeError at connect), or that would break the toolkit.
_MYSQL_REFUSED = {
    "read_timeout": "aiomysql, the driver the bot and the migrations use, has no read timeout",
    "write_timeout": "aiomysql, the driver the bot and the migrations use, has no write timeout",
    "binary_prefix": "aiomysql, the driver the bot and the migrations use, does not know it",
    "autocommit": "the toolkit runs its own transactions (a migration step must roll back as a whole)",
}
_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                  "off": False}
_MYSQL_SSL_MODE_KEYS = ("ssl-mode", "ssl_mode", "sslmode", "sslaccept", "ssl")
_MYSQL_SSL_FILE_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_check_hostname")
_MYSQL_TLS_MODES = {
    "DISABLED": "DISABLED", "DISABLE": "DISABLED", "FALSE": "DISABLED", "0": "DISABLED",
    "PREFERRED": "PREFERRED", "PREFER": "PREFERRED",
    "REQUIRED": "REQUIRED", "REQUIRE": "REQUIRED", "TRUE": "REQUIRED", "1": "REQUIRED",
    "ACCEPT_INVALID_CERTS": "REQUIRED", "NO_VERIFY": "REQUIRED",
    "VERIFY_CA": "VERIFY_CA",
    "VERIFY_IDENTITY": "VERIFY_IDENTITY", "VERIFY_FULL": "VERIFY_IDENTITY", "STRICT": "VERIFY_IDENTITY",
}
# libpq does not know the node-postgres spelling some platforms hand out.
_PG_SSLMODE_ALIASES = {"no-verify": "require", "true": "require", "false": "disable"}


@dataclass(frozen=True)
class ConnectPlan:
    """What create_async_engine needs for one URL: the URL the driver accepts, its kwargs, and checks."""

    url: URL
    connect_args: dict[str, Any]
    require_tls: bool = False


def ensure_sqlite_folder(url: URL) -> None:
    """SQLite cannot create the folder of its file; do it for every entry point, or say why it cannot write there."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        prepare_sqlite_location(Path(url.database))


def connect_options(url: URL) -> tuple[URL, dict[str, Any]]:
    """Rewrite platform query options into what our drivers understand, or fail with a clear line."""
    planned = connect_plan(url)
    return planned.url, planned.connect_args


def connect_plan(url: URL) -> ConnectPlan:
    """The driver-ready URL and connect kwargs for a backend, plus whether TLS must be verified after connecting."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return ConnectPlan(url, {"timeout": 30})
    if backend == "postgresql":
        return _postgres_plan(url)
    return _mysql_plan(url)


def _postgres_plan(url: URL) -> ConnectPlan:
    """psycopg hands every query option to libpq (sslmode, sslrootcert, …); only fix the non-libpq spellings."""
    if "pgbouncer" in url.query:
        raise ConfigError("DATABASE_URL has pgbouncer=…, an option of Prisma that libpq does not know",
                          "it marks a transaction-mode pooler, through which session locks (the migration lock) "
                          "do not hold", "use the direct or session-mode URL of the database; see docs/DATABASES.md")
    if "ssl" in url.query and "sslmode" not in url.query:
        mode = _PG_SSLMODE_ALIASES.get(str(url.query["ssl"]).lower(), str(url.query["ssl"]))
        url = url.difference_update_query(["ssl"]).update_query_dict({"sslmode": mode})
    elif "ssl" in url.query:
        url = url.difference_update_query(["ssl"])
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str) and sslmode.lower() in _PG_SSLMODE_ALIASES:
        url = url.update_query_dict({"sslmode": _PG_SSLMODE_ALIASES[sslmode.lower()]})
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    return ConnectPlan(url, connect_args)


def _mysql_plan(url: URL) -> ConnectPlan:
    """aiomysql/PyMySQL take an SSLContext, not the ssl-mode words and file paths platforms put in URLs."""
    modes = [str(url.query[key]) for key in _MYSQL_SSL_MODE_KEYS if key in url.query]
    files = {key: str(url.query[key]) for key in _MYSQL_SSL_FILE_KEYS if key in url.query}
    url = url.difference_update_query(_MYSQL_SSL_MODE_KEYS + _MYSQL_SSL_FILE_KEYS)
    refused = sorted(set(url.query) & set(_MYSQL_REFUSED))
    if refused:
        raise ConfigError(f"DATABASE_URL has {refused[0]}=…, which this toolkit cannot pass to MySQL/MariaDB",
                          _MYSQL_REFUSED[refused[0]],
                          f"remove {refused[0]} from the URL (DDL_STATEMENT_TIMEOUT bounds migration statements, "
                          "connect_timeout each connection attempt)")
    unknown = sorted(set(url.query) - set(_MYSQL_PASSTHROUGH))
    if unknown:
        raise ConfigError(f"DATABASE_URL has query options the MySQL driver does not know: {', '.join(unknown)}",
                          "they would crash the driver at connect time",
                          "remove them, or use ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY, ssl_ca=…, charset=…")
    if len(set(modes)) > 1:
        raise ConfigError(f"DATABASE_URL sets the ssl mode twice ({', '.join(modes)})",
                          "the options disagree", "keep a single ssl-mode=…")
    _check_mysql_values(url)
    mode = _mysql_tls_mode(modes[0] if modes else None, files)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    if mode != "DISABLED":
        connect_args["ssl"] = _mysql_ssl_context(mode, files)
    return ConnectPlan(mysql_wire_password(url), connect_args, require_tls=mode not in ("DISABLED", "PREFERRED"))


def _check_mysql_values(url: URL) -> None:
    """Values the drivers would otherwise reject with a traceback (int("1.5")) or misread ("false" is truthy)."""
    for name in ("connect_timeout", "local_infile"):
        value = url.query.get(name)
        if value is None:
            continue
        text = str(value).strip().lower()
        valid = text.isdigit() and int(text) > 0 if name == "connect_timeout" else text in _BOOLEAN_WORDS
        if not valid:
            raise ConfigError(f"DATABASE_URL has {name}={value!r}", f"it must be {_MYSQL_PASSTHROUGH[name]}",
                              f"fix {name} in the URL")


def _mysql_tls_mode(word: str | None, files: dict[str, str]) -> str:
    """MySQL's ssl-mode (and the aliases platforms use); a CA file alone means VERIFY_CA, as in the mysql client."""
    if word is None:
        return "VERIFY_CA" if "ssl_ca" in files or "ssl_capath" in files else "DISABLED"
    mode = _MYSQL_TLS_MODES.get(word.strip().upper().replace("-", "_"))
    if mode is None:
        raise ConfigError(f"DATABASE_URL has an unknown ssl mode {word!r}", "the MySQL driver needs a known ssl mode",
                          "use ssl-mode=DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY")
    return mode


def _mysql_ssl_context(mode: str, files: dict[str, str]) -> ssl.SSLContext:
    """An SSLContext that verifies exactly as much as the mode asks for."""
    try:
        context = ssl.create_default_context(cafile=files.get("ssl_ca"), capath=files.get("ssl_capath"))
        if "ssl_cert" in files:
            context.load_cert_chain(files["ssl_cert"], files.get("ssl_key"))
    except (OSError, ssl.SSLError) as error:
        named = ", ".join(f"{key}={value}" for key, value in files.items() if key != "ssl_check_hostname")
        raise ConfigError(f"DATABASE_URL's TLS files cannot be used ({named})",
                          getattr(error, "strerror", None) or str(error),
                          "point ssl_ca / ssl_cert / ssl_key at readable PEM files") from None
    if mode in ("PREFERRED", "REQUIRED"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif mode == "VERIFY_CA":
        context.check_hostname = files.get("ssl_check_hostname", "").lower() in ("1", "true", "yes")
    return context


def create_engine(url: URL, *, for_migrations: bool = False, **options: Any) -> AsyncEngine:
    """An async engine that survives database restarts (pre-ping) and fits the backend."""
    ensure_sqlite_folder(url)
    planned = connect_plan(url)
    reset_when_open = False
    if for_migrations:
        options.setdefault("poolclass", NullPool)
    elif url.get_backend_name() == "sqlite" and "poolclass" not in options:
        # SQLite has one writer: concurrent handlers on several connections spin in its busy handler
        # (sleeps of up to 100 ms each); queueing them for one connection is ~10× the throughput (bench G6).
        options.setdefault("pool_size", 1)
        options.setdefault("max_overflow", 0)
        reset_when_open = "pool_reset_on_return" not in options
        options.setdefault("pool_reset_on_return", None)  # _sqlite_reset_when_open does it, only when needed
    from sqlalchemy.ext.asyncio import create_async_engine

    # A SQLite file cannot go away under a pooled connection: pre-ping there is a thread hop per session for nothing.
    options.setdefault("pool_pre_ping", url.get_backend_name() != "sqlite")
    if not for_migrations and url.get_backend_name() in ("mysql", "mariadb"):
        # PostgreSQL's default, and what the hot path's UPDATE-then-INSERT expects: under InnoDB's REPEATABLE
        # READ an UPDATE that finds no row takes a gap lock, and two first messages from one user deadlock.
        options.setdefault("isolation_level", "READ COMMITTED")
    engine = create_async_engine(planned.url, connect_args=planned.connect_args, **options)
    backend = url.get_backend_name()
    if planned.require_tls:
        _refuse_plaintext(engine, url)
    if for_migrations and backend == "sqlite":
        make_sqlite_ddl_transactional(engine)
    if not for_migrations and backend == "sqlite":
        _sqlite_write_ahead(engine)
    if reset_when_open:
        _sqlite_reset_when_open(engine)
    if for_migrations and backend == "postgresql":
        _check_client_during_statements(engine)
    return engine


def _refuse_plaintext(engine: AsyncEngine, url: URL) -> None:
    """aiomysql silently falls back to plaintext when the server offers no TLS; ssl-mode=REQUIRED must not."""

    @event.listens_for(engine.sync_engine, "connect")
    def _tls_or_nothing(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cursor.fetchone()
        finally:
            cursor.close()
        if not row or not row[1]:
            raise DatabaseUnreachable(
                f"the database at {where(url)} did not encrypt the connection",
                "DATABASE_URL asks for TLS (ssl-mode) but the server does not offer it",
                "enable TLS on the server, or use ssl-mode=PREFERRED/DISABLED on a trusted network")


def _check_client_during_statements(engine: AsyncEngine) -> None:
    """PostgreSQL 14+: end a migration's statement soon after its client dies (kill -9), releasing its locks."""

    @event.listens_for(engine.sync_engine, "connect")
    def _client_check(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.driver_connection.info.server_version < 140000:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_INTERVAL_MS}")
        finally:
            cursor.close()
        dbapi_connection.commit()


def _sqlite_write_ahead(engine: AsyncEngine) -> None:
    """WAL with synchronous=NORMAL: a commit is an append, not three fsyncs (13 ms → 0.1 ms here, bench G6).

    Readers no longer block the writer either. A power loss may forget the last commits but never corrupts;
    an application crash loses nothing. The mode is stored in the file, so every later connection uses it.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _write_ahead(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode")
            row = cursor.fetchone()
            if not row or str(row[0]).lower() != "wal":
                try:
                    cursor.execute("PRAGMA journal_mode=WAL")
                except Exception:  # noqa: BLE001 - switching needs a moment alone (a migration may hold a lock):
                    pass           # keep the current mode; a later connection switches
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def _sqlite_reset_when_open(engine: AsyncEngine) -> None:
    """Roll a returned connection back only if a transaction is still open on it.

    The pool's own reset rolls back every time, and with aiosqlite every call is a hop to its thread and
    back: after a handler's commit that hop bought nothing and cost ~13 % of the update (bench G6).
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _rollback_if_open(dbapi_connection: Any, _record: Any, _state: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()


def make_sqlite_ddl_transactional(engine: AsyncEngine) -> None:
    """SQLAlchemy's documented recipe: let SQLite, not the driver, run transactions, so DDL rolls back too."""

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediately(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE", execution_options=INTERNAL)
