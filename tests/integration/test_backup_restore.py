"""Restore: real rows come back, the journal keeps its current rows, bad inputs change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.urls import sync_url
from bot.errors import ConfigError, MigrationFailed, Refused
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.migrate.rails.backup import backup_kind, take_backup
from bot.migrate.rails.guards import downgrade_guards
from bot.migrate.rails.restore import backup_revision, restore
from bot.settings.config import Config
from tests.support.commands import run_invoke, run_task
from tests.support.database import database_state, revision_of, schema
from tests.support.database import query as execute
from tests.support.environment import clean_env, plain
from tests.support.revisions import add_revision, revision_source


def journal_rows(url: URL) -> list[tuple[str, str, str | None]]:
    """(kind, status, revision) of every journal row, oldest first."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [(entry.kind, entry.status, entry.revision) for entry in reversed(journal.entries(connection))]
    finally:
        engine.dispose()


def test_restore_round_trip_with_real_rows(any_url: URL, tmp_path: Path) -> None:
    """Rollback (backup first) loses a column's data; restore brings rows and revision back, journal rows stay."""
    config = Config(database_url=any_url, backup_dir=tmp_path / "backups")
    migrations.upgrade(config, to="0002")
    execute(any_url, "INSERT INTO users (id, first_name, message_count) VALUES (1, 'Ann', 5), (2, 'Bob', 7)")
    migrations.rollback(config, safeguards=downgrade_guards(config, backup=True))
    assert execute(any_url, "SELECT id, first_name FROM users ORDER BY id") == [(1, "Ann"), (2, "Bob")]
    # A table the backup does not have: the restore must not leave it behind.
    execute(any_url, "CREATE TABLE stray (id INTEGER PRIMARY KEY)")
    before = journal_rows(any_url)
    backup = next((tmp_path / "backups").iterdir())

    report = restore(config, backup, confirm=lambda plan: plan.direction == "restore" and plan.source == str(backup)
                     and plan.target == "0002")
    assert report.before == ("0001",) and report.after == ("0002",)
    assert execute(any_url, "SELECT id, first_name, message_count FROM users ORDER BY id") == [
        (1, "Ann", 5), (2, "Bob", 7)]
    tables = set(sa.inspect(sa.create_engine(sync_url(any_url))).get_table_names())
    assert "stray" not in tables and {"users", "alembic_version", journal.JOURNAL_TABLE} <= tables
    after = journal_rows(any_url)
    assert after[:len(before)] == before, "the journal kept its current rows, not the backup's"
    assert after[len(before):] == [("restore", "ok", "0002")]
    assert ("step", "reverted", "0002") in after
    assert report.safety_backup is not None and report.safety_backup.exists()
    # The journal still takes new rows after its ids were put back (sequences on PostgreSQL).
    assert migrations.rollback(config).after == ("0001",)
    assert journal_rows(any_url)[-1] == ("step", "reverted", "0002")


def test_restore_bad_inputs_change_nothing(sqlite_url: URL, postgres_url: URL, tmp_path: Path) -> None:
    """A missing file, a folder, another backend's backup, a corrupt file or a 'no' leave the database as it was."""
    config = Config(database_url=sqlite_url, backup_dir=tmp_path / "b")
    migrations.upgrade(config, to="0002")
    execute(sqlite_url, "INSERT INTO users (id, first_name) VALUES (1, 'Ann')")
    pg_config = Config(database_url=postgres_url, backup_dir=tmp_path / "pg")
    migrations.upgrade(pg_config, to="0002")
    pg_backup = take_backup(pg_config, ("0002",), reason="test").path
    corrupt = tmp_path / "bot.db-0002-20260101T000000Z.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x07" * 600)

    with pytest.raises(ConfigError, match="does not exist"):
        restore(config, tmp_path / "nope.sqlite")
    with pytest.raises(ConfigError, match="is not a file"):
        restore(config, tmp_path)
    with pytest.raises(ConfigError, match="is not a sqlite backup: it looks like a postgresql backup"):
        restore(config, pg_backup)
    with pytest.raises(Refused, match="not a readable SQLite database|integrity check"):
        restore(config, corrupt)
    good = take_backup(config, ("0002",), reason="test").path
    with pytest.raises(Refused, match="was not confirmed"):
        restore(config, good, confirm=lambda plan: False)
    assert execute(sqlite_url, "SELECT id, first_name FROM users") == [(1, "Ann")]
    assert database_state(config).current == ("0002",)
    assert ("restore", "ok", "0002") not in journal_rows(sqlite_url)


@pytest.mark.slow
def test_failed_restore_is_journaled_and_keeps_the_journal(postgres_url: URL, mariadb_url: URL, tmp_path: Path) -> None:
    """A table held by a bot session: exit 6, nothing changed. A broken MariaDB dump: exit 4, journal intact."""
    pg = Config(database_url=postgres_url, backup_dir=tmp_path / "pg", ddl_lock_timeout=1.0)
    migrations.upgrade(pg, to="0002")
    backup = take_backup(pg, ("0002",), reason="test").path
    execute(postgres_url, "INSERT INTO users (id, first_name) VALUES (1, 'Ann')")
    engine = sa.create_engine(sync_url(postgres_url))
    try:
        with engine.connect() as bot_session:
            bot_session.execute(sa.text("SELECT count(*) FROM users"))  # holds the table like a busy bot
            with pytest.raises(Refused, match="in use by another session") as refused:
                restore(pg, backup)
            bot_session.rollback()
    finally:
        engine.dispose()
    assert refused.value.exit_code == 6 and "stop the bot" in refused.value.line()
    assert execute(postgres_url, "SELECT id FROM users") == [(1,)]
    assert not any(path.name.startswith(postgres_url.database + "-0002") and path != backup
                   for path in (tmp_path / "pg").iterdir()), "refused before the safety backup"

    maria = Config(database_url=mariadb_url, backup_dir=tmp_path / "maria", ddl_lock_timeout=1.0)
    migrations.upgrade(maria, to="0002")
    dump = take_backup(maria, ("0002",), reason="test").path
    engine = sa.create_engine(sync_url(mariadb_url))
    try:
        with engine.connect() as bot_session:
            bot_session.execute(sa.text("SELECT count(*) FROM users"))
            with pytest.raises(Refused, match="in use by another session"):
                restore(maria, dump)
            bot_session.rollback()
    finally:
        engine.dispose()
    text = dump.read_text()
    dump.write_text(text.replace("CREATE TABLE `users`", "THIS IS NOT SQL;\nCREATE TABLE `users`", 1))
    before = journal_rows(mariadb_url)
    with pytest.raises(MigrationFailed, match="may be partly restored") as failed:
        restore(maria, dump, backup_first=False)
    assert "the safety backup" not in failed.value.line() and "no safety backup was taken" in failed.value.line()
    assert journal_rows(mariadb_url) == [*before, ("restore", "failed", None)]


@pytest.mark.slow
def test_backup_at_a_revision_the_code_lacks_is_refused(any_url: URL, project: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup taken at 0003 by newer code is read as 0003 and refused (exit 6) by code without it, nothing changed."""
    add_revision(project, revision_source('op.add_column("users", sa.Column("nickname", sa.String(32)))',
                                          'op.drop_column("users", "nickname")', message="add nickname"))
    env = clean_env(DATABASE_URL=plain(any_url))
    assert run_invoke(project, "migrate", env=env).returncode == 0
    config = Config(database_url=any_url, backup_dir=tmp_path / "backups")
    backup = take_backup(config, ("0003",), reason="test").path
    assert backup_revision(backup, backup_kind(backup), any_url) == ("0003",)
    rolled_back = run_invoke(project, "rollback", "--yes", "--no-backup", env=env)
    assert rolled_back.returncode == 0, rolled_back.stderr
    execute(any_url, "INSERT INTO users (id, first_name) VALUES (1, 'Ann')")
    tables, journal_before = schema(any_url), journal_rows(any_url)

    monkeypatch.setenv("DATABASE_URL", plain(any_url))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    with pytest.raises(Refused, match="at revision 0003, which these scripts do not know"):
        restore(config, backup, confirm=lambda plan: True)
    from bot.commands import cli  # the task as an operator runs it, inside the error boundary

    assert run_task(lambda: cli.restore(path=str(backup), yes=True)) == 6
    assert revision_of(any_url) == "0002" and schema(any_url) == tables
    assert execute(any_url, "SELECT id, first_name FROM users") == [(1, "Ann")]
    assert journal_rows(any_url) == journal_before
    assert sorted((tmp_path / "backups").iterdir()) == [backup], "refused before any safety backup"


def test_mariadb_revision_is_read_from_a_dump_in_any_layout(mariadb_url: URL, tmp_path: Path) -> None:
    """Rows split over lines, several rows, other tables' look-alike text and an empty table all read right."""
    config = Config(database_url=mariadb_url, backup_dir=tmp_path / "backups")
    migrations.upgrade(config)
    execute(mariadb_url, "INSERT INTO users (id, first_name) VALUES (1, :name)",
            name="x');\nINSERT INTO `alembic_version` VALUES ('9999');")
    dump = take_backup(config, ("0002",), reason="test").path
    assert backup_revision(dump, "mysql", mariadb_url) == ("0002",)
    text = dump.read_text()
    merged = tmp_path / "merged.sql"
    merged.write_text(text.replace("('0002');", "('0002'),\n('0002%a');", 1))
    assert backup_revision(merged, "mysql", mariadb_url) == ("0002", "0002%a")
    unquoted = tmp_path / "unquoted.sql"  # mysqldump --skip-quote-names
    unquoted.write_text(text.replace("INSERT INTO `alembic_version`", "INSERT INTO alembic_version", 1))
    assert backup_revision(unquoted, "mysql", mariadb_url) == ("0002",)
    execute(mariadb_url, "DELETE FROM alembic_version")
    empty = take_backup(config, (), reason="test").path
    assert backup_revision(empty, "mysql", mariadb_url) == ()
    assert revision_of(mariadb_url) is None, "reading a backup never writes the live alembic_version"
