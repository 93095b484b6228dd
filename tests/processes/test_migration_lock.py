"""The migration lock as other processes see it: timeouts, the holder's name, SIGTERM, kill -9."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import URL

from bot.data.lock import lock_name, mysql_name, pg_key
from tests.support.commands import EventStream, run_invoke, spawn
from tests.support.database import query, schema, versions
from tests.support.environment import MARIADB_ADMIN, PG_ADMIN, TOKEN, clean_env, plain
from tests.support.logs import events_named, json_lines
from tests.support.revisions import HEAD, NEXT, SHIPPED, add_slow_revision, later

HOLDER_NAME = "lock-holder-test"


@contextmanager
def hold_lock(url: URL) -> Iterator[str]:
    """Hold the migration lock from outside the toolkit, the way another replica would; yield how it shows."""
    backend = url.get_backend_name()
    name = lock_name("migration", url)
    if backend == "postgresql":
        with psycopg.connect(**{**PG_ADMIN, "dbname": url.database}, autocommit=True,
                             application_name=HOLDER_NAME) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (pg_key(name),))
            yield HOLDER_NAME
    elif backend in ("mysql", "mariadb"):
        connection = pymysql.connect(**MARIADB_ADMIN, database=url.database, autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()", (mysql_name(name),))
                acquired, connection_id = cursor.fetchone()
            assert acquired == 1
            yield f"connection {connection_id} "
        finally:
            connection.close()
    else:
        path = Path(f"{url.database}-migration.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            handle.write(f"pid={os.getpid()} host=test")
            handle.flush()
            yield f"pid={os.getpid()}"


def lock_is_free(url: URL) -> bool:
    """Whether another session could take the migration lock right now (then gives it back)."""
    name = lock_name("migration", url)
    if url.get_backend_name() == "postgresql":
        rows = query(url, "SELECT pg_try_advisory_lock(:key), pg_advisory_unlock_all()", key=pg_key(name))
    else:
        rows = query(url, "SELECT GET_LOCK(:name, 0), RELEASE_ALL_LOCKS()", name=mysql_name(name))
    return bool(rows[0][0])


def seconds_between(first: dict[str, object], last: dict[str, object]) -> float:
    """Wall time between two log events, from their own timestamps."""
    def moment(event: dict[str, object]) -> datetime:
        return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))

    return (moment(last) - moment(first)).total_seconds()


@pytest.mark.slow
def test_lock_timeout_exits_5_after_the_timeout_and_leaves_the_schema_untouched(any_url: URL, project: Path) -> None:
    """While another process holds the lock, migrate with a 2 s timeout logs the holder, exits 5, changes nothing."""
    env = clean_env(DATABASE_URL=plain(any_url), MIGRATION_LOCK_TIMEOUT="2")
    with hold_lock(any_url) as holder:
        result = run_invoke(project, "migrate", env=env, timeout=60)
    assert result.returncode == 5, result.stderr[-2000:]
    waiting = events_named(result.stderr, "waiting for migration lock")
    assert waiting and holder in str(waiting[0]["holder"]), waiting
    final = json_lines(result.stderr)[-1]
    assert final["event"] == "command failed" and final["exit_code"] == 5
    assert "MIGRATION_LOCK_TIMEOUT" in str(final["error"]) and holder in str(final["error"])
    assert 1.8 <= seconds_between(waiting[0], final) <= 4.0
    assert not events_named(result.stderr, "migrations starting")
    assert versions(any_url) == [] and "users" not in schema(any_url)


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "task", "exit_code", "event"), [
    ("postgres_url", "migrate", 8, "stopped"),
    ("mariadb_url", "migrate", 8, "stopped"),
    ("postgres_url", "start", 0, "stopped before polling"),
], ids=["postgresql-migrate", "mariadb-migrate", "postgresql-start"])
def test_sigterm_while_waiting_for_the_lock_exits_promptly(backend: str, task: str, exit_code: int, event: str,
                                                           project: Path, request: pytest.FixtureRequest) -> None:
    """SIGTERM to a migrate (or production start) queued on the lock ends it at once, holding nothing."""
    url: URL = request.getfixturevalue(backend)
    env = clean_env(DATABASE_URL=plain(url), MIGRATION_LOCK_TIMEOUT="60", ENV="production", BOT_TOKEN=TOKEN)
    with hold_lock(url):
        process = spawn(project, task, env=env)
        stream = EventStream(process)
        try:
            stream.wait_for("waiting for migration lock")
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == exit_code
            assert time.monotonic() - signalled < 3  # vs. a 60 s wait
        finally:
            if process.poll() is None:
                process.kill()
    stopped = events_named(stream.stderr(), event)
    assert stopped and "SIGTERM" in str(stopped[0]["reason"])
    assert not events_named(stream.stderr(), "polling started")
    assert lock_is_free(url), "the stopped waiter left the lock taken"
    assert versions(url) == []


@pytest.mark.slow
def test_sigterm_during_a_step_finishes_the_step_then_releases_the_lock(postgres_url: URL, project: Path) -> None:
    """SIGTERM in the middle of a revision lets it commit, stops before the next one (exit 8), frees the lock."""
    add_slow_revision(project, 1.5)
    add_slow_revision(project, 1.5, revision=later(2), down_revision=NEXT, column="nickname2")
    process = spawn(project, "migrate", env=clean_env(DATABASE_URL=plain(postgres_url)))
    stream = EventStream(process)
    try:
        deadline = time.monotonic() + 30
        while not query(postgres_url, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                                      "AND datname = current_database()"):
            assert time.monotonic() < deadline and process.poll() is None, stream.stderr()[-2000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 8
    finally:
        if process.poll() is None:
            process.kill()
    stderr = stream.stderr()
    assert [event["revision"] for event in events_named(stderr, "migration applied")] == [*SHIPPED, NEXT]
    assert versions(postgres_url) == [NEXT] and "nickname" in schema(postgres_url)["users"]
    assert "nickname2" not in schema(postgres_url)["users"]
    assert lock_is_free(postgres_url)


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_revision_leaves_a_consistent_schema(postgres_url: URL, project: Path) -> None:
    """A migrator killed -9 inside an added revision frees the lock at once; the next migrate applies it once."""
    add_slow_revision(project, 0)
    url = plain(postgres_url)
    victim = spawn(project, "migrate", env=clean_env(DATABASE_URL=url, SLOW_REVISION_SECONDS="60"))
    stream = EventStream(victim)
    try:
        deadline = time.monotonic() + 30
        while not query(postgres_url, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%%' "
                                      "AND datname = current_database()"):
            assert time.monotonic() < deadline and victim.poll() is None, stream.stderr()[-2000:]
            time.sleep(0.05)
        victim.kill()
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert [event["revision"] for event in events_named(stream.stderr(), "migration applied")] == list(SHIPPED)
    deadline = time.monotonic() + 3
    while not lock_is_free(postgres_url):  # the lock's session was idle: the server ends it on the client's EOF
        assert time.monotonic() < deadline, "kill -9 left the migration lock taken"
        time.sleep(0.1)
    assert versions(postgres_url) == [HEAD], "the killed revision must not count as applied"

    started = time.monotonic()
    result = run_invoke(project, "migrate", env=clean_env(DATABASE_URL=url, SLOW_REVISION_SECONDS="0"), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    # The killed statement ends at the server's next client check (client_connection_check_interval), not in 60 s.
    assert time.monotonic() - started < 15
    assert [event["revision"] for event in events_named(result.stderr, "migration applied")] == [NEXT]
    assert versions(postgres_url) == [NEXT]
    assert schema(postgres_url)["users"].count("nickname") == 1


@pytest.mark.slow
def test_lock_outlives_idle_session_timeout_during_a_long_revision(postgres_url: URL, project: Path) -> None:
    """With idle_session_timeout=1s on the database, the idle lock session still holds the lock through a 3 s step."""
    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{postgres_url.database}" SET idle_session_timeout = \'1s\'')
    add_slow_revision(project, 3)
    process = spawn(project, "migrate", env=clean_env(DATABASE_URL=plain(postgres_url)))
    stream = EventStream(process)
    try:
        stream.wait_for("migrations starting")
        time.sleep(2)  # the lock's session has now been idle for longer than idle_session_timeout
        assert not lock_is_free(postgres_url), "the migration lock was lost while the revision still ran"
        assert process.wait(timeout=30) == 0, stream.stderr()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert not events_named(stream.stderr(), "lock release failed")
    assert versions(postgres_url) == [NEXT]
