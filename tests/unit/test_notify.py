"""Admin notices through the fake Bot API: delivered, bounded in time, secret-free, and sent before exit 4."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.settings.loading import load_config
from bot.telegram.outbound.notify import notify_admins
from tests.support.commands import run_invoke
from tests.support.environment import TOKEN, clean_env
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named
from tests.support.revisions import BROKEN_REVISION, NEXT, add_revision


def test_every_admin_gets_the_notice_without_secrets(telegram: FakeTelegram,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Each id in ADMIN_IDS gets one sendMessage; a secret inside the text is masked."""
    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "ADMIN_IDS": "11, 22"})
    assert notify_admins(config, "start", f"token {TOKEN} leaked?") == 2
    sent = telegram.calls_to("sendMessage", TOKEN)
    assert sorted(call.params["chat_id"] for call in sent) == ["11", "22"]
    secret_half = TOKEN.split(":")[1]
    assert all(secret_half not in call.params["text"] and "***" in call.params["text"] for call in sent)
    assert events_named(capsys.readouterr().err, "admin notification sent")[0]["delivered"] == 2


def test_a_slow_bot_api_never_holds_the_notice_past_its_timeout(telegram: FakeTelegram,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """With sendMessage hanging, the notice gives up after its timeout, logs why, and raises nothing."""
    telegram.method_delays["sendMessage"] = 5.0
    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "ADMIN_IDS": "11,22"})
    started = time.monotonic()
    assert notify_admins(config, "stop", "bye", timeout=0.5) == 0
    assert time.monotonic() - started < 1.5
    failed = events_named(capsys.readouterr().err, "admin notification failed")
    assert failed and failed[0]["admin_id"] == 11 and failed[0]["level"] == "warning"


def test_no_admins_means_no_calls(telegram: FakeTelegram) -> None:
    """Without ADMIN_IDS nothing is sent, and ADMIN_IDS is validated."""
    from bot.errors import ConfigError

    assert notify_admins(load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url}), "start", "x") == 0
    assert telegram.calls == []
    with pytest.raises(ConfigError, match="ADMIN_IDS has 'abc'"):
        load_config({"ADMIN_IDS": "12,abc"})


@pytest.mark.slow
@pytest.mark.parametrize("task", ["migrate", "start"])
def test_migration_failure_alerts_admins_before_exit_4(project: Path, telegram: FakeTelegram, task: str) -> None:
    """`invoke migrate` and `invoke start` on a broken revision alert every admin, then exit 4."""
    add_revision(project, BROKEN_REVISION)
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, ADMIN_IDS="31337")
    result = run_invoke(project, task, env=env)
    assert result.returncode == 4, result.stderr
    alert = telegram.calls_to("sendMessage", TOKEN)
    assert len(alert) == 1 and alert[0].params["chat_id"] == "31337"
    assert "migration failed" in alert[0].params["text"] and NEXT in alert[0].params["text"]
    assert TOKEN.split(":")[1] not in alert[0].params["text"]
    assert telegram.calls_to("getUpdates") == []


@pytest.mark.slow
def test_an_unreachable_bot_api_does_not_delay_exit_4(project: Path) -> None:
    """With the Bot API down, the failed alert is logged and the exit code is still 4, promptly."""
    add_revision(project, BROKEN_REVISION)
    env = clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL="http://127.0.0.1:9", ADMIN_IDS="1")
    started = time.monotonic()
    result = run_invoke(project, "migrate", env=env)
    assert result.returncode == 4, result.stderr
    assert time.monotonic() - started < 15
    assert events_named(result.stderr, "admin notification failed")[0]["admin_id"] == 1
