"""The Bot API at start: retried within BOT_API_WAIT_TIMEOUT, then exit 9; and the docs list every code and variable."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.commands import cli
from bot.errors import ExitCode
from tests.support.commands import EventStream, run_task, spawn
from tests.support.environment import ROOT, TOKEN, TOOLKIT_VARIABLES, clean_env, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named, json_lines


@pytest.mark.slow
def test_unreachable_bot_api_is_retried_then_exits_9(sqlite_url: URL, monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A Bot API nobody answers is retried with backoff for BOT_API_WAIT_TIMEOUT, then start exits 9 with one line."""
    for name, value in {"ENV": "production", "DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN,
                        "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}", "BOT_API_WAIT_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert run_task(cli.start) == ExitCode.BOT_API_UNREACHABLE == 9
    elapsed = time.monotonic() - started
    err = capfd.readouterr().err
    waits = events_named(err, "waiting for bot api")
    assert len(waits) >= 2 and waits[0]["host"] == "127.0.0.1" and waits[1]["retry_in_s"] > waits[0]["retry_in_s"]
    final = json_lines(err)[-1]
    assert final["exit_code"] == 9 and "unreachable after 2s" in str(final["error"])
    assert 2 <= elapsed < 20
    assert "Traceback" not in err and TOKEN.split(":")[1] not in err


def test_bot_api_host_that_does_not_exist_exits_9_at_once(sqlite_url: URL, monkeypatch: pytest.MonkeyPatch,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    """A TELEGRAM_API_URL whose host name does not resolve ends start at once (exit 9) naming the host."""
    for name, value in {"ENV": "production", "DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN,
                        "TELEGRAM_API_URL": "http://bot-api.invalid:8081", "BOT_API_WAIT_TIMEOUT": "60"}.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert run_task(cli.start) == 9
    err = capfd.readouterr().err
    assert time.monotonic() - started < 20  # vs. the 60 s wait
    assert not events_named(err, "waiting for bot api")
    assert "host 'bot-api.invalid' does not resolve" in str(json_lines(err)[-1]["error"])


@pytest.mark.slow
def test_bot_api_that_recovers_during_the_wait_is_used(project: Path, telegram: FakeTelegram) -> None:
    """Two 502s from getMe are waited out; the bot then connects, polls, and stops on SIGTERM with exit 0."""
    telegram.fail_next["getMe"] = [{"ok": False, "error_code": 502, "description": "Bad Gateway"}] * 2
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, BOT_API_WAIT_TIMEOUT="30")
    process = spawn(project, "start", env=env)
    stream = EventStream(process)
    try:
        stream.wait_for("bot connected", timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert len(stream.events("waiting for bot api")) == 2
    assert len(telegram.calls_to("getMe")) == 3


@pytest.mark.slow
def test_sigterm_while_waiting_for_the_bot_api_stops_start_with_exit_0(project: Path) -> None:
    """SIGTERM during the Bot API wait ends start at once with exit 0, as a stop always does, not after the wait."""
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
                    BOT_API_WAIT_TIMEOUT="60")
    process = spawn(project, "start", env=env)
    stream = EventStream(process)
    try:
        stream.wait_for("waiting for bot api", timeout=60)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - signalled < 10  # vs. the 60 s wait
    finally:
        if process.poll() is None:
            process.kill()
    assert stream.events("bot api wait stopped") and "Traceback" not in stream.stderr()


def test_readme_lists_every_exit_code_and_variable() -> None:
    """README's exit-code table is ExitCode, and its variable table and .env.example name every toolkit variable."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    codes = [int(code) for code in re.findall(r"^\| (\d+) \|", readme, re.M)]
    assert codes == [int(code) for code in ExitCode]
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in TOOLKIT_VARIABLES:
        assert f"`{name}`" in readme or f"`${name}`" in readme, f"{name} is not in README's variable table"
        assert re.search(rf"^#? ?{name}=", example, re.M) or name == "PORT", f"{name} is not in .env.example"
