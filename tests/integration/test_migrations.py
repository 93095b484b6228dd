"""The migration API end to end on real databases: schema, data, history and the stairway."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.data.engine import ensure_sqlite_folder
from bot.data.urls import sync_url
from bot.errors import ConfigError, Refused
from bot.migrate import api as migrations
from bot.migrate.graph import TOOLKIT_TABLES
from bot.settings.config import Config
from tests.support.database import database_state, revision_list, versions
from tests.support.database import query as execute
from tests.support.environment import plain
from tests.support.revisions import HEAD, SHIPPED


def inspect_schema(url: URL) -> dict[str, set[str]]:
    """Tables and their columns, read through a plain sync connection."""
    ensure_sqlite_folder(url)
    engine = sa.create_engine(sync_url(url))
    try:
        inspector = sa.inspect(engine)
        return {table: {column["name"] for column in inspector.get_columns(table)}
                for table in inspector.get_table_names() if table not in TOOLKIT_TABLES}
    finally:
        engine.dispose()


def test_full_lifecycle_keeps_data_where_it_should(any_url: URL) -> None:
    """migrate → history → rollback → rollback-base → migrate leaves the schema and rows each step promises."""
    config = Config(database_url=any_url)
    report = migrations.upgrade(config)
    assert [step.revision for step in report.steps] == list(SHIPPED)
    assert report.after == (HEAD,)
    assert inspect_schema(any_url)["users"] >= {"id", "first_name", "last_seen_at", "message_count"}

    history = revision_list(config)
    assert [(info.revision, info.applied, info.is_current) for info in history] == [
        (revision, True, revision == HEAD) for revision in SHIPPED[::-1]]

    execute(any_url, "INSERT INTO users (id, first_name, message_count) VALUES (7, 'Ann', 5)")
    report = migrations.rollback(config, to="0001")
    assert [step.revision for step in report.steps] == list(SHIPPED[:0:-1]) and report.after == ("0001",)
    schema = inspect_schema(any_url)
    assert "message_count" not in schema["users"] and "last_seen_at" not in schema["users"]
    assert execute(any_url, "SELECT id, first_name FROM users") == [(7, "Ann")]
    state = database_state(config)
    assert state.current == ("0001",) and [info.revision for info in state.pending] == list(SHIPPED[1:])

    report = migrations.rollback_to_base(config, confirm=lambda plan: True)
    assert [step.revision for step in report.steps] == ["0001"]
    assert inspect_schema(any_url) == {}

    assert migrations.upgrade(config).after == (HEAD,)
    assert database_state(config).at_head


def test_stairway_every_revision_up_down_up(any_url: URL) -> None:
    """Each revision upgrades, downgrades back to exactly the previous schema, and upgrades again."""
    config = Config(database_url=any_url)
    previous_schema = inspect_schema(any_url)
    for revision in SHIPPED:
        migrations.upgrade(config, to=revision)
        upgraded = inspect_schema(any_url)
        migrations.rollback(config, steps=1)
        assert inspect_schema(any_url) == previous_schema, f"downgrade of {revision} did not reverse it"
        migrations.upgrade(config, to=revision)
        assert inspect_schema(any_url) == upgraded
        previous_schema = upgraded


def test_upgrade_at_head_is_a_no_op(sqlite_url: URL) -> None:
    """A second upgrade applies nothing and reports the same revision."""
    config = Config(database_url=sqlite_url)
    migrations.upgrade(config)
    report = migrations.upgrade(config)
    assert report.steps == () and report.before == report.after == (HEAD,)


def test_rollback_at_base_and_bad_targets(sqlite_url: URL) -> None:
    """Rolling back too far or to an unknown revision is a one-line input error and changes nothing."""
    config = Config(database_url=sqlite_url)
    migrations.upgrade(config, to="0001")
    with pytest.raises(ConfigError, match="cannot downgrade"):
        migrations.rollback(config, steps=3)
    with pytest.raises(ConfigError, match="cannot downgrade"):
        migrations.rollback(config, to="nope")
    with pytest.raises(ConfigError, match="--steps 0"):
        migrations.rollback(config, steps=0)
    with pytest.raises(ConfigError, match="both given"):
        migrations.rollback(config, steps=2, to="base")
    assert database_state(config).current == ("0001",)


def test_unconfirmed_rollback_changes_nothing(sqlite_url: URL) -> None:
    """A confirmation that says no refuses the rollback and every table stays."""
    config = Config(database_url=sqlite_url)
    migrations.upgrade(config, to="0002")
    before = inspect_schema(sqlite_url)
    seen = []
    with pytest.raises(Refused):
        migrations.rollback_to_base(config, confirm=lambda plan: seen.append(plan) or False)
    assert [step.revision for step in seen[0].steps] == ["0002", "0001"]
    assert inspect_schema(sqlite_url) == before
    assert database_state(config).current == ("0002",)


def test_unknown_database_revision_is_refused(sqlite_url: URL) -> None:
    """A database stamped with a revision the scripts do not know is refused before any change."""
    config = Config(database_url=sqlite_url)
    migrations.upgrade(config)
    execute(sqlite_url, "UPDATE alembic_version SET version_num = 'ffff'")
    assert database_state(config).unknown == ("ffff",)
    before = inspect_schema(sqlite_url)
    with pytest.raises(Refused, match="ffff"):
        migrations.upgrade(config)
    with pytest.raises(Refused, match="ffff"):
        migrations.rollback(config)
    assert execute(sqlite_url, "SELECT version_num FROM alembic_version") == [("ffff",)]
    assert inspect_schema(sqlite_url) == before


def test_development_refuses_a_stale_schema(sqlite_url: URL) -> None:
    """In development, run_migrations_if_needed never migrates and refuses while revisions are pending."""
    config = Config(database_url=sqlite_url)
    with pytest.raises(Refused, match=r"revision\(s\) behind head"):
        migrations.run_migrations_if_needed(config)
    assert not Path(sqlite_url.database or "").parent.exists(), "start never creates the database"
    migrations.upgrade(config)
    assert migrations.run_migrations_if_needed(config) is None


def test_production_migrates_on_start(sqlite_url: URL) -> None:
    """In production, run_migrations_if_needed upgrades to head (is_production says which mode applies)."""
    assert Config(env="production").is_production and not Config().is_production
    report = migrations.run_migrations_if_needed(Config(env="production", database_url=sqlite_url))
    assert report is not None and report.after == (HEAD,)


def test_the_migrate_command_freezes_what_it_loads_and_the_api_alone_does_not(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`invoke migrate` freezes its modules and scripts for the rest of its process; an API caller's are left alone."""
    frozen = gc.get_freeze_count()
    migrations.upgrade(Config(database_url=sqlite_url))
    assert gc.get_freeze_count() == frozen and versions(sqlite_url) == [HEAD]
    migrations.rollback_to_base(Config(database_url=sqlite_url), confirm=None)
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    cli.migrate()
    assert gc.get_freeze_count() > frozen and gc.isenabled()
    assert versions(sqlite_url) == [HEAD]
