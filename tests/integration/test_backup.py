"""Backups before destructive commands: written owner-only, verified, pruned; a failed backup changes nothing."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.data.urls import sync_url
from bot.errors import Refused
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.migrate.rails.backup import backup_kind, ensure_free_space, prune_backups, take_backup, verify_backup
from bot.migrate.rails.guards import downgrade_guards, upgrade_guards
from bot.migrate.rails.restore import restore
from bot.settings.config import Config
from tests.support.commands import run_invoke, run_task
from tests.support.database import revision_of, schema
from tests.support.environment import MARIADB_ADMIN, clean_env, plain
from tests.support.logs import events_named, json_lines


def journal_kinds(url: URL) -> list[tuple[str, str]]:
    """(kind, status) of every journal row but the run rows around steps, oldest first."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            found = reversed(journal.entries(connection))
            return [(entry.kind, entry.status) for entry in found if entry.kind != "run"]
    finally:
        engine.dispose()


def test_rollback_writes_a_verified_owner_only_backup(any_url: URL, tmp_path: Path) -> None:
    """Before a rollback each backend's tool writes a 0600 backup named database-revision-time, verified, journaled."""
    config = Config(database_url=any_url, backup_dir=tmp_path / "backups")
    migrations.upgrade(config, to="0002")
    report = migrations.rollback(config, safeguards=downgrade_guards(config, backup=True))
    assert report.after == ("0001",)
    files = list((tmp_path / "backups").iterdir())
    assert len(files) == 1
    backup = files[0]
    label = any_url.database.rsplit("/", 1)[-1]
    assert backup.name.startswith(f"{label}-0002-") and backup.suffix in (".sqlite", ".dump", ".sql")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    verify_backup(backup, any_url.get_backend_name())
    assert backup_kind(backup) == {"sqlite": "sqlite", "postgresql": "postgresql"}.get(any_url.get_backend_name(),
                                                                                          "mysql")
    assert ("backup", "ok") in journal_kinds(any_url)
    assert journal_kinds(any_url)[-2:] == [("backup", "ok"), ("step", "reverted")], "the backup came first"


def test_unwritable_backup_dir_changes_nothing(sqlite_url: URL, tmp_path: Path) -> None:
    """A BACKUP_DIR that cannot be created refuses the rollback (exit 6) and leaves the revision where it was."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = Config(database_url=sqlite_url, backup_dir=blocker / "backups")
    migrations.upgrade(config, to="0002")
    with pytest.raises(Refused, match="BACKUP_DIR .* cannot be created") as refused:
        migrations.rollback(config, safeguards=downgrade_guards(config, backup=True))
    assert refused.value.exit_code == 6 and "--no-backup" in refused.value.line()
    assert revision_of(sqlite_url) == "0002"
    assert journal_kinds(sqlite_url)[-1] == ("backup", "failed")


@pytest.mark.slow
def test_missing_pg_dump_refuses_then_no_backup_goes_on(project: Path, postgres_url: URL, tmp_path: Path) -> None:
    """Without pg_dump on PATH a rollback exits 6 with nothing changed; --no-backup goes on knowingly."""
    migrations.upgrade(Config(database_url=postgres_url), to="0002")
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    env = clean_env(DATABASE_URL=plain(postgres_url), LOG_FORMAT="json", PATH=str(empty_path))
    refused = run_invoke(project, "rollback", env=env)
    assert refused.returncode == 6, refused.stderr
    error = str(events_named(refused.stderr, "command failed")[0]["error"])
    assert error.startswith("pg_dump is not on PATH") and "--no-backup" in error
    assert revision_of(postgres_url) == "0002"
    assert not list((project / "backups").glob("*")) if (project / "backups").exists() else True

    went_on = run_invoke(project, "rollback", "--no-backup", env=env)
    assert went_on.returncode == 0, went_on.stderr
    assert events_named(went_on.stderr, "backup skipped")
    assert revision_of(postgres_url) == "0001"


@pytest.fixture
def mariadb_user_url(mariadb_url: URL) -> Iterator[URL]:
    """The test database reached through a user whose password needs quoting everywhere."""
    import pymysql

    user, password = f"u{uuid.uuid4().hex[:8]}", "p@ss:w/rd%#\"q'"
    admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cursor.execute(f"GRANT ALL ON `{mariadb_url.database}`.* TO %s@'%%'", (user,))
        cursor.execute("GRANT PROCESS ON *.* TO %s@'%%'", (user,))
    yield mariadb_url.set(username=user, password=password)
    with admin.cursor() as cursor:
        cursor.execute("DROP USER %s@'%%'", (user,))
    admin.close()


def test_mariadb_password_never_reaches_logs_or_command_line(mariadb_user_url: URL, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    """A password with quotes and # goes through an owner-only option file: the backup works, no log shows it."""
    from bot.redact import register

    config = Config(database_url=mariadb_user_url, backup_dir=tmp_path)
    register(config.secrets())
    migrations.upgrade(config, to="0002")
    backup = take_backup(config, ("0002",), reason="test")
    verify_backup(backup.path, "mariadb")
    assert "CREATE TABLE `users`" in backup.path.read_text()
    captured = capfd.readouterr()
    assert str(mariadb_user_url.password) not in captured.err + captured.out
    assert not list(Path("/tmp").glob("bot-mysql-*/client.cnf")), "the option file is removed after use"


def test_production_migrate_backs_up_only_when_asked(sqlite_url: URL, tmp_path: Path) -> None:
    """BACKUP_BEFORE_MIGRATE=true backs up before a production upgrade; not when nothing is pending."""
    config = Config(database_url=sqlite_url, env="production", backup_dir=tmp_path / "b", backup_before_migrate=True)
    migrations.upgrade(replace(config, backup_before_migrate=False), to="0001")
    migrations.upgrade(config, safeguards=upgrade_guards(config))
    assert [path.name.split("-")[1] for path in (tmp_path / "b").iterdir()] == ["0001"]
    migrations.upgrade(config)
    assert len(list((tmp_path / "b").iterdir())) == 1, "nothing pending, no backup"


def test_backup_keep_prunes_oldest_and_free_space_is_checked(sqlite_url: URL, tmp_path: Path) -> None:
    """BACKUP_KEEP keeps the newest N of this database's backups; too little free space refuses first."""
    config = Config(database_url=sqlite_url, backup_dir=tmp_path / "b", backup_keep=2)
    migrations.upgrade(config, to="0002")
    other = tmp_path / "b" / "other.db-0001-20200101T000000Z.sqlite"
    made = [take_backup(config, ("0002",), reason="test").path for _ in range(3)]
    other.write_text("another database's backup")
    left = sorted(path.name for path in (tmp_path / "b").iterdir())
    assert left == sorted([made[1].name, made[2].name, other.name])
    assert prune_backups(tmp_path / "b", "bot.db", 0) == [], "0 keeps every backup"
    with pytest.raises(Refused, match="not enough free space"):
        ensure_free_space(tmp_path, 1 << 60)


def test_sqlite_backups_are_one_file_each_and_restore_leaves_nothing_beside_them(sqlite_url: URL,
                                                                              tmp_path: Path) -> None:
    """With the live file in WAL mode (as the bot leaves it), each backup is one file, restore adds none, and
    BACKUP_KEEP removes whole backups, leftovers from older versions included."""
    folder = tmp_path / "b"
    config = Config(database_url=sqlite_url, backup_dir=folder, backup_keep=2)
    migrations.upgrade(config, to="0002")
    with sqlite3.connect(str(sqlite_url.database)) as live:
        assert live.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    first = take_backup(config, ("0002",), reason="test").path
    assert sorted(path.name for path in folder.iterdir()) == [first.name]
    with sqlite3.connect(first) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    restored = restore(config, first, backup_first=True)
    assert restored.safety_backup is not None
    assert sorted(path.name for path in folder.iterdir()) == sorted([first.name, restored.safety_backup.name])

    for suffix in ("-shm", "-wal", ".partial-shm", ".partial-wal"):  # what older versions left behind
        first.with_name(first.name + suffix).write_bytes(b"")
    third = take_backup(config, ("0002",), reason="test").path
    assert sorted(path.name for path in folder.iterdir()) == sorted([restored.safety_backup.name, third.name])


TRUNCATED_DUMPS = {
    "pg_dump": "printf 'PGDMP\\001\\016\\000\\004\\010'",
    "mariadb-dump": "printf -- '-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\\nCREATE TABLE `users` (\\n'",
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_dump_tool_that_writes_a_truncated_dump_is_caught_where_the_backup_is_taken(
        backend: str, project: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A pg_dump / mariadb-dump that exits 0 after a truncated dump: rollback exits 6 naming the backup unreadable,
    the schema is unchanged, and no finished or partial backup is left."""
    url: URL = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    migrations.upgrade(Config(database_url=url), to="0002")
    before = schema(url)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    tool = "pg_dump" if backend == "postgresql" else "mariadb-dump"
    (fake_bin / tool).write_text(f"#!/bin/sh\n{TRUNCATED_DUMPS[tool]}\nexit 0\n")
    (fake_bin / tool).chmod(0o755)
    folder = tmp_path / "backups"
    env = clean_env(DATABASE_URL=plain(url), BACKUP_DIR=str(folder), PATH=f"{fake_bin}:{os.environ['PATH']}")
    refused = run_invoke(project, "rollback", env=env)
    assert refused.returncode == 6, refused.stderr
    error = str(events_named(refused.stderr, "command failed")[0]["error"])
    assert re.search(r"the backup t_\w+-0002-\d{8}T\d{6}Z\.(dump|sql) is unreadable", error), error
    assert schema(url) == before and revision_of(url) == "0002"
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_rollback_base_in_development_without_a_terminal_or_yes_changes_nothing(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """rollback-base always asks: with no terminal and no --yes it exits 6, takes no backup, drops nothing."""
    url: URL = request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url",
                                        "mariadb": "mariadb_url"}[backend])
    migrations.upgrade(Config(database_url=url), to="0002")
    before = schema(url)
    monkeypatch.setenv("DATABASE_URL", plain(url))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    assert run_task(cli.rollback_base) == 6
    assert "pass --yes" in str(json_lines(capfd.readouterr().err)[-1]["error"])
    assert schema(url) == before and revision_of(url) == "0002"
    assert not (tmp_path / "backups").exists()


def test_corrupt_or_truncated_backups_are_rejected(tmp_path: Path) -> None:
    """Empty, truncated and foreign files fail verification before anything could use them."""
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.sql"
    truncated.write_text("-- MariaDB dump 10.19\nCREATE TABLE `users` (\n")
    fake_pg = tmp_path / "fake.dump"
    fake_pg.write_bytes(b"PGDMP" + b"\x00" * 40)
    checks = [(empty, "postgresql", "is empty"), (truncated, "mariadb", "is truncated"),
              (fake_pg, "postgresql", "pg_restore --list failed"), (truncated, "sqlite", "is not a sqlite backup")]
    for path, backend, message in checks:
        with pytest.raises(Refused, match=message):
            verify_backup(path, backend)


def test_backup_and_ddl_variables_are_validated() -> None:
    """BACKUP_KEEP, BACKUP_BEFORE_MIGRATE and the DDL limits reject bad values; BACKUP_DIR is anchored at the root."""
    from bot.errors import ConfigError
    from bot.paths import PROJECT_ROOT
    from bot.settings.loading import load_config

    config = load_config({"BACKUP_DIR": "var/bk", "BACKUP_KEEP": "3", "BACKUP_BEFORE_MIGRATE": "yes",
                          "ALLOW_DESTRUCTIVE_MIGRATIONS": "false", "DDL_LOCK_TIMEOUT": "2.5",
                          "DDL_STATEMENT_TIMEOUT": "0"})
    assert (config.backup_dir, config.backup_keep, config.backup_before_migrate) == (PROJECT_ROOT / "var/bk", 3, True)
    assert (config.allow_destructive_migrations, config.ddl_lock_timeout, config.ddl_statement_timeout) == (
        False, 2.5, 0.0)
    assert load_config({}).backup_dir == PROJECT_ROOT / "backups"
    for name, value in (("BACKUP_KEEP", "-1"), ("BACKUP_KEEP", "ten"), ("BACKUP_BEFORE_MIGRATE", "maybe"),
                        ("ALLOW_DESTRUCTIVE_MIGRATIONS", "2"), ("DDL_LOCK_TIMEOUT", "soon"), ("BACKUP_DIR", " ")):
        with pytest.raises(ConfigError, match=name):
            load_config({name: value})
