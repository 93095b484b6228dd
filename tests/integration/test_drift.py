"""`invoke check`: models against the live schema, exit 7 with a readable list; the toolkit's tables are not drift."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.urls import sync_url
from bot.errors import CheckFailed
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.migrate.read.drift import check_drift, find_drift
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.environment import clean_env, plain
from tests.support.logs import events_named


def execute(url: URL, *statements: str) -> None:
    """Run statements, committing."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_no_drift_at_head_with_the_journal_present(sqlite_url: URL) -> None:
    """At head the check passes although alembic_version and the journal tables exist."""
    config = Config(database_url=sqlite_url)
    migrations.upgrade(config, to="0002")
    engine = sa.create_engine(sync_url(sqlite_url))
    assert journal.JOURNAL_TABLE in sa.inspect(engine).get_table_names()
    engine.dispose()
    assert check_drift(config).startswith("no drift: the schema of ")


@pytest.mark.slow
def test_drift_detected_after_changing_a_model(project: Path, sqlite_url: URL) -> None:
    """A column added to the models but not migrated: exit 7 and the table.column on stdout."""
    env = clean_env(DATABASE_URL=plain(sqlite_url), LOG_FORMAT="json")
    assert run_invoke(project, "migrate", env=env).returncode == 0
    models = project / "bot" / "data" / "models.py"
    models.write_text(models.read_text().replace(
        "    message_count: Mapped[int] = mapped_column(Integer, server_default=\"0\")",
        "    message_count: Mapped[int] = mapped_column(Integer, server_default=\"0\")\n"
        "    nickname: Mapped[str | None] = mapped_column(String(32))"))
    result = run_invoke(project, "check", env=env)
    assert result.returncode == 7, result.stderr
    assert "users.nickname: column in the models, missing from the database" in result.stdout
    assert events_named(result.stderr, "drift detected")[0]["differences"] == 1
    assert "drifted from the models in 1 place(s)" in str(events_named(result.stderr, "command failed")[0]["error"])


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_drift_lists_tables_columns_and_types(backend: str, request: pytest.FixtureRequest) -> None:
    """A stray table, a dropped column and a changed type are each named; CheckFailed is exit 7."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    config = Config(database_url=url)
    migrations.upgrade(config, to="0002")
    retype = ("ALTER TABLE users ALTER COLUMN username TYPE VARCHAR(10)" if backend == "postgresql"
              else "ALTER TABLE users MODIFY username VARCHAR(10)")
    execute(url, "CREATE TABLE stray (id INTEGER PRIMARY KEY)", "ALTER TABLE users DROP COLUMN last_seen_at", retype)
    differences, revision = find_drift(config)
    assert revision == ("0002",)
    assert sorted(difference.line() for difference in differences) == [
        "stray: in the database, not in the models",
        "users.last_seen_at: column in the models, missing from the database",
        "users.username: type is VARCHAR(10) in the database, VARCHAR(64) in the models",
    ]
    with pytest.raises(CheckFailed) as failed:
        check_drift(config)
    assert failed.value.exit_code == 7
