"""MIGRATE_ON_START=false: start never migrates; it refuses a stale schema (exit 6) and runs on one at head."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.errors import Refused
from bot.settings.loading import load_config
from tests.support.environment import TOKEN, plain
from tests.support.logs import events_named
from tests.support.revisions import HEAD, SHIPPED


def test_start_refuses_pending_revisions_when_migrations_are_a_release_step(
        sqlite_url: URL, capsys: pytest.CaptureFixture[str]) -> None:
    """Production with MIGRATE_ON_START=false on an empty database: Refused (exit 6), nothing created."""
    from bot.startup import start

    config = load_config({"ENV": "production", "MIGRATE_ON_START": "false", "DATABASE_URL": plain(sqlite_url),
                          "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "http://127.0.0.1:9"})
    with pytest.raises(Refused, match="invoke migrate") as refused:
        start(config)
    assert refused.value.exit_code == 6 and "release" in refused.value.line()
    warning = events_named(capsys.readouterr().err, "migrations left to the release step")[0]
    assert warning["pending"] == len(SHIPPED) and warning["revisions"] == list(SHIPPED)
    assert not Path(sqlite_url.database or "").parent.exists(), "start never creates the database"


def test_migrate_on_start_true_in_development_migrates(sqlite_url: URL) -> None:
    """MIGRATE_ON_START=true makes a development start migrate instead of refusing."""
    from bot.migrate.api import run_migrations_if_needed

    config = load_config({"MIGRATE_ON_START": "true", "DATABASE_URL": plain(sqlite_url)})
    report = run_migrations_if_needed(config)
    assert report is not None and report.after == (HEAD,) and len(report.steps) == len(SHIPPED)
    assert run_migrations_if_needed(load_config({"DATABASE_URL": plain(sqlite_url)})) is None
