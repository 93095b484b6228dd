"""Waiting for the database: retry what time heals, fail at once on what it cannot, stop on SIGTERM."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.data.waiting import is_transient
from tests.support.commands import EventStream, run_invoke, run_task, spawn
from tests.support.database import versions
from tests.support.environment import TOKEN, clean_env, free_port, plain
from tests.support.logs import events_named, json_lines
from tests.support.proxies import DelayedProxy
from tests.support.revisions import HEAD

PASSWORD = "Sup3r-s3cret-pw"


@contextmanager
def task_environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Iterator[None]:
    """Set the toolkit's variables for an in-process task run."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.mark.slow
def test_closed_port_waits_then_exits_3_naming_host_and_database(project: Path) -> None:
    """Nothing listens: migrate retries with backoff for DB_WAIT_TIMEOUT, then exits 3 without the password."""
    port = free_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/appdb"
    result = run_invoke(project, "migrate", env=clean_env(DATABASE_URL=url, DB_WAIT_TIMEOUT="2"), timeout=60)
    assert result.returncode == 3, result.stderr[-2000:]
    waits = events_named(result.stderr, "waiting for database")
    assert len(waits) >= 3 and [event["attempt"] for event in waits] == list(range(1, len(waits) + 1))
    assert all(event["target"] == f"127.0.0.1:{port}/appdb" and "refused" in str(event["reason"]) for event in waits)
    final = json_lines(result.stderr)[-1]
    assert final["exit_code"] == 3 and f"127.0.0.1:{port}/appdb" in str(final["error"])
    assert "after 2s" in str(final["error"]) and "DB_WAIT_TIMEOUT" in str(final["error"])
    assert PASSWORD not in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_database_that_comes_up_during_the_wait_is_used(backend: str, request: pytest.FixtureRequest,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """A server that starts listening 1.5 s into the wait is connected to, and migrate completes."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    with DelayedProxy(url.port or 0, delay=1.5) as proxy:
        started = time.monotonic()
        with task_environment(monkeypatch, DATABASE_URL=plain(url.set(port=proxy.port)), DB_WAIT_TIMEOUT="20"):
            code = run_task(cli.migrate)
        assert proxy.listening_at is not None and proxy.listening_at - started >= 1.4
    stderr = capfd.readouterr().err
    assert code == 0, stderr[-2000:]
    waits = events_named(stderr, "waiting for database")
    assert waits and events_named(stderr, "migrations complete")
    assert versions(url) == [HEAD]


@pytest.mark.parametrize(("backend", "break_url", "why"), [
    ("postgresql", lambda url: url.set(database="no_such_database"), "does not exist"),
    ("postgresql", lambda url: url.set(username="no_such_role"), "does not exist"),
    ("mariadb", lambda url: url.set(password="wrong-password"), "Access denied"),
    ("mariadb", lambda url: url.set(database="no_such_database"), "Unknown database"),
], ids=["pg-unknown-database", "pg-unknown-role", "mariadb-wrong-password", "mariadb-unknown-database"])
def test_wrong_credentials_or_database_fail_at_once_with_exit_3(
        backend: str, break_url: Callable[[URL], URL], why: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """Errors that waiting cannot heal exit 3 immediately with the driver's reason, despite a long DB_WAIT_TIMEOUT."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    broken = break_url(url)
    started = time.monotonic()
    with task_environment(monkeypatch, DATABASE_URL=plain(broken), DB_WAIT_TIMEOUT="30"):
        code = run_task(cli.migrate)
    elapsed = time.monotonic() - started
    stderr = capfd.readouterr().err
    assert code == 3, stderr[-2000:]
    assert elapsed < 3
    assert not events_named(stderr, "waiting for database")
    final = json_lines(stderr)[-1]
    assert why in str(final["error"]) and str(broken.database) in str(final["error"])
    assert "wrong-password" not in stderr


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_host_name_that_does_not_resolve_exits_3_at_once(scheme: str, monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    """A mistyped host (no such DNS name) exits 3 at once naming the host, instead of waiting out DB_WAIT_TIMEOUT."""
    started = time.monotonic()
    with task_environment(monkeypatch, DATABASE_URL=f"{scheme}://root@locahost.invalid/appdb", DB_WAIT_TIMEOUT="60"):
        code = run_task(cli.status)
    elapsed = time.monotonic() - started
    stderr = capfd.readouterr().err
    assert code == 3, stderr[-2000:]
    assert elapsed < 15  # vs. the 60 s wait
    assert not events_named(stderr, "waiting for database")
    assert "host 'locahost.invalid' does not resolve" in str(json_lines(stderr)[-1]["error"])


def test_start_waits_for_the_database_too(monkeypatch: pytest.MonkeyPatch,
                                          capfd: pytest.CaptureFixture[str]) -> None:
    """`start` goes through the same wait: a closed port ends it with exit 3 before any bot code runs."""
    port = free_port()
    with task_environment(monkeypatch, ENV="production", BOT_TOKEN=TOKEN, DB_WAIT_TIMEOUT="1",
                          DATABASE_URL=f"mariadb://root@127.0.0.1:{port}/appdb"):
        code = run_task(cli.start)
    stderr = capfd.readouterr().err
    assert code == 3, stderr[-2000:]
    assert events_named(stderr, "waiting for database")
    assert not events_named(stderr, "polling started")


@pytest.mark.slow
def test_sigterm_while_waiting_for_the_database_exits_promptly(project: Path) -> None:
    """SIGTERM during the wait ends migrate at once with exit 8 instead of waiting out DB_WAIT_TIMEOUT."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/appdb"
    process = spawn(project, "migrate", env=clean_env(DATABASE_URL=url, DB_WAIT_TIMEOUT="60"))
    stream = EventStream(process)
    try:
        stream.wait_for("waiting for database")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 8
        assert time.monotonic() - signalled < 3  # vs. a 60 s wait
    finally:
        if process.poll() is None:
            process.kill()
    assert events_named(stream.stderr(), "stopped")


def caused_by(error: Exception, cause: BaseException) -> Exception:
    """A driver error raised from a lower-level one, as aiomysql raises its 2003 from the resolver's gaierror."""
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(("error", "transient"), [
    (psycopg.OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  the database '
                              "system is starting up"), True),
    (psycopg.OperationalError("FATAL:  the database system is not yet accepting connections"), True),
    (psycopg.OperationalError("FATAL:  sorry, too many clients already"), True),
    (psycopg.OperationalError("failed to resolve host 'db': [Errno -3] Temporary failure in name resolution"), True),
    (psycopg.OperationalError("connection timeout expired"), True),
    (psycopg.OperationalError('FATAL:  password authentication failed for user "bot"'), False),
    (psycopg.OperationalError('FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "bot", database "app"'), False),
    (pymysql.err.OperationalError(1040, "Too many connections"), True),
    (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), True),
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db' ([SSL] certificate verify failed)"),
     False),
    (pymysql.err.OperationalError(1044, "Access denied for user 'bot'@'%' to database 'app'"), False),
    (TimeoutError(), True),
    (psycopg.OperationalError('could not translate host name "db" to address: Temporary failure in name resolution'),
     True),
    (psycopg.OperationalError('could not translate host name "locahost" to address: Name or service not known'),
     False),
    (psycopg.OperationalError("failed to resolve host 'locahost': [Errno -2] Name or service not known"), False),
    (caused_by(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'db'"),
               socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")), True),
    (caused_by(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'locahost'"),
               socket.gaierror(socket.EAI_NONAME, "Name or service not known")), False),
], ids=lambda value: str(value)[:40] if not isinstance(value, bool) else str(value))
def test_error_classification_for_states_this_machine_cannot_produce(error: Exception, transient: bool) -> None:
    """Starting-up, overloaded and DNS-not-yet states are retried; credentials, pg_hba and TLS failures are not."""
    assert is_transient(error) is transient
