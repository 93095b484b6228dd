"""`invoke start` and `python -m bot` as real processes against a fake Bot API server."""

from __future__ import annotations

import gc
import signal
import sqlite3
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from bot.startup import loading_without_collection
from tests.support.commands import run_invoke, spawn
from tests.support.environment import TOKEN, clean_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named, json_lines
from tests.support.revisions import BROKEN_REVISION, HEAD, NEXT, SHIPPED, add_revision


@pytest.mark.slow
def test_start_in_production_migrates_serves_and_stops_on_sigterm(project: Path, telegram: FakeTelegram) -> None:
    """Production start migrates an empty database, answers /start, stores the user, and exits 0 on SIGTERM."""
    database = project / "data" / "bot.db"
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)
    process = spawn(project, "start", env=env)
    try:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        telegram.push_message(TOKEN, "/start", user_id=555, first_name="Zoë")
        reply = telegram.wait_for("sendMessage", token=TOKEN)[0]
        assert reply.params["chat_id"] == "555" and "Zoë" in reply.params["text"]
        with sqlite3.connect(database) as connection:
            assert connection.execute("SELECT id, first_name FROM users").fetchall() == [(555, "Zoë")]
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - stopped_at < 5
    finally:
        process.kill()
    stdout, stderr = process.communicate()
    events = json_lines(stderr)
    names = [event["event"] for event in events]
    assert names.index("configuration loaded") < names.index("migrations complete") < names.index("polling started")
    assert [event["revision"] for event in events if event["event"] == "migration applied"] == list(SHIPPED)
    assert TOKEN.split(":")[1] not in stderr
    assert stdout == "", "logs belong on stderr"


@pytest.mark.slow
def test_broken_revision_in_production_fails_fast_with_exit_4(project: Path, telegram: FakeTelegram) -> None:
    """A revision that raises stops start with exit 4, names the revision, and never polls."""
    add_revision(project, BROKEN_REVISION)
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)
    result = run_invoke(project, "start", env=env)
    assert result.returncode == 4, result.stderr
    failed = events_named(result.stderr, "migration failed")
    assert failed and failed[0]["revision"] == NEXT and "Traceback" in str(failed[0]["exception"])
    final = json_lines(result.stderr)[-1]
    assert final["level"] == "critical" and NEXT in str(final["error"]) and final["exit_code"] == 4
    assert telegram.calls_to("getUpdates") == [] and telegram.calls_to("getMe") == []
    with sqlite3.connect(project / "data" / "bot.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        columns = {row[1] for row in connection.execute("PRAGMA table_info(users)")}
    assert "nickname" not in columns, "the failed revision must be rolled back as a whole"


@pytest.mark.slow
def test_development_start_refuses_a_stale_schema(project: Path, telegram: FakeTelegram) -> None:
    """Development start on pending revisions warns with the count, exits 6 and never polls."""
    env = clean_env(ENV="development", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)
    result = run_invoke(project, "start", env=env)
    assert result.returncode == 6, result.stderr
    warning = events_named(result.stderr, "migrations skipped in development")[0]
    assert warning["level"] == "warning" and warning["pending"] == len(SHIPPED)
    assert "invoke migrate" in json_lines(result.stderr)[-1]["error"]
    assert telegram.calls == []


@pytest.mark.slow
def test_python_m_bot_runs_the_same_sequence(project: Path) -> None:
    """`python -m bot` refuses a stale development schema exactly like `invoke start`."""
    env = clean_env(ENV="development", BOT_TOKEN=TOKEN, TELEGRAM_API_URL="http://127.0.0.1:9")
    result = subprocess.run([sys.executable, "-m", "bot"], cwd=project, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 6, result.stderr
    assert events_named(result.stderr, "migrations skipped in development")[0]["pending"] == len(SHIPPED)


@pytest.mark.slow
def test_missing_token_fails_before_anything_connects(project: Path) -> None:
    """start without BOT_TOKEN exits 2 and creates no database file."""
    result = run_invoke(project, "start", env=clean_env(ENV="production"))
    assert result.returncode == 2
    assert "BOT_TOKEN" in json_lines(result.stderr)[-1]["error"]
    assert not (project / "data" / "bot.db").exists()


@pytest.mark.slow
def test_sigterm_before_polling_stops_cleanly(project: Path, telegram: FakeTelegram) -> None:
    """A SIGTERM during start-up ends the process promptly with a log line and no traceback."""
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url)
    process = spawn(project, "start", env=env)
    deadline = time.monotonic() + 30
    while not (project / "data" / "bot.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
    _, stderr = process.communicate()
    assert events_named(stderr, "stopped before polling")
    assert "Traceback" not in stderr
    assert telegram.calls_to("getUpdates") == []


@pytest.mark.slow
def test_revoked_token_exits_2_without_polling(project: Path, telegram: FakeTelegram) -> None:
    """A token Telegram rejects (getMe 401) stops start with exit 2 and one clear line, before any getUpdates."""
    telegram.fail_methods["getMe"] = (401, "Unauthorized")
    result = run_invoke(project, "start", env=clean_env(ENV="production", BOT_TOKEN=TOKEN,
                                                       TELEGRAM_API_URL=telegram.url))
    assert result.returncode == 2, result.stderr
    assert "Telegram rejected BOT_TOKEN" in json_lines(result.stderr)[-1]["error"]
    assert telegram.calls_to("getMe") and not telegram.calls_to("getUpdates")
    assert TOKEN.split(":")[1] not in result.stderr


class Leftover:
    """An object caught in a reference cycle, as a loaded-then-dropped revision module is."""

    def __init__(self) -> None:
        self.me = self


def test_bot_modules_load_with_the_collector_paused_then_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aiogram import runs with the cyclic collector off; what it built is frozen and the collector is back on."""
    monkeypatch.delitem(sys.modules, "aiogram", raising=False)
    frozen_before = gc.get_freeze_count()
    with loading_without_collection():
        assert not gc.isenabled()
        built = [[index] for index in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)


def test_garbage_left_by_a_migration_is_collected_not_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the full migration path ran (Alembic loaded), cyclic garbage is collected before the freeze."""
    monkeypatch.delitem(sys.modules, "aiogram", raising=False)
    monkeypatch.setitem(sys.modules, "alembic", sys.modules.get("alembic", sys))
    gc.disable()  # nothing collects the cycle by chance before the block
    left_behind = weakref.ref(Leftover())
    with loading_without_collection():
        pass
    assert left_behind() is None


def test_garbage_frozen_by_the_migration_is_collected_before_the_bot_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the migration path froze (its revision modules among it) is unfrozen, so its cycles are collected."""
    monkeypatch.delitem(sys.modules, "aiogram", raising=False)
    monkeypatch.setitem(sys.modules, "alembic", sys.modules.get("alembic", sys))
    gc.disable()
    left_behind = weakref.ref(Leftover())
    gc.freeze()  # as bot.collector.loading() does after a migration's scripts are loaded
    with loading_without_collection():
        pass
    assert left_behind() is None


def test_a_failed_load_still_turns_the_collector_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """An import error inside the block propagates, and the collector runs again afterwards."""
    monkeypatch.delitem(sys.modules, "aiogram", raising=False)
    with pytest.raises(ImportError), loading_without_collection():
        raise ImportError("No module named 'aiogram'")
    assert gc.isenabled()


def test_a_second_start_in_one_process_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """With aiogram already loaded there is nothing to gain: nothing is frozen and the collector stays on."""
    monkeypatch.setitem(sys.modules, "aiogram", sys.modules.get("aiogram", sys))
    frozen_before = gc.get_freeze_count()
    with loading_without_collection():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before
