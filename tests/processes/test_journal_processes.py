"""The journal across real `invoke` processes: failing revisions, kill -9 mid-revision, stamp, several heads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.urls import sync_url
from bot.migrate import journal
from tests.support.commands import run_invoke
from tests.support.environment import TOKEN, clean_env, plain
from tests.support.logs import events_named
from tests.support.revisions import HEAD, NEXT, add_revision, revision_source

pytestmark = pytest.mark.slow

# A third revision: creates `notes`, then (when the SLOW flag file exists) signals and sleeps, then creates `tags`.
# Both extra revisions act only online: the production review renders revisions offline first.
SLOW_REVISION_HEADER = """
import pathlib
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
"""
SLOW_UPGRADE = """
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    if (ROOT / "SLOW").exists() and not op.get_context().as_sql:
        (ROOT / "SLEEPING").write_text("yes")
        time.sleep(60)
    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True))
"""
DROP_BOTH = 'op.drop_table("tags")\nop.drop_table("notes")'
SLOW_REVISION = revision_source(SLOW_UPGRADE, DROP_BOTH, message="slow change", header=SLOW_REVISION_HEADER)


def failing_revision(autocommit: bool) -> str:
    """Creates a table, optionally runs an autocommit block, then fails with secrets in the message."""
    return revision_source(f"""
        op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
        if op.get_context().as_sql:
            return
        if op.get_bind().dialect.name == "postgresql" and {autocommit}:
            with op.get_context().autocommit_block():
                op.execute("CREATE INDEX CONCURRENTLY ix_users_username ON users (username)")
        raise RuntimeError("boom: password=hunter2 at postgresql://bot:s3cr3tpw@db/x")
    """, 'op.drop_table("notes")', message="failing change")


def environment(url: URL, **extra: str) -> dict[str, str]:
    """Production settings for subprocess runs on this database."""
    return clean_env(DATABASE_URL=plain(url), ENV="production", LOG_FORMAT="json", BOT_TOKEN=TOKEN,
                     MIGRATION_LOCK_TIMEOUT="20", **extra)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A sync engine on whichever database fixture the test uses."""
    names = ("url_fixture", "sqlite_url", "postgres_url", "mariadb_url")
    name = next(n for n in names if n in request.fixturenames)
    if name == "url_fixture":
        name = request.getfixturevalue("url_fixture")
    created = sa.create_engine(sync_url(request.getfixturevalue(name)))
    yield created
    created.dispose()


def steps(engine: sa.Engine) -> list[journal.Entry]:
    """Step and stamp rows, oldest first."""
    with engine.connect() as connection:
        return list(reversed(journal.entries(connection, kinds=("step", "stamp"))))


def tables(engine: sa.Engine) -> set[str]:
    """The tables that exist now."""
    return set(sa.inspect(engine).get_table_names())


def start_killed_midway(project: Path, env: dict[str, str], while_paused: Callable[[], None] = lambda: None) -> None:
    """Run `invoke migrate`, wait until the added revision pauses, call `while_paused`, then kill -9 the process."""
    (project / "SLOW").write_text("yes")
    process = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(project), "migrate"],
                               cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (project / "SLEEPING").exists():
            assert process.poll() is None, "migrate ended before the pause"
            assert time.monotonic() < deadline, "the revision never reached its pause"
            time.sleep(0.05)
        while_paused()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    (project / "SLOW").unlink()


@pytest.mark.slow
def test_kill_mid_revision_on_mariadb_is_half_applied_and_stamp_is_the_way_out(
        project: Path, mariadb_url: URL, engine: sa.Engine) -> None:
    """kill -9 inside a MariaDB revision: while alive it is in progress; once dead start, migrate and rollback refuse
    (6) until a stamp after a manual fix."""
    add_revision(project, SLOW_REVISION)
    env = environment(mariadb_url)

    def holder_is_alive() -> None:
        status = json.loads(run_invoke(project, "status", "--json", env=env).stdout)
        assert status["half_applied"] is False and status["in_progress"][0]["revision"] == NEXT
        waiting = run_invoke(project, "migrate", env={**env, "MIGRATION_LOCK_TIMEOUT": "0.5"})
        assert waiting.returncode == 5, waiting.stderr

    start_killed_midway(project, env, holder_is_alive)
    assert "notes" in tables(engine) and "tags" not in tables(engine)

    for args in (("start",), ("migrate",), ("rollback", "--yes")):
        refused = run_invoke(project, *args, env=env)
        assert refused.returncode == 6, (args, refused.stderr)
        assert f"revision {NEXT} (slow change) is half-applied" in refused.stderr
        assert f"invoke stamp --to {NEXT}" in refused.stderr and f"invoke stamp --to {HEAD}" in refused.stderr
    development = run_invoke(project, "start", env={**env, "ENV": "development"})
    assert development.returncode == 6 and f"{NEXT} (slow change) is half-applied" in development.stderr
    status = run_invoke(project, "status", "--json", "--check", env=env)
    assert status.returncode == 7
    document = json.loads(status.stdout)
    assert document["half_applied"] is True and document["half_applied_entries"][0]["revision"] == NEXT
    history = json.loads(run_invoke(project, "history", "--json", env=env).stdout)
    assert history["revisions"][0]["status"] == "half-applied"

    with engine.begin() as connection:  # the manual repair: undo what the added revision did
        connection.exec_driver_sql("DROP TABLE notes")
    unconfirmed = run_invoke(project, "stamp", "--to", HEAD, env=env)
    assert unconfirmed.returncode == 6 and "needs confirmation" in unconfirmed.stderr
    stamped = run_invoke(project, "stamp", "--to", HEAD, "--yes", env=env)
    assert stamped.returncode == 0, stamped.stderr
    migrated = run_invoke(project, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert {"notes", "tags"} <= tables(engine)

    found = steps(engine)
    half = next(entry for entry in found if entry.status == "half-applied")
    stamp = next(entry for entry in found if entry.kind == "stamp")
    assert (half.revision, half.transactional, half.resolved_by) == (NEXT, False, stamp.id)
    assert (stamp.from_revision, stamp.to_revision) == (HEAD, HEAD)
    assert (found[-1].revision, found[-1].status) == (NEXT, "applied")


@pytest.mark.slow
@pytest.mark.parametrize("url_fixture", ["postgres_url", "sqlite_url"])
def test_kill_mid_revision_in_a_transaction_is_aborted_and_next_start_completes(
        project: Path, url_fixture: str, request: pytest.FixtureRequest, telegram: object) -> None:
    """kill -9 inside a transactional revision: nothing half-applied, an aborted entry, and start recovers alone."""
    url: URL = request.getfixturevalue(url_fixture)
    add_revision(project, SLOW_REVISION)
    env = environment(url, TELEGRAM_API_URL=telegram.url)  # type: ignore[attr-defined]

    def readable_while_running() -> None:  # SQLite: a reader beside the step, never "database is locked"
        status = run_invoke(project, "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["in_progress"][0]["revision"] == NEXT

    start_killed_midway(project, env, readable_while_running)
    history = json.loads(run_invoke(project, "history", "--json", env=env).stdout)
    assert (history["half_applied"], history["revisions"][0]["status"]) == (False, "aborted")
    engine = sa.create_engine(sync_url(url))
    try:
        assert "notes" not in tables(engine)
        log = project / "start.log"
        with log.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(project), "start"],
                                       cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                deadline = time.monotonic() + 60
                while not events_named(log.read_text(), "schema ready"):
                    assert process.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
        assert {"notes", "tags"} <= tables(engine)
        found = [(entry.revision, entry.status) for entry in steps(engine) if entry.revision == NEXT]
        assert found == [(NEXT, "aborted"), (NEXT, "applied")]
        aborted = next(entry for entry in steps(engine) if entry.status == "aborted")
        assert aborted.transactional is True and "rolled it back" in (aborted.error or "")
        with engine.connect() as connection:
            runs = list(reversed(journal.entries(connection, kinds=("run",))))
        assert [(run.status, run.to_revision) for run in runs] == [("aborted", NEXT), ("ok", NEXT)]
        assert runs[0].pid == aborted.pid != runs[1].pid
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(("url_fixture", "autocommit"), [
    ("sqlite_url", False), ("postgres_url", False), ("postgres_url", True), ("mariadb_url", False)],
    ids=["sqlite", "postgresql", "postgresql-autocommit_block", "mariadb"])
def test_failing_revision_is_journaled(project: Path, url_fixture: str, autocommit: bool, engine: sa.Engine,
                                      request: pytest.FixtureRequest) -> None:
    """A revision that raises: failed and rolled back where DDL is transactional, half-applied where it is not."""
    url: URL = request.getfixturevalue(url_fixture)
    backend = url.get_backend_name()
    add_revision(project, failing_revision(autocommit))
    env = environment(url)
    failed = run_invoke(project, "migrate", env=env)
    assert failed.returncode == 4, failed.stderr
    entry = steps(engine)[-1]
    assert (entry.revision, entry.direction, entry.success) == (NEXT, "upgrade", False)
    assert entry.error and "boom" in entry.error and "hunter2" not in entry.error and "s3cr3tpw" not in entry.error
    assert entry.finished_at is not None and entry.duration_ms is not None
    half = backend == "mariadb" or autocommit
    assert entry.status == ("half-applied" if half else "failed")
    assert entry.transactional is (not half)
    assert ("notes" in tables(engine)) is half

    again = run_invoke(project, "migrate", env=env)
    assert again.returncode == (6 if half else 4), again.stderr
    if half:
        assert f"{NEXT} (failing change) is half-applied" in again.stderr
        assert "failed (RuntimeError: boom" in again.stderr
    status = json.loads(run_invoke(project, "status", "--json", env=env).stdout)
    assert status["half_applied"] is half and status["current"] == [HEAD]
    history = json.loads(run_invoke(project, "history", "--json", env=env).stdout)
    assert history["revisions"][0]["status"] == ("half-applied" if half else "failed")


# Every statement succeeds; the deferred foreign key is checked, and fails, only at the step's COMMIT.
FAILS_AT_COMMIT = revision_source("""
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table("tags", sa.Column("id", sa.Integer, primary_key=True), sa.Column(
        "note_id", sa.Integer, sa.ForeignKey("notes.id", deferrable=True, initially="DEFERRED"), nullable=False))
    op.execute("INSERT INTO tags (id, note_id) VALUES (1, 42)")
""", DROP_BOTH, message="fails at commit")


@pytest.mark.slow
def test_step_failing_at_its_commit_is_journaled_failed(project: Path, postgres_url: URL, engine: sa.Engine) -> None:
    """A step whose COMMIT fails (a deferred foreign key): its row says failed, though its applied row rolled back."""
    add_revision(project, FAILS_AT_COMMIT)
    failed = run_invoke(project, "migrate", env=environment(postgres_url))
    assert failed.returncode == 4, failed.stderr
    assert f"{NEXT} (fails at commit) failed" in failed.stderr and "rolled back as a whole" in failed.stderr
    entry = steps(engine)[-1]
    assert (entry.revision, entry.status, entry.success, entry.transactional) == (NEXT, "failed", False, True)
    assert entry.error and "ForeignKeyViolation" in entry.error
    assert {"notes", "tags"}.isdisjoint(tables(engine))
    with engine.connect() as connection:
        run = journal.entries(connection, kinds=("run",))[0]
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    assert (run.status, run.to_revision) == ("failed", NEXT)


@pytest.mark.slow
def test_several_heads_refused_before_any_change(project: Path, sqlite_url: URL, engine: sa.Engine) -> None:
    """Two heads in the scripts: migrate refuses (6) naming both, nothing runs, status --check exits 7."""
    add_revision(project, revision_source(SLOW_UPGRADE, DROP_BOTH, message="slow change", down_revision="0001",
                                          header=SLOW_REVISION_HEADER), f"{NEXT}_branch.py")
    env = environment(sqlite_url)
    refused = run_invoke(project, "migrate", env=env)
    assert refused.returncode == 6
    assert "several heads: " in refused.stderr and HEAD in refused.stderr and NEXT in refused.stderr
    assert "alembic merge" in refused.stderr
    assert "users" not in tables(engine)
    checked = run_invoke(project, "status", "--check", env=env)
    assert checked.returncode == 7 and "several heads" in checked.stderr
