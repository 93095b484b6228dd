"""Logging: JSON lines on stderr in production, stdlib loggers routed through structlog, secrets redacted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.logs import configure_logging, get_logger
from bot.redact import register
from tests.support.commands import run_invoke
from tests.support.environment import TOKEN, clean_env, plain
from tests.support.logs import events_named, json_lines
from tests.support.revisions import SHIPPED

PASSWORD = "s3cr%t@p/w:rd"


@pytest.mark.slow
def test_production_migrate_logs_only_json_without_secrets(project: Path, postgres_url: URL) -> None:
    """Every stderr line of a production migrate is JSON (Alembic's own included) and no secret appears."""
    url = postgres_url.set(password=PASSWORD)  # trust auth accepts any password
    result = run_invoke(project, "migrate", env=clean_env(ENV="production", DATABASE_URL=plain(url),
                                                          BOT_TOKEN=TOKEN))
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stderr)
    assert any(e["logger"] == "alembic.runtime.migration" and "Running upgrade" in str(e["event"]) for e in events)
    for event in events:
        assert {"timestamp", "level", "logger", "event"} <= set(event)
        assert str(event["timestamp"]).endswith("Z")
    applied = events_named(result.stderr, "migration applied")
    assert [(e["revision"], e["position"]) for e in applied] == [
        (revision, f"{number}/{len(SHIPPED)}") for number, revision in enumerate(SHIPPED, start=1)]
    assert all(isinstance(e["duration_ms"], float) for e in applied)
    for secret in (PASSWORD, "s3cr%25t", TOKEN, TOKEN.split(":")[1]):
        assert secret not in result.stderr and secret not in result.stdout


@pytest.mark.slow
def test_configuration_error_in_production_is_a_json_line(project: Path) -> None:
    """A bad variable in production is reported as one JSON error line with exit 2."""
    result = run_invoke(project, "status", env=clean_env(ENV="production", LOG_LEVEL="LOUD"))
    assert result.returncode == 2
    events = json_lines(result.stderr)
    assert len(events) == 1 and events[0]["level"] == "error" and "LOG_LEVEL" in events[0]["error"]


@pytest.mark.slow
def test_malformed_token_is_not_echoed_in_logs(project: Path) -> None:
    """A malformed token is reported without the token itself."""
    bad = "12345:this-is-a-secret but malformed"
    result = run_invoke(project, "status", env=clean_env(ENV="production", BOT_TOKEN=bad))
    assert result.returncode == 2 and "BOT_TOKEN" in result.stderr
    assert "this-is-a-secret" not in result.stderr


@pytest.mark.slow
def test_invoke_own_output_stays_plain_text(project: Path) -> None:
    """`invoke --list` and a usage error are Invoke's plain text; a usage error exits 1."""
    listing = run_invoke(project, "--list", env=clean_env(ENV="production"))
    assert listing.returncode == 0 and "migrate" in listing.stdout and not listing.stdout.startswith("{")
    usage = run_invoke(project, "rollback", "--bogus", env=clean_env(ENV="production"))
    assert usage.returncode == 1 and not usage.stderr.lstrip().startswith("{")


def test_setup_is_idempotent_and_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    """Configuring twice leaves one handler; registered secrets are blanked in our and stdlib lines."""
    configure_logging("INFO", "json")
    configure_logging("INFO", "json")
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "bot-toolkit"]
    assert len(ours) == 1
    register(["hunter2-secret"])
    get_logger("bot.test").info("token seen", value="x hunter2-secret y")
    logging.getLogger("alembic.runtime.migration").warning("url has hunter2-secret inside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == ["token seen", "url has *** inside"]
    assert lines[0]["value"] == "x *** y"


def test_alembic_chatter_is_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    """Alembic's per-connection dialect announcements never reach the output."""
    configure_logging("INFO", "json")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001, create users")
    assert [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()] == [
        "Running upgrade  -> 0001, create users"]
