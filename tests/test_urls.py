"""DATABASE_URL as platforms hand it out: schemes, drivers, special-character passwords, query options."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from bot import commands
from bot.database.engine import create_engine
from bot.database.urls import normalize_database_url
from bot.errors import ConfigError
from tests.conftest import MARIADB_ADMIN, plain
from tests.helpers_db import HEAD, run_task, schema, versions

SPECIAL_PASSWORD = "p%@:/;x#y"


@pytest.mark.parametrize(("raw", "driver"), [
    ("postgres://u:pw@db.example.com:5433/app", "postgresql+psycopg"),
    ("postgresql://u:pw@db.example.com/app", "postgresql+psycopg"),
    ("postgresql+psycopg://u:pw@db.example.com/app", "postgresql+psycopg"),
    ("mysql://u:pw@db.example.com:3307/app", "mysql+aiomysql"),
    ("mysql+pymysql://u:pw@db.example.com/app", "mysql+aiomysql"),
    ("mariadb://u:pw@db.example.com/app", "mariadb+aiomysql"),
    ("mariadb+aiomysql://u:pw@db.example.com/app", "mariadb+aiomysql"),
])
def test_platform_url_forms_get_our_async_driver(raw: str, driver: str) -> None:
    """postgres://, postgresql://, mysql:// and mariadb:// (bare or with our driver) all map to the shipped driver."""
    url = normalize_database_url(raw)
    assert url.drivername == driver
    assert (url.username, url.password, url.host, url.database) == ("u", "pw", "db.example.com", "app")


@pytest.mark.parametrize("raw", ["postgresql+asyncpg://u@h/app", "mysql+mysqldb://u@h/app", "oracle://u@h/app",
                                 "postgres://u@h", "postgres://u:pw@h:port/app"])
def test_unsupported_or_malformed_urls_are_config_errors(raw: str) -> None:
    """Another driver, another database, a missing database name or a bad port is a one-line ConfigError."""
    with pytest.raises(ConfigError) as caught:
        normalize_database_url(raw)
    assert "DATABASE_URL" in caught.value.line() and "pw" not in caught.value.line()


@pytest.mark.parametrize("form", ["percent-encoded", "raw"])
def test_password_with_percent_at_colon_slash_semicolon_parses_exactly(form: str) -> None:
    """A password with % @ : / ; # comes out intact, whether the platform percent-encoded it or not."""
    password = quote(SPECIAL_PASSWORD, safe="") if form == "percent-encoded" else SPECIAL_PASSWORD
    url = normalize_database_url(f"postgres://bot:{password}@db.example.com:5432/app?sslmode=require")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "bot", SPECIAL_PASSWORD, "db.example.com", 5432, "app")
    assert dict(url.query) == {"sslmode": "require"}


ISSUE_PASSWORD = "S3c:r@t/#%?&pw"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "mysql", "mariadb"])
@pytest.mark.parametrize("form", ["percent-encoded", "raw"])
def test_password_with_every_url_delimiter_parses_exactly(scheme: str, form: str) -> None:
    """A password holding ':', '@', '/', '#', '%', '?' and '&' comes out intact, encoded or not, with the real host."""
    password = quote(ISSUE_PASSWORD, safe="") if form == "percent-encoded" else ISSUE_PASSWORD
    url = normalize_database_url(f"{scheme}://bot:{password}@db.example.com:3306/app?charset=utf8mb4")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "bot", ISSUE_PASSWORD, "db.example.com", 3306, "app")
    assert dict(url.query) == {"charset": "utf8mb4"}


@pytest.mark.parametrize(("raw", "password"), [
    ("mysql://u:ab%cd@db/app", "ab%cd"),          # %cd is no UTF-8 text: the password was not encoded
    ("mysql://u:50%off@db/app", "50%off"),
    ("mysql://u:%C3%A4%40x@db/app", "ä@x"),       # an encoded one is decoded
    ("postgresql://u:p@db/app?options=-c%20a@b", "p"),  # an '@' in the options is not the credentials' end
])
def test_unencoded_percent_is_taken_as_it_is(raw: str, password: str) -> None:
    """A '%' that starts no percent-escape means the password was written raw, so it is used unchanged."""
    assert normalize_database_url(raw).password == password


@pytest.mark.parametrize(("raw", "says"), [
    ("sqlite://data/bot.db", "sqlite:// with two slashes"),
    ("postgresql://u:Qz9v@db:99999/app", "port outside 1-65535"),
    ("mysql://u:Qz9v@db..example/app", "malformed host"),
    ("mysql://u:Qz9v@bad host/app", "malformed host"),
])
def test_urls_no_driver_could_use_exit_2(raw: str, says: str, monkeypatch: pytest.MonkeyPatch,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    """A URL no driver could open is exit 2 with one line, before any connection (it was a traceback)."""
    monkeypatch.setenv("DATABASE_URL", raw)
    assert run_task(commands.status) == 2
    err = capfd.readouterr().err
    assert says in err and "Traceback" not in err and "Qz9v" not in err


def test_urls_without_credentials_keep_their_at_signs_in_paths() -> None:
    """The last-'@' rule applies to credentials only: SQLite paths and socket URLs keep their shape."""
    assert normalize_database_url("sqlite:////srv/u@x/bot.db").database == "/srv/u@x/bot.db"
    socket_url = normalize_database_url("postgresql:///app?host=/var/run/postgresql")
    assert (socket_url.host, socket_url.database, dict(socket_url.query)) == (
        None, "app", {"host": "/var/run/postgresql"})
    azure = normalize_database_url("postgres://bot@server:pw@db.example.com/app")
    assert (azure.username, azure.password, azure.host) == ("bot@server", "pw", "db.example.com")


@pytest.fixture
def mariadb_account(mariadb_url: URL) -> Iterator[Callable[[str], URL]]:
    """Makes MariaDB accounts with a given password, allowed on the test's database, and drops them afterwards."""
    admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True, charset="utf8mb4")
    names: list[str] = []

    def make(password: str) -> URL:
        name = f"u_{uuid.uuid4().hex[:10]}"
        names.append(name)
        with admin.cursor() as cursor:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
            cursor.execute(f"GRANT ALL ON `{mariadb_url.database}`.* TO %s@'%%'", (name,))
        return mariadb_url.set(username=name, password=password)

    try:
        yield make
    finally:
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute("DROP USER IF EXISTS %s@'%%'", (name,))
        admin.close()


@pytest.fixture
def mariadb_user(mariadb_account: Callable[[str], URL]) -> URL:
    """A MariaDB account whose password has every awkward character, allowed on the test's database."""
    return mariadb_account(SPECIAL_PASSWORD)


def test_mariadb_password_beyond_latin1_connects(mariadb_account: Callable[[str], URL],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    """A password with ä, € (set through a UTF-8 client) logs in, instead of a UnicodeEncodeError traceback."""
    account = mariadb_account("pässwörd€")
    monkeypatch.setenv("DATABASE_URL", f"mysql://{account.username}:{quote('pässwörd€', safe='')}@"
                                       f"{account.host}:{account.port}/{account.database}")
    code = run_task(commands.migrate)
    output = capfd.readouterr()
    assert code == 0, output.err[-2000:]
    assert "users" in schema(account)
    assert "Traceback" not in output.err and "pässwörd€" not in output.err + output.out


@pytest.mark.parametrize("form", ["percent-encoded", "raw"])
def test_mariadb_account_with_special_password_migrates(form: str, mariadb_user: URL,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """The server really checks this password: migrate succeeds with it, and never prints it."""
    password = quote(SPECIAL_PASSWORD, safe="") if form == "percent-encoded" else SPECIAL_PASSWORD
    raw = (f"mysql://{mariadb_user.username}:{password}@{mariadb_user.host}:{mariadb_user.port}/"
           f"{mariadb_user.database}?charset=utf8mb4")
    monkeypatch.setenv("DATABASE_URL", raw)
    code = run_task(commands.migrate)
    output = capfd.readouterr()
    assert code == 0, output.err[-2000:]
    assert versions(mariadb_user) == [HEAD]
    assert SPECIAL_PASSWORD not in output.err + output.out and password not in output.err + output.out


def test_postgres_password_with_special_characters_reaches_libpq(postgres_url: URL) -> None:
    """libpq receives the password exactly (this server trusts 127.0.0.1, so the driver's view is the proof)."""
    url = normalize_database_url(f"postgres://postgres:{SPECIAL_PASSWORD}@127.0.0.1:5432/{postgres_url.database}")

    async def password_seen_by_driver() -> str | None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                raw = await connection.get_raw_connection()
                return raw.driver_connection.info.password  # type: ignore[union-attr]
        finally:
            await engine.dispose()

    assert asyncio.run(password_seen_by_driver()) == SPECIAL_PASSWORD


@pytest.mark.parametrize(("query", "code", "says"), [
    ("?sslmode=disable", 0, None),
    ("?sslmode=prefer&connect_timeout=5&application_name=bot", 0, None),
    ("?sslmode=require", 3, "server does not support SSL"),
    ("?ssl=true", 3, "server does not support SSL"),
    ("?sslmode=no-verify", 3, "server does not support SSL"),
    ("?pgbouncer=true", 2, "transaction-mode pooler"),
    ("?no_such_option=1", 3, "invalid connection option"),
])
def test_postgres_query_options_go_to_libpq(query: str, code: int, says: str | None, postgres_url: URL,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """libpq options work as given; a TLS demand the server cannot meet fails at once (exit 3), never waits."""
    monkeypatch.setenv("DATABASE_URL", plain(postgres_url) + query)
    monkeypatch.setenv("DB_WAIT_TIMEOUT", "30")
    assert run_task(commands.migrate) == code
    err = capfd.readouterr().err
    if says is None:
        assert versions(postgres_url) == [HEAD]
    else:
        assert says in err and '"waiting for database"' not in err
        assert versions(postgres_url) == []


@pytest.mark.parametrize(("query", "code", "says"), [
    ("?charset=utf8mb4", 0, None),
    ("?ssl-mode=DISABLED&charset=utf8mb4", 0, None),
    ("?sslmode=disable", 0, None),
    ("?ssl-mode=PREFERRED", 0, None),
    ("?ssl-mode=REQUIRED", 3, "did not encrypt the connection"),
    ("?sslaccept=strict", 3, "did not encrypt the connection"),
    ("?ssl-mode=SOMETIMES", 2, "unknown ssl mode"),
    ("?useSSL=false", 2, "query options the MySQL driver does not know: useSSL"),
])
def test_mariadb_query_options_work_or_fail_clearly(query: str, code: int, says: str | None, mariadb_url: URL,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """charset and ssl-mode work with aiomysql; TLS demanded of a server without TLS is refused, not skipped."""
    monkeypatch.setenv("DATABASE_URL", plain(mariadb_url) + query)
    assert run_task(commands.migrate) == code
    err = capfd.readouterr().err
    if says is None:
        assert versions(mariadb_url) == [HEAD]
    else:
        assert says in err and '"waiting for database"' not in err
        assert versions(mariadb_url) == []


def test_mariadb_charset_utf8mb4_round_trips_four_byte_text(mariadb_url: URL) -> None:
    """With ?charset=utf8mb4 the bot's engine stores and reads back emoji in a user's name."""
    url = normalize_database_url(plain(mariadb_url) + "?charset=utf8mb4")

    async def round_trip() -> tuple[str, str]:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE names (name VARCHAR(32)) CHARACTER SET utf8mb4"))
                await connection.execute(text("INSERT INTO names VALUES (:name)"), {"name": "Zoë 🚀"})
                charset = (await connection.execute(text("SELECT @@character_set_client"))).scalar_one()
                name = (await connection.execute(text("SELECT name FROM names"))).scalar_one()
            return charset, name
        finally:
            await engine.dispose()

    assert asyncio.run(round_trip()) == ("utf8mb4", "Zoë 🚀")
