"""Review of destructive revisions before a production upgrade: refused unless marked or allowed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from bot.config import Config
from bot.database import journal, migrations
from bot.database.review import review_revisions
from bot.database.safeguards import upgrade_guards
from bot.database.urls import sync_url
from tests.conftest import clean_env, events_named, plain, run_invoke
from tests.helpers_db import HEAD, NEXT, later

REVISION = '''"""{message}

Revision ID: {rev}
Revises: {down}
Create Date: 2026-11-24 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None
{marker}

def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def write_revision(versions: Path, rev: str, down: str | None, upgrade: str, downgrade: str = "pass",
                   marker: str = "", message: str = "test revision") -> Path:
    """Drop a revision file into a versions folder."""
    path = versions / f"{rev}_test.py"
    path.write_text(REVISION.format(rev=rev, down=down, message=message, marker=marker,
                                    upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
                                    downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    ")))
    return path


def columns(url: URL, table: str) -> set[str]:
    """Column names of a table, read through a sync connection."""
    engine = sa.create_engine(sync_url(url))
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_review_finds_each_dangerous_operation(tmp_path: Path) -> None:
    """Drops, renames, retypes, NOT NULL without default, plain indexes and deleting SQL are found; safe ops are not."""
    versions = tmp_path / "versions"
    versions.mkdir()
    write_revision(versions, "a1", None, """
        op.create_table("fresh", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("x", sa.Integer()))
        op.create_index("ix_fresh_x", "fresh", ["x"])
        op.add_column("fresh", sa.Column("y", sa.Integer(), nullable=False))
        op.add_column("users", sa.Column("nick", sa.String(10), nullable=True))
        op.add_column("users", sa.Column("score", sa.Integer(), nullable=False, server_default="0"))
        op.create_index("ix_users_nick", "users", ["nick"], postgresql_concurrently=True)
        op.create_foreign_key("fk_fresh_users", "fresh", "users", ["x"], ["id"])
        op.create_unique_constraint("uq_fresh_x", "fresh", ["x"])
    """)
    write_revision(versions, "a2", "a1", """
        op.drop_column("users", "username")
        op.drop_table("old_things")
        op.alter_column("users", "first_name", type_=sa.String(20))
        op.alter_column("users", "language_code", new_column_name="lang")
        op.rename_table("fresh", "fresher")
        op.add_column("users", sa.Column("must", sa.Integer(), nullable=False))
        op.create_index("ix_users_lang", "users", ["lang"])
        op.create_foreign_key("fk_users_fresher", "users", "fresher", ["score"], ["id"])
        op.create_unique_constraint("uq_users_nick", "users", ["nick"])
        op.execute("DELETE FROM users WHERE id < 0")
        op.execute("UPDATE users SET score = 1")
        with op.batch_alter_table("users") as batch:
            batch.drop_column("score")
    """, marker='reviewed_destructive = "cleanup agreed in release 2.0"')
    write_revision(versions, "a3", "a2", """
        op.get_bind().execute(sa.text("SELECT 1"))
        op.get_bind().execute(sa.text("TRUNCATE users"))
    """, marker='reviewed_destructive = "   "')
    write_revision(versions, "a4", "a3", """
        rows = op.get_bind().execute(sa.text("SELECT id FROM users")).fetchall()
    """)
    scripts = ScriptDirectory(str(tmp_path), version_locations=[str(versions)])
    first, second, third, fourth = review_revisions(scripts, ["a1", "a2", "a3", "a4"], "postgresql")

    assert first.findings == () and first.accepted
    operations = [finding.operation for finding in second.findings]
    assert operations == ["drop column users.username", "drop table old_things",
                          "change type of users.first_name to VARCHAR(20)",
                          "rename column users.language_code to lang", "rename table fresh to fresher",
                          "add NOT NULL column users.must without a default",
                          "create index ix_users_lang on users without CONCURRENTLY",
                          "add foreign key fk_users_fresher on users", "add unique constraint uq_users_nick on users",
                          "execute 'DELETE FROM users WHERE id < 0'", "drop column users.score"]
    assert second.marker_reason == "cleanup agreed in release 2.0" and second.accepted
    assert [finding.operation for finding in third.findings] == ["op.get_bind() executes 'TRUNCATE users'"]
    assert third.marker_reason is None and not third.accepted, "a blank marker is no reason"
    assert "could not be inspected" in fourth.findings[0].operation, "code that needs real rows is not guessed at"
    sqlite_ops = [finding.operation for finding in review_revisions(scripts, ["a2"], "sqlite")[0].findings]
    assert "create index ix_users_lang on users without CONCURRENTLY" not in sqlite_ops


def test_unmarked_destructive_revision_refused_then_allowed_or_marked(project: Path, postgres_url: URL) -> None:
    """Production refuses an unmarked drop (exit 6); --allow-destructive, the variable or the marker let it through."""
    env = clean_env(DATABASE_URL=plain(postgres_url), ENV="production", LOG_FORMAT="json")
    assert run_invoke(project, "migrate", env=env).returncode == 0
    made = run_invoke(project, "revision", "-m", "drop usernames", env=env)
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip().splitlines()[-1])
    text = path.read_text()
    assert "reviewed_destructive: str | None = None" in text, "the template documents the marker"
    path.write_text(text.replace('    """Apply this revision."""\n    pass',
                                 '    """Apply this revision."""\n    op.drop_column("users", "username")'))

    refused = run_invoke(project, "migrate", env=env)
    assert refused.returncode == 6, refused.stderr
    failed = events_named(refused.stderr, "command failed")[0]
    assert f"{NEXT}: drop column users.username" in str(failed["error"])
    assert "reviewed_destructive" in str(failed["error"])
    assert [event["revision"] for event in events_named(refused.stderr, "destructive migration refused")] == [NEXT]
    assert "username" in columns(postgres_url, "users")
    assert migrations.status(Config(database_url=postgres_url)).current == (HEAD,)

    allowed = run_invoke(project, "migrate", "--allow-destructive", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert events_named(allowed.stderr, "destructive migration allowed")
    assert "username" not in columns(postgres_url, "users")

    versions = project / "alembic" / "versions"
    write_revision(versions, later(2), NEXT, 'op.drop_column("users", "language_code")')
    by_variable = run_invoke(project, "migrate", env={**env, "ALLOW_DESTRUCTIVE_MIGRATIONS": "true"})
    assert by_variable.returncode == 0, by_variable.stderr
    write_revision(versions, later(3), later(2), 'op.alter_column("users", "first_name", type_=sa.String(100))',
                   marker='reviewed_destructive = "names are never longer than 64 characters"')
    marked = run_invoke(project, "migrate", env=env)
    assert marked.returncode == 0, marked.stderr
    engine = sa.create_engine(sync_url(postgres_url))
    try:
        with engine.connect() as connection:
            reviews = journal.entries(connection, kinds=["review"])
            current = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert current == later(3)
    assert [entry.success for entry in reversed(reviews)] == [True, False, True, True, True], "each review journaled"


def test_only_production_upgrades_are_reviewed(sqlite_url: URL) -> None:
    """Development has no rails on upgrade; production reviews, and backs up too when BACKUP_BEFORE_MIGRATE=true."""
    assert upgrade_guards(Config(database_url=sqlite_url)) == ()
    assert len(upgrade_guards(Config(database_url=sqlite_url, env="production"))) == 1
    assert len(upgrade_guards(Config(database_url=sqlite_url, env="production", backup_before_migrate=True))) == 2
    config = Config(database_url=sqlite_url, env="production")
    assert migrations.upgrade(config).after == (HEAD,), "the shipped revisions pass the review"


def test_start_flag_allows_destructive_for_this_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`invoke start --allow-destructive` hands the startup sequence a config that lets unmarked revisions through."""
    import bot.startup
    from bot import commands

    seen: list[Config] = []
    monkeypatch.setattr(bot.startup, "start", seen.append)
    commands.start(allow_destructive=True)
    commands.start()
    assert [config.allow_destructive_migrations for config in seen] == [True, False]
