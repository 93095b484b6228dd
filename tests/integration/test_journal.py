"""The migration journal, in-process: rows for every step, status/history documents, refusals, its own schema."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

import bot
from bot.commands import cli
from bot.data.models import Base
from bot.data.urls import sync_url
from bot.errors import Refused
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.migrate.graph import TOOLKIT_TABLES, context_options, include_name
from bot.migrate.journal.origin import git_commit, this_process
from bot.migrate.read import overview
from bot.settings.config import Config
from bot.settings.loading import load_config
from tests.support.commands import run_task
from tests.support.database import query as execute
from tests.support.environment import plain
from tests.support.logs import events_named
from tests.support.revisions import HEAD, SHIPPED


def config_for(url: URL, env: str = "production") -> Config:
    """A Config for this test's database."""
    return load_config({"DATABASE_URL": plain(url), "ENV": env, "LOG_FORMAT": "json"}, stderr_is_terminal=False)


@pytest.fixture
def sync_engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    """A plain sync engine on the test's database, for looking at what the toolkit wrote."""
    url: URL = request.getfixturevalue("any_url") if "any_url" in request.fixturenames else \
        request.getfixturevalue("sqlite_url")
    engine = sa.create_engine(sync_url(url))
    yield engine
    engine.dispose()


def rows(engine: sa.Engine, kinds: tuple[str, ...] = ("step",)) -> list[journal.Entry]:
    """The journal's rows of these kinds, oldest first."""
    with engine.connect() as connection:
        return list(reversed(journal.entries(connection, kinds=kinds)))


def tables(engine: sa.Engine) -> set[str]:
    """The tables that exist now."""
    return set(sa.inspect(engine).get_table_names())


def test_steps_are_journaled_and_rollback_base_keeps_the_journal(any_url: URL, sync_engine: sa.Engine) -> None:
    """Migrate, roll back one, roll back to base: one row per step with every field, and the journal survives."""
    config = config_for(any_url)
    migrations.upgrade(config, to="0002")
    migrations.rollback(config, steps=1)
    migrations.rollback_to_base(config)

    found = rows(sync_engine)
    assert [(e.revision, e.direction, e.from_revision, e.to_revision, e.status) for e in found] == [
        ("0001", "upgrade", None, "0001", "applied"),
        ("0002", "upgrade", "0001", "0002", "applied"),
        ("0002", "downgrade", "0002", "0001", "reverted"),
        ("0001", "downgrade", "0001", None, "reverted"),
    ]
    for entry in found:
        assert entry.kind == "step" and entry.success is True and entry.error is None
        assert entry.description in ("create users", "track user activity")
        assert entry.started_at <= entry.finished_at and entry.duration_ms > 0
        assert entry.started_at.tzinfo is not None
        assert (entry.host, entry.pid, entry.environment) == (socket.gethostname(), os.getpid(), "production")
        assert entry.os_user and entry.app_version.startswith(bot.__version__)
        assert entry.transactional is (any_url.get_backend_name() != "mariadb")
    assert "users" not in tables(sync_engine)
    assert {"toolkit_journal", "toolkit_journal_schema", "alembic_version"} <= tables(sync_engine)

    seen = overview.read_overview(config)
    document = overview.history_document(seen)
    assert [(r["revision"], r["status"]) for r in document["revisions"]] == [(rev, "pending") for rev in SHIPPED[::-1]]
    assert document["revisions"][-1]["last_applied"]["finished_at"].endswith("Z")
    assert {record["status"] for record in document["revisions"]} <= set(overview.WORDS)
    status = overview.status_document(seen)
    assert status["current"] == [] and [p["revision"] for p in status["pending"]] == list(SHIPPED)
    assert status["last_entry"]["direction"] == "downgrade" and status["half_applied"] is False


def test_status_and_history_commands_print_json_and_check_exits_7(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`status --json --check` exits 7 while pending, 0 at head; `history --json` parses; progress is estimated."""
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("LOG_FORMAT", "json")
    Path(str(sqlite_url.database)).parent.mkdir()
    sqlite3.connect(str(sqlite_url.database)).close()  # an empty database: status only reads
    with pytest.raises(SystemExit) as stopped:
        cli.status(as_json=True, check=True)
    assert stopped.value.code == 7
    out = capsys.readouterr()
    document = json.loads(out.out)
    assert document["pending"][0]["revision"] == "0001" and document["problems"]
    assert "not at head" in out.err

    cli.migrate()
    cli.rollback_base(yes=True)
    capsys.readouterr()
    cli.migrate()
    first = events_named(capsys.readouterr().err, "migration applied")[0]
    assert first["position"] == f"1/{len(SHIPPED)}" and first["remaining_estimate"] == "journal"
    assert first["remaining_ms"] > 0

    cli.status(as_json=True, check=True)
    status = json.loads(capsys.readouterr().out)
    assert status["at_head"] is True and status["journal_schema_version"] == journal.SCHEMA_VERSION
    cli.history(limit=1, as_json=True)
    history = json.loads(capsys.readouterr().out)
    assert [r["revision"] for r in history["revisions"]] == [HEAD]
    assert history["revisions"][0]["status"] == "applied"
    assert history["revisions"][0]["last_applied"]["os_user"]
    cli.history()
    text = capsys.readouterr().out
    assert "0001" in text and "applied" in text and "(current, head)" in text


def test_unknown_database_revision_is_refused(any_url: URL, sync_engine: sa.Engine) -> None:
    """A database at a revision the scripts do not know: migrate and rollback refuse, status names it."""
    config = config_for(any_url)
    migrations.upgrade(config, to="0002")
    with sync_engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    for attempt in (lambda: migrations.upgrade(config), lambda: migrations.rollback(config, steps=1)):
        with pytest.raises(Refused, match="0099, which the scripts do not know"):
            attempt()
    seen = overview.read_overview(config)
    assert seen.state.unknown == ("0099",) and any("unknown" in p for p in seen.check_problems)
    assert len(rows(sync_engine)) == 2


def test_journal_schema_is_versioned(sqlite_url: URL, sync_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older journal is upgraded in place without looking like drift; a newer one makes every migration refuse."""
    config = config_for(sqlite_url)
    migrations.upgrade(config, to="0002")

    def add_ticket(connection: sa.Connection) -> None:
        connection.exec_driver_sql("ALTER TABLE toolkit_journal ADD COLUMN ticket VARCHAR(32)")

    monkeypatch.setattr(journal, "UPGRADES", {1: add_ticket})
    monkeypatch.setattr(journal, "SCHEMA_VERSION", 2)
    migrations.rollback(config, steps=1)
    with sync_engine.connect() as connection:
        assert journal.schema_version(connection) == 2
    assert "ticket" in {column["name"] for column in sa.inspect(sync_engine).get_columns("toolkit_journal")}

    migrations.upgrade(config, to="0002")
    with sync_engine.connect() as connection:  # autogenerate sees no drift with the journal present
        context = MigrationContext.configure(connection, opts=context_options("sqlite", online=True))
        assert compare_metadata(context, Base.metadata) == []

    monkeypatch.setattr(journal, "SCHEMA_VERSION", 1)
    with pytest.raises(Refused, match="schema version 2"):
        migrations.rollback(config, steps=1)
    assert (rows(sync_engine)[-1].direction, rows(sync_engine)[-1].status) == ("upgrade", "applied")


def test_unfinished_query_and_events_api(sqlite_url: URL, sync_engine: sa.Engine) -> None:
    """record_event writes non-step entries; unfinished() runs on a DB-API and a Core connection alike."""
    migrations.upgrade(config_for(sqlite_url), to="0002")
    who = this_process("production")
    with sync_engine.connect() as connection:
        event_id = journal.record_event(connection, "backup", who=who, description="before migrate",
                                        details={"file": "backups/x.sql.gz", "bytes": 1234},
                                        error=None, success=True)
        running = journal.committed(connection, lambda conn: journal.insert_entry(
            conn, kind="step", status="running", who=who, started_at=journal.now(), revision="0003",
            transactional=False))
        assert [row[0] for row in journal.unfinished(connection)] == [running]
    raw = sqlite3.connect(sqlite_url.database)
    try:
        assert [row[0] for row in journal.unfinished(raw)] == [running]
    finally:
        raw.close()
    event = next(entry for entry in rows(sync_engine, ('backup',)) if entry.id == event_id)
    assert (event.kind, event.status, event.success) == ("backup", "ok", True)
    assert event.as_json()["details"] == {"bytes": 1234, "file": "backups/x.sql.gz"}


def test_error_summaries_hold_no_secrets_and_toolkit_tables_are_not_drift() -> None:
    """Passwords, tokens and URL credentials never reach a journal row; autogenerate ignores the journal."""
    text = ('OperationalError: connect to postgresql://bot:s3cr3tpw@db/x failed; password=hunter2 '
            'token 123456789:AAH1testtokenvalue-abcdefghijklmnop and MYSECRETVALUE')
    summary = journal.sanitize(text, ["MYSECRETVALUE"])
    for secret in ("s3cr3tpw", "hunter2", "AAH1testtokenvalue", "MYSECRETVALUE"):
        assert secret not in summary
    assert "postgresql://bot:***@db/x" in summary
    assert len(journal.sanitize("x" * 2000)) == journal.ERROR_LIMIT
    assert {journal.JOURNAL_TABLE, journal.SCHEMA_TABLE} <= TOOLKIT_TABLES
    assert not include_name(journal.JOURNAL_TABLE, "table", {})
    assert git_commit(Path("/nonexistent/.git")) is None


def test_step_rows_commit_in_the_steps_own_transaction(any_url: URL, sync_engine: sa.Engine) -> None:
    """Transactional DDL: each step's row commits with its alembic_version change and the run adds one commit
    before the first step and one after the last (on PostgreSQL the only one flushed to disk); MariaDB commits a
    running row before each step instead; at head one more row keeps the revision files' checksum digest."""
    transactions: list[set[str]] = [set()]

    def written(connection: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        words = statement.split()
        if words[0].upper() in ("INSERT", "UPDATE"):
            table = words[2] if words[0].upper() == "INSERT" else words[1]
            transactions[-1].add(table.strip('`"'))
        elif "synchronous_commit" in statement:
            transactions[-1].add(statement)

    def committed(connection: sa.Connection) -> None:
        transactions.append(set())

    sa.event.listen(sa.Engine, "before_cursor_execute", written)
    sa.event.listen(sa.Engine, "commit", committed)
    try:
        migrations.upgrade(config_for(any_url), to="0002")
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", written)
        sa.event.remove(sa.Engine, "commit", committed)

    pattern = "".join("S" if "alembic_version" in tables else "J"
                      for tables in transactions if "toolkit_journal" in tables)
    events = rows(sync_engine, ("review", "backup"))  # the production guards' own entries, before any step
    runs = rows(sync_engine, ("run",))
    if any_url.get_backend_name() == "mariadb":
        assert pattern == "J" * len(events) + "JSJSJ" and runs == []
    else:
        assert pattern == "J" * len(events) + "JSSJJ"
        assert [(run.status, run.success, run.from_revision, run.to_revision) for run in runs] == [
            ("ok", True, None, "0002")]
        assert json.loads(runs[0].details or "")["steps"][1][:2] == ["0002", "track user activity"]
    run_transactions = [tables for tables in transactions if "toolkit_journal" in tables][len(events):]
    flushes = [sorted(tables - {"toolkit_journal", "alembic_version"}) for tables in run_transactions]
    if any_url.get_backend_name() == "postgresql":  # the steps' commits skip the disk flush; the closing one waits
        assert flushes == [["SET synchronous_commit TO off"], [], [], ["RESET synchronous_commit"], []]
    else:
        assert flushes == [[]] * 5


def test_status_check_on_an_unknown_revision_does_not_send_you_to_migrate(
        sqlite_url: URL, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """At a revision the scripts lack, `status --check` exits 7 with a fix that works; `migrate` really exits 6."""
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("LOG_FORMAT", "json")
    cli.migrate()
    execute(sqlite_url, "UPDATE alembic_version SET version_num = 'ffff'")
    capsys.readouterr()
    assert run_task(lambda: cli.status(check=True)) == 7
    failed = events_named(capsys.readouterr().err, "command failed")[0]
    assert "unknown revision: ffff" in failed["error"] and "run `invoke migrate`" not in failed["error"]
    assert "deploy the code that has it" in failed["error"]
    assert run_task(cli.migrate) == 6
