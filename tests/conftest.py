"""Fixtures and hooks only: a fresh database per test on each real server, a project copy, a fake Bot API.

Helpers live in tests/support/. The first lines send bytecode and Hypothesis's files outside the checkout,
before anything of the project is imported.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# The suite never writes into the checkout: bytecode (and the fast path's revision manifest, kept beside it) and
# Hypothesis's files go to a folder outside it, set here before anything of the project is imported.
_CHECKOUT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.gettempdir()) / f"bot-toolkit-tests-{hashlib.sha256(str(_CHECKOUT).encode()).hexdigest()[:12]}"
sys.pycache_prefix = str(SCRATCH / "pycache")

import pytest  # noqa: E402 - after the bytecode prefix above
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402

from tests.support.environment import (  # noqa: E402
    MARIADB_ADMIN,
    PG_ADMIN,
    ROOT,
    TOOLKIT_VARIABLES,
    server_unavailable,
)
from tests.support.fake_telegram import FakeTelegram  # noqa: E402

set_hypothesis_home_dir(SCRATCH / "hypothesis")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> URL:
    """A SQLite file of this test's own."""
    return URL.create("sqlite+aiosqlite", database=str(tmp_path / "db" / "bot.db"))


@pytest.fixture
def postgres_url() -> Iterator[URL]:
    """A PostgreSQL database created for this test and dropped after it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(**PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        server_unavailable("PostgreSQL", error)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield URL.create("postgresql+psycopg", username=PG_ADMIN["user"], host="127.0.0.1", port=5432, database=name)
    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_url() -> Iterator[URL]:
    """A MariaDB database created for this test and dropped after it."""
    import pymysql

    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(**MARIADB_ADMIN, connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as error:
        server_unavailable("MariaDB", error)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    yield URL.create("mariadb+aiomysql", username="root", host="127.0.0.1", port=3306, database=name)
    admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_url(request: pytest.FixtureRequest) -> URL:
    """The same test on each backend."""
    return request.getfixturevalue(f"{request.param}_url" if request.param != "postgresql" else "postgres_url")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project to run real commands in, so a test may edit revisions or .env freely."""
    target = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # bot/ and alembic/ hold no data, .env or backups
    for name in ("bot", "alembic"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("alembic.ini", "tasks.py"):
        shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """A fake Bot API server on 127.0.0.1 for this test."""
    with FakeTelegram() as server:
        yield server


@pytest.fixture(autouse=True, scope="session")
def _logging_to_stderr() -> None:
    """In-process tests log the way the toolkit does (JSON on stderr), never on stdout."""
    from bot.logs import configure_logging

    configure_logging("INFO", "json")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests never see the developer's own toolkit variables."""
    for name in TOOLKIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """What a command run in-process froze (bot.collector) goes back to the collector, which is left on."""
    yield
    gc.unfreeze()
    gc.enable()


def checkout_files() -> set[str] | None:
    """Every untracked or ignored file in the checkout, as `git status --porcelain --ignored` lists them."""
    try:
        listed = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an unpacked archive): nothing to compare
    return {line[3:] for line in listed.splitlines() if line[:2] in ("??", "!!")}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Take stock of the checkout before any test runs."""
    session.config.stash[CHECKOUT_BEFORE] = checkout_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when it left anything new in the checkout (data/, backups/, caches, bytecode...)."""
    before = session.config.stash.get(CHECKOUT_BEFORE, None)
    after = checkout_files()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "the test run wrote into the checkout:\n  " + "\n  ".join(new[:50])
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            print(message, file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


CHECKOUT_BEFORE = pytest.StashKey[set[str] | None]()
