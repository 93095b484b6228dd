"""--sql prints Alembic's offline SQL for the configured dialect on stdout and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.urls import sync_url
from bot.errors import ConfigError
from bot.migrate import api as migrations
from bot.migrate.read.preview import render_sql
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.database import database_state
from tests.support.environment import clean_env, plain
from tests.support.logs import events_named, json_lines


def tables(url: URL) -> set[str]:
    """Every table in the database."""
    engine = sa.create_engine(sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sql_preview_leaves_postgres_untouched(project: Path, postgres_url: URL) -> None:
    """migrate --sql on an empty database and rollback/rollback-base --sql at head print SQL; the schema never moves."""
    env = clean_env(DATABASE_URL=plain(postgres_url), ENV="production", LOG_FORMAT="json")
    upgrade = run_invoke(project, "migrate", "--sql", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    assert "CREATE TABLE alembic_version" in upgrade.stdout and "CREATE TABLE users" in upgrade.stdout
    assert "ALTER TABLE users ADD COLUMN message_count INTEGER DEFAULT '0' NOT NULL;" in upgrade.stdout
    json_lines(upgrade.stderr)  # logs stay JSON on stderr, the script alone is on stdout
    assert tables(postgres_url) == set(), "nothing was created, not even alembic_version or the journal"

    migrations.upgrade(Config(database_url=postgres_url), to="0002")
    before = tables(postgres_url)
    one = run_invoke(project, "rollback", "--sql", env=env)
    assert one.returncode == 0, one.stderr
    assert "-- Running downgrade 0002 -> 0001" in one.stdout and "DROP COLUMN message_count" in one.stdout
    assert "Running downgrade 0001" not in one.stdout
    base = run_invoke(project, "rollback-base", "--sql", env=env)
    assert base.returncode == 0, base.stderr
    assert "DROP TABLE users;" in base.stdout
    assert tables(postgres_url) == before
    assert database_state(Config(database_url=postgres_url)).current == ("0002",)
    assert not (project / "backups").exists(), "a preview takes no backup and asks nothing"


@pytest.mark.slow
def test_sqlite_batch_step_is_refused_clearly(project: Path, sqlite_url: URL) -> None:
    """A SQLite batch step cannot be rendered offline: exit 6 naming the revision, no traceback, nothing on stdout."""
    migrations.upgrade(Config(database_url=sqlite_url), to="0002")
    env = clean_env(DATABASE_URL=plain(sqlite_url), LOG_FORMAT="json")
    result = run_invoke(project, "rollback", "--sql", env=env)
    assert result.returncode == 6, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    error = str(events_named(result.stderr, "command failed")[0]["error"])
    assert error.startswith("revision 0002 (track user activity) cannot be rendered as SQL for sqlite")
    assert "batch" in error
    assert database_state(Config(database_url=sqlite_url)).current == ("0002",)


def test_sql_preview_for_mariadb_and_bad_targets(mariadb_url: URL, sqlite_url: URL) -> None:
    """MariaDB gets its own dialect's SQL from the current revision on; an unknown target is a clear error."""
    config = Config(database_url=mariadb_url)
    migrations.upgrade(config, to="0001")
    script = render_sql(config, "upgrade", "head")
    assert "-- Running upgrade 0001 -> 0002" in script and "CREATE TABLE users" not in script
    assert "ALTER TABLE users ADD COLUMN message_count INTEGER NOT NULL DEFAULT '0';" in script
    assert render_sql(config, "upgrade", "0001").startswith("-- nothing to upgrade")
    with pytest.raises(ConfigError, match="cannot upgrade to 'nope'"):
        render_sql(config, "upgrade", "nope")
    assert not Path(str(sqlite_url.database)).exists()
    assert "CREATE TABLE users" in render_sql(Config(database_url=sqlite_url), "upgrade", "head")
    assert not Path(str(sqlite_url.database)).exists(), "a preview never creates the SQLite file"
