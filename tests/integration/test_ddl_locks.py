"""Bounded DDL locks: a migration stuck behind another session's lock fails cleanly (exit 4) instead of queueing."""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.urls import sync_url
from bot.errors import MigrationFailed
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.settings.config import Config
from tests.support.database import database_state
from tests.support.environment import ROOT


def rollback_md_lock_wait_status() -> str:
    """The journal status docs/ROLLBACK.md promises for a step whose first statement timed out on a lock."""
    text = (ROOT / "docs" / "ROLLBACK.md").read_text(encoding="utf-8")
    said = re.search(r"failed waiting for a lock.*?is recorded `?([a-z-]+)`?", text, flags=re.DOTALL)
    assert said, "docs/ROLLBACK.md no longer says how a lock-wait failure is recorded"
    return said.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_migration_behind_a_long_lock_fails_cleanly(backend: str, request: pytest.FixtureRequest) -> None:
    """An open transaction reading users blocks ALTER TABLE; DDL_LOCK_TIMEOUT=1 without retries fails in about 1 s."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    config = Config(database_url=url, ddl_lock_timeout=1.0, ddl_statement_timeout=30.0, ddl_lock_retries=0)
    migrations.upgrade(config, to="0001")
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as blocker:
            blocker.execute(sa.text("SELECT count(*) FROM users"))  # holds a shared lock until rollback
            started = time.monotonic()
            with pytest.raises(MigrationFailed) as failed:
                migrations.upgrade(config, to="0002")
            waited = time.monotonic() - started
            assert blocker.execute(sa.text("SELECT count(*) FROM users")).scalar() == 0, "the reader was not hurt"
            blocker.rollback()
        assert failed.value.exit_code == 4
        assert 0.9 <= waited < 6, f"waited {waited:.1f}s"
        assert "revision 0002 (track user activity) failed" in failed.value.line()
        assert "longer than DDL_LOCK_TIMEOUT" in failed.value.line()
        assert ("nothing of it ran" if backend == "mariadb" else "rolled back as a whole") in failed.value.line()
        columns = {column["name"] for column in sa.inspect(engine).get_columns("users")}
        assert "message_count" not in columns and "last_seen_at" not in columns
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
            step = journal.entries(connection, kinds=("step",))[0]
        assert (step.revision, step.status, step.transactional) == ("0002", "failed", backend == "postgresql")
        assert step.status == rollback_md_lock_wait_status(), "docs/ROLLBACK.md says how such a step is recorded"
    finally:
        engine.dispose()
    # MariaDB commits DDL as it goes, but the step's first statement timed out: nothing ran, nothing to stamp.
    assert migrations.upgrade(config, to="0002").after == ("0002",), "nothing was half-done: the next run simply works"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_step_behind_a_lock_is_retried_until_the_lock_goes(backend: str, request: pytest.FixtureRequest,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """A step that timed out on a table lock and left nothing behind runs again, with a log line per retry."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    config = Config(database_url=url, ddl_lock_timeout=0.5, ddl_statement_timeout=30.0, ddl_lock_retries=3)
    migrations.upgrade(config, to="0001")
    engine = sa.create_engine(sync_url(url))
    blocker = engine.connect()
    blocker.execute(sa.text("SELECT count(*) FROM users"))  # holds a shared lock until rollback
    release = threading.Timer(1.2, blocker.rollback)
    release.start()
    try:
        assert migrations.upgrade(config).after == ("0002",)
    finally:
        release.join()
        blocker.close()
    retried = [record for record in caplog.records if "migration step retried" in record.getMessage()]
    assert 1 <= len(retried) <= 3
    with engine.connect() as connection:
        steps = [(entry.revision, entry.status) for entry in reversed(journal.entries(connection, kinds=("step",)))]
    engine.dispose()
    assert steps[-1] == ("0002", "applied") and ("0002", "failed") in steps, steps


def test_statement_timeout_bounds_a_step_on_postgres(postgres_url: URL) -> None:
    """With no lock limit, DDL_STATEMENT_TIMEOUT still ends a step that hangs; the fix names the variable."""
    config = Config(database_url=postgres_url, ddl_lock_timeout=0, ddl_statement_timeout=1.0)
    migrations.upgrade(config, to="0001")
    engine = sa.create_engine(sync_url(postgres_url))
    try:
        with engine.connect() as blocker:
            blocker.execute(sa.text("SELECT count(*) FROM users"))
            started = time.monotonic()
            with pytest.raises(MigrationFailed, match="longer than DDL_STATEMENT_TIMEOUT"):
                migrations.upgrade(config, to="0002")
            assert time.monotonic() - started < 6
            blocker.rollback()
    finally:
        engine.dispose()
    assert database_state(config).current == ("0001",)
