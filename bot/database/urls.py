"""Turn whatever DATABASE_URL a user or a hosting platform hands us into the drivers we ship."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError
from bot.paths import DEFAULT_SQLITE_FILE, PROJECT_ROOT

# The async driver the bot and Alembic use for each backend, and the sync twin of the same
# driver family for code that must not pay for SQLAlchemy's asyncio layer.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "psycopg", "mysql": "aiomysql", "mariadb": "aiomysql"}
SYNC_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}

_BACKEND_ALIASES = {"postgres": "postgresql", "postgresql": "postgresql", "pgsql": "postgresql",
                    "mysql": "mysql", "mariadb": "mariadb", "sqlite": "sqlite"}
_ACCEPTED_DRIVERS = {
    "sqlite": {"", "aiosqlite", "pysqlite"},
    "postgresql": {"", "psycopg", "psycopg_async"},
    "mysql": {"", "aiomysql", "pymysql"},
    "mariadb": {"", "aiomysql", "pymysql"},
}
SUPPORTED_FORMS = "sqlite:///path.db, postgresql://…, postgres://…, mysql://…, mariadb://…"


def default_database_url() -> URL:
    """The embedded default: a SQLite file under the project root."""
    return URL.create(f"sqlite+{ASYNC_DRIVERS['sqlite']}", database=str(DEFAULT_SQLITE_FILE))


def normalize_database_url(raw: str) -> URL:
    """Parse DATABASE_URL and return it with our async driver and absolute SQLite paths."""
    try:
        url = _parse(raw.strip())
    except (ArgumentError, ValueError):
        raise ConfigError(
            "DATABASE_URL is malformed",
            "it is not of the form scheme://user:password@host:port/database",
            f"use one of {SUPPORTED_FORMS}, with special characters in the password percent-encoded (@ as %40)",
        ) from None
    scheme, _, driver = url.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(scheme.lower())
    if backend is None:
        raise ConfigError(
            f"DATABASE_URL has an unsupported scheme '{scheme}'",
            "only SQLite, PostgreSQL and MySQL/MariaDB are supported",
            f"use one of {SUPPORTED_FORMS}",
        )
    if driver not in _ACCEPTED_DRIVERS[backend]:
        raise ConfigError(
            f"DATABASE_URL names the driver '{driver}', which this project does not ship",
            f"{backend} runs on {ASYNC_DRIVERS[backend]}",
            f"drop '+{driver}' from the scheme",
        )
    url = url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")
    if backend == "sqlite":
        return _absolute_sqlite(url)
    if not url.database:
        raise ConfigError(
            "DATABASE_URL names no database",
            "the path after the host is empty",
            "append /DATABASE_NAME to the URL",
        )
    return url


def _parse(raw: str) -> URL:
    """make_url, except that the credentials end at the last '@' (raw '@', ':', '/' in a password work)."""
    scheme, separator, rest = raw.partition("://")
    address, question, query = rest.partition("?")
    if not separator or address.startswith("/") or "@" not in address:
        return make_url(raw)
    userinfo, _, location = address.rpartition("@")
    username, colon, password = userinfo.partition(":")
    url = make_url(f"{scheme}://{location}{question}{query}")
    return url.set(username=unquote(username) or None, password=unquote(password) if colon else None)


def _absolute_sqlite(url: URL) -> URL:
    """Anchor a relative SQLite path at the project root instead of the current directory."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ConfigError(
            "DATABASE_URL points at an in-memory SQLite database",
            "its schema and data would vanish between commands",
            "use a file, e.g. sqlite:///data/bot.db",
        )
    path = Path(database)
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    return url.set(database=str(path))


def sync_url(url: URL) -> URL:
    """The same database through the synchronous twin of our driver."""
    backend = url.get_backend_name()
    return url.set(drivername=f"{backend}+{SYNC_DRIVERS[backend]}")


def describe_url(url: URL) -> dict[str, object]:
    """Dialect, host and database of a URL, safe to log (never the password)."""
    if url.get_backend_name() == "sqlite":
        return {"dialect": "sqlite", "database": url.database}
    return {"dialect": url.get_backend_name(), "host": url.host, "port": url.port, "database": url.database,
            "user": url.username}


def database_label(url: URL) -> str:
    """A short name for the database that an operator recognizes and can type to confirm."""
    if url.get_backend_name() == "sqlite":
        return Path(url.database or "").name
    return url.database or ""


def where(url: URL) -> str:
    """host/database (or the SQLite path) for one-line messages."""
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    port = f":{url.port}" if url.port else ""
    return f"{url.host}{port}/{url.database}"
