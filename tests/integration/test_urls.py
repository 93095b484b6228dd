"""DATABASE_URL as platforms hand it out: schemes, drivers, special-character passwords, query options."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.data.engine import create_engine
from bot.data.urls import normalize_database_url
from bot.errors import ConfigError
from tests.support.commands import run_task
from tests.support.database import schema, versions
from tests.support.environment import MARIADB_ADMIN, ROOT, plain
from tests.support.revisions import HEAD

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
    assert run_task(cli.status) == 2
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
    code = run_task(cli.migrate)
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
    code = run_task(cli.migrate)
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


POSTGRES_OPTIONS = [
    ("?sslmode=disable", 0, None),
    ("?sslmode=allow", 0, None),
    ("?sslmode=prefer&connect_timeout=5&application_name=bot", 0, None),
    ("?sslrootcert={pem}&sslcert={pem}&sslkey={key}", 0, None),
    ("?target_session_attrs=read-write&options=-c%20statement_timeout%3D60000", 0, None),
    ("?sslmode=require", 3, "server does not support SSL"),
    ("?sslmode=verify-ca&sslrootcert={pem}", 3, "server does not support SSL"),
    ("?sslmode=verify-full", 3, "server does not support SSL"),
    ("?ssl=true", 3, "server does not support SSL"),
    ("?sslmode=no-verify", 3, "server does not support SSL"),
    ("?pgbouncer=true", 2, "transaction-mode pooler"),
    ("?no_such_option=1", 3, "invalid connection option"),
]
MARIADB_OPTIONS = [
    ("?charset=utf8mb4", 0, None),
    ("?connect_timeout=5&program_name=bot&local_infile=false", 0, None),
    ("?init_command=SET%20SESSION%20sql_select_limit%3D100000&sql_mode=STRICT_ALL_TABLES", 0, None),
    ("?ssl-mode=DISABLED&charset=utf8mb4", 0, None),
    ("?ssl_mode=DISABLED", 0, None),
    ("?sslmode=disable", 0, None),
    ("?ssl=false", 0, None),
    ("?ssl-mode=PREFERRED", 0, None),
    ("?ssl-mode=REQUIRED", 3, "did not encrypt the connection"),
    ("?ssl=true", 3, "did not encrypt the connection"),
    ("?sslaccept=accept_invalid_certs", 3, "did not encrypt the connection"),
    ("?ssl-mode=VERIFY_CA", 3, "did not encrypt the connection"),
    ("?ssl_ca={pem}", 3, "did not encrypt the connection"),
    ("?ssl_capath={folder}&ssl-mode=VERIFY_CA", 3, "did not encrypt the connection"),
    ("?ssl-mode=VERIFY_IDENTITY&ssl_ca={pem}&ssl_cert={pem}&ssl_key={key}", 3, "did not encrypt the connection"),
    ("?sslaccept=strict", 3, "did not encrypt the connection"),
    ("?ssl-mode=VERIFY_FULL&ssl_check_hostname=true", 3, "did not encrypt the connection"),
    ("?ssl_ca=/nonexistent/ca.pem", 2, "TLS files cannot be used"),
    ("?read_timeout=30", 2, "has no read timeout"),
    ("?write_timeout=30", 2, "has no write timeout"),
    ("?binary_prefix=true", 2, "does not know it"),
    ("?autocommit=false", 2, "runs its own transactions"),
    ("?connect_timeout=1.5", 2, "a whole number of seconds"),
    ("?local_infile=maybe", 2, "true or false"),
    ("?ssl-mode=SOMETIMES", 2, "unknown ssl mode"),
    ("?useSSL=false", 2, "query options the MySQL driver does not know: useSSL"),
]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate and its key, for the options that name TLS files."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=db",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return {"pem": str(folder / "cert.pem"), "key": str(folder / "key.pem"), "folder": str(folder)}


def documented_options(backend: str) -> set[str]:
    """The query options docs/DATABASES.md lists for a backend (its PostgreSQL paragraph, its MySQL table)."""
    text = (ROOT / "docs" / "DATABASES.md").read_text(encoding="utf-8").partition("### Query options")[2]
    postgres, _, mysql = text.partition("**MySQL / MariaDB.**")
    if backend == "postgresql":
        return set(re.findall(r"`([a-z_]+)=", postgres))
    table = mysql.partition("\n|")[2].partition("\n\n")[0]  # the first table after the heading
    cells = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {token.split("=")[0] for cell in cells for token in re.findall(r"`([a-z][^`]*)`", cell)}


def tried_options(cases: list[tuple[str, int, str | None]]) -> set[str]:
    """Every option name the cases put in a URL."""
    return {pair.split("=")[0] for query, _, _ in cases for pair in query.lstrip("?").split("&")}


def test_every_documented_url_option_is_tried() -> None:
    """Each option docs/DATABASES.md lists for PostgreSQL and MySQL/MariaDB has a case below, on a real server."""
    assert {"sslmode", "sslrootcert", "options"} <= documented_options("postgresql") <= tried_options(
        POSTGRES_OPTIONS)
    assert {"charset", "read_timeout", "write_timeout", "ssl_ca"} <= documented_options("mysql") <= tried_options(
        MARIADB_OPTIONS)


def check_options(url: URL, query: str, code: int, says: str | None, tls_files: dict[str, str],
                  monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """migrate (async driver), then status and a no-op migrate (the sync fast path) all work, or migrate fails
    at once with the expected code and line, no traceback and nothing migrated."""
    monkeypatch.setenv("DATABASE_URL", plain(url) + query.format(**tls_files))
    monkeypatch.setenv("DB_WAIT_TIMEOUT", "30")
    codes = [run_task(cli.migrate)]
    if codes[0] == 0:
        codes += [run_task(lambda: cli.status(check=True)), run_task(cli.migrate)]
    err = capfd.readouterr().err
    if says is None:
        assert codes == [0, 0, 0], err
        assert versions(url) == [HEAD]
    else:
        assert codes == [code] and says in err and '"waiting for database"' not in err, err
        assert '"unexpected error"' not in err and "Traceback" not in err
        assert versions(url) == []


@pytest.mark.slow
@pytest.mark.parametrize(("query", "code", "says"), POSTGRES_OPTIONS)
def test_postgres_query_options_go_to_libpq(query: str, code: int, says: str | None, postgres_url: URL,
                                            tls_files: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """libpq options work as given; a TLS demand the server cannot meet fails at once (exit 3), never waits."""
    check_options(postgres_url, query, code, says, tls_files, monkeypatch, capfd)


@pytest.mark.slow
@pytest.mark.parametrize(("query", "code", "says"), MARIADB_OPTIONS)
def test_mariadb_query_options_work_or_fail_clearly(query: str, code: int, says: str | None, mariadb_url: URL,
                                                    tls_files: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """Each documented option works on aiomysql and PyMySQL alike, or is refused with exit 2 (or 3 for TLS)."""
    check_options(mariadb_url, query, code, says, tls_files, monkeypatch, capfd)


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
