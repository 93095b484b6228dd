"""Turn whatever DATABASE_URL a user or a hosting platform hands us into the drivers we ship."""

from __future__ import annotations

import ipaddress
import re
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
# What may follow the credentials' '@': host[:port] (or a libpq host list), then /database and ?options.
_LOCATION = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^/?#@:\[\]\s]*)(:\d*)?(,[^/?#@\s]*)?/[^?@]*(\?.*)?$")
_HOST_NAME = re.compile(r"^[^\s/?#@:\[\]%]+$")


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
    _check_address(url)
    if not url.database:
        raise ConfigError(
            "DATABASE_URL names no database",
            "the path after the host is empty",
            "append /DATABASE_NAME to the URL",
        )
    return url


def written_passwords(raw: str) -> list[str]:
    """A URL's password as written and as decoded, for the redactor, even when the URL fails validation later."""
    try:
        password = _parse(raw.strip()).password
    except Exception:  # noqa: BLE001 - whatever make_url raises for a malformed URL, validation reports it
        return []
    if not password:
        return []
    scheme, _, rest = raw.strip().partition("://")
    userinfo, _ = _split_credentials(rest) if "@" in rest else ("", "")
    return [str(password), userinfo.partition(":")[2]]


def _parse(raw: str) -> URL:
    """make_url, except that the credentials end at the '@' before the host, so a password may hold any of
    '@ : / # ? &' raw, and a password that is not percent-encoded is taken as it is."""
    scheme, separator, rest = raw.partition("://")
    if not separator or rest.startswith("/") or "@" not in rest:
        return make_url(raw)
    userinfo, location = _split_credentials(rest)
    url = make_url(f"{scheme}://{location}")
    username, colon, password = userinfo.partition(":")
    return url.set(username=_decoded(username) or None, password=_decoded(password) if colon else None)


def _split_credentials(rest: str) -> tuple[str, str]:
    """user:password and host[:port][/database][?options]: split at the last '@' that leaves a real host part."""
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        if _LOCATION.match(rest[at + 1:]):
            return rest[:at], rest[at + 1:]
    userinfo, _, location = rest.rpartition("@")
    return userinfo, location


def _decoded(text: str) -> str:
    """Percent-decoded text, or the text itself when it was clearly not encoded (a '%' that starts no UTF-8
    escape, as in a raw password like ab%cd or 50%off)."""
    if "%" not in text:
        return text
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        return text
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return text


def _valid_host(host: str) -> bool:
    """A DNS name (IDNA-encodable) or an IP address, as getaddrinfo accepts them."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return False
        return True
    try:
        return bool(_HOST_NAME.match(host)) and bool(host.encode("idna"))
    except UnicodeError:
        return False


def _check_address(url: URL) -> None:
    """A host a resolver can be asked about and a port that exists, before any driver sees them."""
    try:
        port = url.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError("DATABASE_URL has a port outside 1-65535", "no server can listen there",
                          "fix the number after the host's ':' (PostgreSQL: 5432, MySQL/MariaDB: 3306)")
    if not all(_valid_host(host) for host in (url.host or "").split(",") if host):
        raise ConfigError("DATABASE_URL has a malformed host", "a host is a DNS name or an IP address",
                          "check the part between '@' and the port or '/', and percent-encode special "
                          "characters of the password (@ as %40, / as %2F)")


def _absolute_sqlite(url: URL) -> URL:
    """Anchor a relative SQLite path at the project root instead of the current directory."""
    if url.host or url.username or url.port:
        raise ConfigError(
            "DATABASE_URL names a host for SQLite (sqlite:// with two slashes?)",
            "a SQLite URL has three slashes before a relative path and four before an absolute one",
            "use e.g. sqlite:///data/bot.db or sqlite:////var/lib/bot/bot.db",
        )
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


def mysql_wire_password(url: URL) -> URL:
    """aiomysql and PyMySQL send a password as latin-1, which fails (or differs) beyond ASCII; give them the UTF-8
    bytes the mariadb client sends, spelt as latin-1 so their encoding step hands those bytes over unchanged."""
    if not url.password or str(url.password).isascii():
        return url
    return url.set(password=str(url.password).encode("utf-8").decode("latin-1"))


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
