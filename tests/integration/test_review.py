"""The production review: statements judged as they run, acknowledged per rule, once per revision, offline for PRs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot import startup
from bot.errors import Refused
from bot.migrate import api as migrations
from bot.migrate import journal
from bot.migrate.review import parsers
from bot.migrate.review.checker import sql_for_parser
from bot.migrate.review.parsers import read_sql
from bot.migrate.review.rules import RULES
from bot.migrate.review.situation import ColumnFacts
from bot.migrate.review.statements import ColumnType
from bot.migrate.review.type_changes import safe_type_change
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.database import database_state, query, schema, sync_engine, versions
from tests.support.environment import ROOT, TOKEN, clean_env, plain
from tests.support.logs import events_named
from tests.support.revisions import HEAD, NEXT, add_revision, later, revision_source, revisions_folder


def kinds(sql: str, dialect: str) -> list[tuple[str, str | None, str | None]]:
    """(action, table, column) of every statement in a SQL text."""
    return [(action.kind, str(action.table) if action.table else None, action.column)
            for action in read_sql(sql, dialect).actions()]


def test_sql_is_read_by_a_real_parser() -> None:
    """Comments, several statements, IF EXISTS, ONLY, quoted names, CTEs and multi-action ALTERs are all read."""
    assert kinds("-- note\nDROP TABLE legacy; UPDATE users SET a = 1", "postgresql") == [
        ("drop table", "legacy", None), ("update", "users", None)]
    assert kinds('ALTER TABLE IF EXISTS ONLY "Users" ADD COLUMN x int, DROP COLUMN "Name"', "postgresql") == [
        ("add column", "Users", "x"), ("drop column", "Users", "Name")]
    assert kinds("WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone", "postgresql") == [
        ("other", None, None), ("delete", "users", None)]
    assert kinds("ALTER TABLE `users` ADD COLUMN x INT, DROP COLUMN y; RENAME TABLE a TO b", "mysql") == [
        ("add column", "users", "x"), ("drop column", "users", "y"), ("rename table", "a", None)]
    assert kinds("/* batch */ DELETE FROM Users WHERE id = ?", "sqlite") == [("delete", "users", None)]
    unreadable = kinds("ALTER TABLE users FROBNICATE", "postgresql")
    assert unreadable == [("unreadable", None, None)]


def test_driver_placeholders_are_swapped_for_the_parser() -> None:
    """psycopg's and PyMySQL's %(name)s placeholders become the dialect's own, and %% a single %."""
    statement = "UPDATE users SET username = %(name)s WHERE username LIKE '100%%' AND id = %(id)s"
    assert sql_for_parser(statement, {"name": "a", "id": 1}, "pyformat", "postgresql") == \
        "UPDATE users SET username = $1 WHERE username LIKE '100%' AND id = $2"
    assert sql_for_parser(statement, {"name": "a", "id": 1}, "pyformat", "mysql").count("?") == 2
    assert sql_for_parser("SELECT 1", {}, "pyformat", "postgresql") == "SELECT 1", "no parameters, no rewriting"


@pytest.mark.parametrize(("dialect", "old", "new", "safe"), [
    ("postgresql", ColumnType("varchar", (64,)), ColumnType("varchar", (128,)), True),
    ("postgresql", ColumnType("varchar", (64,)), ColumnType("varchar", (32,)), False),
    ("postgresql", ColumnType("varchar", (64,)), ColumnType("text"), True),
    ("postgresql", ColumnType("numeric", (10, 2)), ColumnType("numeric", (12, 2)), True),
    ("postgresql", ColumnType("numeric", (10, 2)), ColumnType("numeric", (12, 3)), False),
    ("postgresql", ColumnType("integer"), ColumnType("bigint"), False),
    ("postgresql", ColumnType("cidr"), ColumnType("inet"), True),
    ("mysql", ColumnType("varchar", (64,)), ColumnType("varchar", (128,)), True),
    ("mysql", ColumnType("varchar", (32,)), ColumnType("varchar", (128,)), False),
    ("sqlite", ColumnType("integer"), ColumnType("bigint"), True),
    ("sqlite", ColumnType("varchar", (10,)), ColumnType("integer"), False),
])
def test_known_safe_type_changes_per_database(dialect: str, old: ColumnType, new: ColumnType, safe: bool) -> None:
    """Widening VARCHAR is metadata-only on PostgreSQL, in place on MySQL within one length prefix; others rewrite."""
    octets = old.params[0] * 4 if dialect == "mysql" and old.params else None  # utf8mb4
    assert bool(safe_type_change(dialect, ColumnFacts(old, True, octets), new, (15,))) is safe


def drop_username(project: Path, revision: str = NEXT, down: str = HEAD, header: str = "") -> None:
    """Give the project copy a revision that drops users.username."""
    add_revision(project, revision_source('op.drop_column("users", "username")', "pass", message="drop usernames",
                                          revision=revision, down_revision=down, header=header),
                 f"{revision}_drop.py")


@pytest.mark.slow
def test_refusal_names_the_rule_then_flag_variable_and_acknowledgement_apply(project: Path,
                                                                            postgres_url: URL) -> None:
    """Production refuses an unacknowledged drop (exit 6, unchanged); the flag, the variable or `reviewed` apply it."""
    env = clean_env(DATABASE_URL=plain(postgres_url), ENV="production", LOG_FORMAT="json")
    assert run_invoke(project, "migrate", env=env).returncode == 0
    drop_username(project)
    refused = run_invoke(project, "migrate", env=env)
    assert refused.returncode == 6, refused.stderr
    failed = events_named(refused.stderr, "command failed")[-1]
    assert failed["rule"] == "drop-column" and failed["revision"] == NEXT
    assert "drop-column on users.username" in str(failed["error"]) and "nothing was changed" in str(failed["error"])
    assert 'reviewed = {"drop-column": "why it is safe"}' in str(failed["error"]), "the fix says how to acknowledge"
    assert "username" in schema(postgres_url)["users"] and versions(postgres_url) == [HEAD]

    allowed = run_invoke(project, "migrate", "--allow-destructive", env=env)
    assert allowed.returncode == 0, allowed.stderr
    assert events_named(allowed.stderr, "destructive migration allowed")[0]["rule"] == "drop-column"
    assert "username" not in schema(postgres_url)["users"]

    add_revision(project, revision_source('op.drop_column("users", "language_code")', "pass", message="drop lang",
                                          revision=later(2), down_revision=NEXT), f"{later(2)}_lang.py")
    assert run_invoke(project, "migrate", env={**env, "ALLOW_DESTRUCTIVE_MIGRATIONS": "true"}).returncode == 0
    add_revision(project, revision_source('op.drop_column("users", "last_seen_at")', "pass", message="drop seen",
                                          revision=later(3), down_revision=later(2),
                                          header='reviewed = {"drop-column": "never read since 1.4"}'),
                 f"{later(3)}_seen.py")
    acknowledged = run_invoke(project, "migrate", env=env)
    assert acknowledged.returncode == 0, acknowledged.stderr
    assert events_named(acknowledged.stderr, "migration finding acknowledged")[0]["reason"] == "never read since 1.4"
    engine = sync_engine(postgres_url)
    try:
        with engine.connect() as connection:
            steps = {entry.revision: entry for entry in journal.entries(connection, kinds=["step"])
                     if entry.status == journal.APPLIED}
            reviews = journal.entries(connection, kinds=["review"])
    finally:
        engine.dispose()
    kept = json.loads(steps[later(3)].details or "{}")["review"]
    assert kept == [{"rule": "drop-column", "level": "danger", "target": "users.last_seen_at",
                     "verdict": "acknowledged", "reason": "never read since 1.4", "why": kept[0]["why"],
                     "statement": "ALTER TABLE users DROP COLUMN last_seen_at"}]
    assert json.loads(steps[NEXT].details or "{}")["review"][0]["verdict"] == "allowed by operator"
    assert [(entry.revision, entry.success) for entry in reviews] == [(NEXT, False)], "the refusal is journaled"


def test_development_warns_and_applies(sqlite_url: URL, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Development reports a finding as a warning and applies the revision anyway."""
    source = revision_source('op.drop_column("users", "username")', "pass", message="drop usernames")
    ini = revisions_folder(tmp_path, (f"{NEXT}_drop.py", source))
    migrations.upgrade(Config(database_url=sqlite_url, alembic_ini=ini), HEAD)
    assert migrations.upgrade(Config(database_url=sqlite_url, alembic_ini=ini)).after == (NEXT,)
    warned = [record for record in caplog.records if "migration finding" in record.getMessage()]
    assert len(warned) == 1 and "drop-column" in warned[0].getMessage()


@pytest.mark.parametrize("guarded", [True, False])
def test_revision_code_runs_once_per_migrate(any_url: URL, tmp_path: Path, guarded: bool) -> None:
    """upgrade() runs once, for real; MySQL/MariaDB's pre-flight renders it offline first unless it opts out."""
    calls = tmp_path / "calls.txt"
    body = (f"mode = 'offline' if context.is_offline_mode() else 'online'\n"
            f"if {'not context.is_offline_mode()' if guarded else 'True'}:\n"
            f"    open({str(calls)!r}, 'a').write(mode + '\\n')\n"
            'op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))')
    source = revision_source(body, "pass", message="count calls", header="from alembic import context")
    ini = revisions_folder(tmp_path / "history", (f"{NEXT}_calls.py", source))
    migrations.upgrade(Config(database_url=any_url, alembic_ini=ini, env="production"))
    preflight = any_url.get_backend_name() in ("mysql", "mariadb") and not guarded
    assert calls.read_text().split() == (["offline", "online"] if preflight else ["online"])


def test_mysql_preflight_refuses_before_any_revision_runs(mariadb_url: URL, tmp_path: Path) -> None:
    """On MariaDB a refused drop in a later revision stops the run before the earlier one's DDL commits."""
    add = revision_source('op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))', "pass",
                          message="add nickname")
    drop = revision_source('op.drop_column("users", "username")', "pass", message="drop usernames", revision=later(2),
                           down_revision=NEXT)
    ini = revisions_folder(tmp_path, (f"{NEXT}_add.py", add), (f"{later(2)}_drop.py", drop))
    migrations.upgrade(Config(database_url=mariadb_url, alembic_ini=ini), HEAD)
    with pytest.raises(Refused) as refused:
        migrations.upgrade(Config(database_url=mariadb_url, alembic_ini=ini, env="production"))
    assert "rendered offline, before any of them ran" in refused.value.line()
    assert refused.value.fields["revision"] == later(2)
    assert versions(mariadb_url) == [HEAD] and "nickname" not in schema(mariadb_url)["users"]
    details = query(mariadb_url, "SELECT details FROM toolkit_journal WHERE kind = 'review'")
    assert json.loads(details[0][0])["checked"] == "offline"


def test_mysql_refusal_after_ddl_of_the_same_revision_is_half_applied(mariadb_url: URL, tmp_path: Path) -> None:
    """A revision that cannot be rendered offline is checked as it runs; a refusal after its DDL is half-applied."""
    body = ('op.get_bind().execute(sa.text("SELECT count(*) FROM users")).scalar()\n'
            'op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))\n'
            'op.drop_column("users", "username")')
    ini = revisions_folder(tmp_path, (f"{NEXT}_mixed.py", revision_source(body, "pass", message="mixed")))
    migrations.upgrade(Config(database_url=mariadb_url, alembic_ini=ini), HEAD)
    production = Config(database_url=mariadb_url, alembic_ini=ini, env="production")
    with pytest.raises(Refused) as refused:
        migrations.upgrade(production)
    assert "half-applied" in refused.value.line() and f"invoke stamp --to {NEXT}" in refused.value.line()
    assert "nickname" in schema(mariadb_url)["users"] and "username" in schema(mariadb_url)["users"]
    assert database_state(production).current == (HEAD,)
    with pytest.raises(Refused, match="half-applied"):
        migrations.upgrade(production)


@pytest.mark.slow
def test_raising_revision_is_a_failed_migration_in_migrate_and_start(project: Path, postgres_url: URL) -> None:
    """A revision that raises exits 4 naming it and its error, in `migrate` and in `start`, never 6."""
    add_revision(project, revision_source('raise RuntimeError("the data is not what I expected")', "pass",
                                          message="raises"))
    env = clean_env(DATABASE_URL=plain(postgres_url), ENV="production", LOG_FORMAT="json", BOT_TOKEN=TOKEN)
    for task in ("migrate", "start"):
        result = run_invoke(project, task, env=env)
        assert result.returncode == 4, result.stderr
        failed = events_named(result.stderr, "command failed")[-1]
        assert f"revision {NEXT} (raises) failed" in str(failed["error"]) and "data is not what I expected" in \
            str(failed["error"])
    assert versions(postgres_url) == [HEAD]


@pytest.mark.slow
def test_x_arguments_reach_revisions(project: Path, tmp_path: Path) -> None:
    """`-x key=value` on migrate reaches context.get_x_argument() as with `alembic -x`; without it the dict is empty."""
    body = ("tenant = context.get_x_argument(as_dictionary=True).get('tenant', 'none')\n"
            "op.create_table(f'settings_{tenant}', sa.Column('id', sa.Integer(), primary_key=True))")
    add_revision(project, revision_source(body, "pass", message="per tenant", header="from alembic import context"))
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}", LOG_FORMAT="json")
    migrated = run_invoke(project, "migrate", "-x", "tenant=acme", "-x", "region=eu", env=env)
    assert migrated.returncode == 0, migrated.stderr
    database = URL.create("sqlite+aiosqlite", database=str(tmp_path / "bot.db"))
    assert "settings_acme" in schema(database)
    assert run_invoke(project, "rollback", "--yes", "--no-backup", env=env).returncode == 0
    assert run_invoke(project, "migrate", env=env).returncode == 0
    assert "settings_none" in schema(database)


@pytest.mark.slow
def test_review_command_reports_pending_findings_and_exits_7(project: Path, postgres_url: URL) -> None:
    """`invoke review` lists each pending revision's findings, marks unrenderable ones, exits 7, applies nothing."""
    env = clean_env(DATABASE_URL=plain(postgres_url), LOG_FORMAT="json")
    assert run_invoke(project, "migrate", env=env).returncode == 0
    drop_username(project)
    drop_username(project, later(2), NEXT, header='reviewed = {"drop-column": "agreed"}')
    add_revision(project, revision_source('op.get_bind().execute(sa.text("SELECT 1")).scalar()', "pass",
                                          message="reads", revision=later(3), down_revision=later(2)),
                 f"{later(3)}_reads.py")
    reviewed = run_invoke(project, "review", env=env)
    assert reviewed.returncode == 7, reviewed.stderr
    assert "UNACKNOWLEDGED drop-column on users.username" in reviewed.stdout
    assert "acknowledged   drop-column on users.username" in reviewed.stdout and "reason: agreed" in reviewed.stdout
    assert f"{later(3)}  reads  (checked when applied" in reviewed.stdout
    document = json.loads(run_invoke(project, "review", "--json", env=env).stdout)
    assert [revision["checked"] for revision in document["revisions"]] == ["offline", "offline", "when applied"]
    assert document["unacknowledged"] == 1 and document["checked_when_applied"] == [later(3)]
    assert versions(postgres_url) == [HEAD], "review applies nothing"
    offline = run_invoke(project, "review", "--from", NEXT, env={**env, "DATABASE_URL": "postgresql://nobody@"
                                                                  "127.0.0.1:1/none"})
    assert offline.returncode == 0, offline.stderr
    assert f"review of 2 pending revision(s) from {NEXT}" in offline.stdout, "--from needs no database"


def test_start_flag_allows_destructive_for_this_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """`invoke start --allow-destructive` gives the startup sequence a config that lets unacknowledged findings by."""
    from bot.commands import cli

    seen: list[Config] = []
    monkeypatch.setattr(startup, "start", seen.append)
    cli.start(allow_destructive=True)
    cli.start()
    assert [config.allow_destructive_migrations for config in seen] == [True, False]


def test_shipped_revisions_pass_the_review(any_url: URL, caplog: pytest.LogCaptureFixture) -> None:
    """The project's own revisions apply in production on a fresh database with no finding at all."""
    assert migrations.upgrade(Config(database_url=any_url, env="production")).after == (HEAD,)
    assert not [record for record in caplog.records if "finding" in record.getMessage()]


def test_review_doc_lists_every_rule_with_its_level() -> None:
    """docs/REVIEW.md has a table row and a section for each rule id, with its level, and none that is not a rule."""
    text = (ROOT / "docs" / "REVIEW.md").read_text()
    rows = {match[0]: match[1] for match in re.findall(r"^\| `([a-z-]+)` \| (danger|advice)", text, re.M)}
    sections = re.findall(r"^### `([a-z-]+)`$", text, re.M)
    assert rows == {rule.id: rule.level for rule in RULES.values()}
    assert sections == list(RULES)
    for rule in RULES.values():
        named = re.findall(rf"^\| `{rule.id}` \|[^|]*\|[^|]*\|([^|]*)\|$", text, re.M)[0]
        assert set(re.findall(r"`([a-z-]+)`", named)) == set(rule.squawk), rule.id


def test_alembic_moving_its_version_row_is_not_parsed_but_a_revision_writing_it_is_judged(
        postgres_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alembic's own version-row writes skip the parser, while a revision's UPDATE of that table is still refused."""
    parsed: list[str] = []
    reader = parsers.read_sql
    monkeypatch.setattr(parsers, "read_sql", lambda sql, dialect: parsed.append(sql) or reader(sql, dialect))
    source = revision_source('op.execute("UPDATE alembic_version SET version_num = version_num")', "pass",
                             message="touch the version row")
    ini = revisions_folder(tmp_path, (f"{NEXT}_touch.py", source))
    config = Config(database_url=postgres_url, alembic_ini=ini, env="production")
    migrations.upgrade(config, HEAD)
    assert parsed and not [sql for sql in parsed if "alembic_version" in sql], "Alembic's INSERT/UPDATE unparsed"
    with pytest.raises(Refused) as refused:
        migrations.upgrade(config)
    assert refused.value.fields["rule"] == "update-without-where" and "alembic_version" in refused.value.what
    assert versions(postgres_url) == [HEAD]
