"""Graceful drain, in-process: a real SIGTERM while a handler waits on a slow Bot API."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from sqlalchemy.engine import URL

from bot.settings import load_config
from tests.support.bots import sigterm_after
from tests.support.environment import TOKEN, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named, json_lines


def _sigterm_during_reply(telegram: FakeTelegram, text: str) -> threading.Thread:
    """Once the bot polls, send it `text`; SIGTERM this process as soon as its reply is on the way."""

    def act() -> None:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        telegram.push_message(TOKEN, text, user_id=777)
        telegram.wait_for("sendMessage", token=TOKEN, timeout=10)
        time.sleep(0.2)

    return sigterm_after(act)



def test_sigterm_lets_a_slow_handler_deliver_its_reply(sqlite_url: URL, telegram: FakeTelegram,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM mid-handler: polling stops, the reply still goes out, the update is acknowledged, admins told."""
    from bot.telegram.runner import run_bot

    telegram.method_delays["sendMessage"] = 1.2
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "SHUTDOWN_TIMEOUT": "5", "ADMIN_IDS": "5002"})
    thread = _sigterm_during_reply(telegram, "/help")
    started = time.monotonic()
    run_bot(config)
    thread.join(5)
    assert time.monotonic() - started < 20
    delivered = [call for call in telegram.completed if call.method == "sendMessage"
                 and call.params["chat_id"] == "777"]
    assert len(delivered) == 1 and "/me" in delivered[0].params["text"]
    notices = [call.params["text"] for call in telegram.completed if call.method == "sendMessage"
               and call.params["chat_id"] == "5002"]
    assert len(notices) == 2 and "role: leader" in notices[0] and "1 finished, 0 cut off" in notices[1]
    err = capsys.readouterr().err
    stopped = events_named(err, "bot stopped")[0]
    assert (stopped["drained"], stopped["cut"], stopped["reason"]) == (1, 0, "stopped by SIGTERM")
    names = [name for name in (e.get("event") for e in json_lines(err)) if name in
             ("stop requested", "polling stopped", "draining", "bot stopped")]
    assert names == ["stop requested", "polling stopped", "draining", "bot stopped"]
    assert telegram.updates[TOKEN] == [], "the handled update was acknowledged, so no next poller gets it again"


def test_drain_cuts_a_handler_that_outlives_shutdown_timeout(sqlite_url: URL, telegram: FakeTelegram,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A handler slower than SHUTDOWN_TIMEOUT is cut within the timeout, and counted and named in the logs."""
    from bot.telegram.runner import run_bot

    telegram.method_delays["sendMessage"] = 4.0
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "SHUTDOWN_TIMEOUT": "0.3"})
    thread = _sigterm_during_reply(telegram, "/help")
    started = time.monotonic()
    run_bot(config)
    thread.join(5)
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    stopped = events_named(err, "bot stopped")[0]
    assert (stopped["drained"], stopped["cut"]) == (0, 1)
    cut = events_named(err, "handlers cut")[0]
    assert cut["level"] == "warning" and len(cut["update_ids"]) == 1
    assert not [call for call in telegram.completed if call.method == "sendMessage"], "the reply was cut"



def test_a_signal_during_start_up_is_deferred_to_a_safe_point() -> None:
    """A SIGTERM during start-up is recorded, not raised mid-import; the next safe point stops cleanly."""
    from bot.errors import Interrupted
    from bot.startup import DeferredStop

    before = signal.getsignal(signal.SIGTERM)
    deferred = DeferredStop()
    with deferred.installed():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs here and must not raise
        assert deferred.requested() == "SIGTERM"
        with pytest.raises(Interrupted, match="stopped by SIGTERM"):
            deferred.check()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_just_before_the_runner_starts_is_not_lost(sqlite_url: URL, telegram: FakeTelegram,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A stop handed over from start-up stops the bot before it ever polls."""
    from bot.telegram.runner import run_bot

    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    run_bot(config, early_stop=lambda: "SIGTERM")
    assert telegram.calls_to("getUpdates") == []
    stopped = events_named(capsys.readouterr().err, "bot stopped")[0]
    assert stopped["reason"] == "stopped by SIGTERM" and stopped["drained"] == 0


def test_a_second_signal_cuts_the_drain_short(sqlite_url: URL, telegram: FakeTelegram,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM then SIGINT during a long drain: the run ends at once with Interrupted (exit 8)."""
    from bot.errors import Interrupted
    from bot.telegram.runner import run_bot

    telegram.method_delays["sendMessage"] = 6.0
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "SHUTDOWN_TIMEOUT": "30"})

    def act() -> None:
        _sigterm_during_reply(telegram, "/help").join(15)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=act, daemon=True).start()
    with pytest.raises(Interrupted, match="second signal") as stopped:
        run_bot(config)
    assert stopped.value.exit_code == 8
    forced = events_named(capsys.readouterr().err, "stop forced")
    assert forced and forced[0]["signal"] == "SIGINT"
