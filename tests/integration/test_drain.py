"""Graceful drain, in-process: a real SIGTERM while a handler waits on a slow Bot API."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from sqlalchemy.engine import URL

from bot.settings.config import Config
from bot.settings.loading import load_config
from tests.support.bots import sigterm_after, wait_until
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



@pytest.mark.slow
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


def _run_until_a_reply_is_cut(sqlite_url: URL, telegram: FakeTelegram) -> Config:
    """Run the bot in-process until SIGTERM, with a reply slower than SHUTDOWN_TIMEOUT; return its config."""
    from bot.telegram.runner import run_bot

    telegram.method_delays["sendMessage"] = 4.0
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "SHUTDOWN_TIMEOUT": "0.3"})
    thread = _sigterm_during_reply(telegram, "/help")
    run_bot(config)
    thread.join(5)
    return config


def test_drain_cuts_a_handler_that_outlives_shutdown_timeout(sqlite_url: URL, telegram: FakeTelegram,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A handler slower than SHUTDOWN_TIMEOUT is cut within the timeout, and counted and named in the logs."""
    started = time.monotonic()
    _run_until_a_reply_is_cut(sqlite_url, telegram)
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    stopped = events_named(err, "bot stopped")[0]
    assert (stopped["drained"], stopped["cut"]) == (0, 1)
    cut = events_named(err, "handlers cut")[0]
    assert cut["level"] == "warning" and len(cut["update_ids"]) == 1
    assert not [call for call in telegram.completed if call.method == "sendMessage"], "the reply was cut"
    assert [update["update_id"] for update in telegram.updates[TOKEN]] == cut["update_ids"], "not confirmed"


def test_the_next_leader_receives_the_cut_update_again(sqlite_url: URL, telegram: FakeTelegram,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """An update cut by SHUTDOWN_TIMEOUT is not confirmed: the next poller handles it, and confirms it then."""
    from bot.telegram.runner import run_bot

    config = _run_until_a_reply_is_cut(sqlite_url, telegram)
    telegram.method_delays.clear()
    replies = lambda: [call for call in telegram.completed  # noqa: E731
                       if call.method == "sendMessage" and call.params["chat_id"] == "777"]
    assert not replies()
    thread = sigterm_after(lambda: wait_until(replies, 30, "the cut update's reply from the next leader"))
    run_bot(config)
    thread.join(5)
    assert len(replies()) == 1 and "/me" in replies()[0].params["text"]
    assert telegram.updates[TOKEN] == [], "handled this time, so confirmed"
    assert events_named(capsys.readouterr().err, "bot stopped")[-1]["cut"] == 0


@pytest.mark.slow
def test_updates_held_back_behind_a_slow_handler_are_each_handled_once(sqlite_url: URL, telegram: FakeTelegram,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """While one handler is slow, newer updates are handled at once and exactly once, without a getUpdates storm."""
    from bot.telegram.runner import run_bot

    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    slow_user, quick_users = 700, list(range(701, 706))
    replies = lambda users: [call for call in telegram.completed  # noqa: E731
                             if call.method == "sendMessage" and int(call.params["chat_id"]) in users]
    polls_while_slow: list[int] = []

    def act() -> None:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        telegram.method_delays["sendMessage"] = 2.0
        telegram.push_message(TOKEN, "/help", user_id=slow_user)
        telegram.wait_for("sendMessage", token=TOKEN, timeout=10)  # the slow reply is under way
        telegram.method_delays.clear()
        before = len(telegram.calls_to("getUpdates", TOKEN))
        for user in quick_users:
            telegram.push_message(TOKEN, "/help", user_id=user)
        wait_until(lambda: len(replies(quick_users)) == len(quick_users), 10, "the quick replies")
        assert not replies([slow_user]), "the quick ones did not wait for the slow one"
        wait_until(lambda: replies([slow_user]), 10, "the slow reply")
        polls_while_slow.append(len(telegram.calls_to("getUpdates", TOKEN)) - before)
        time.sleep(0.5)  # a poll or two after the slow one finished, to see nothing comes twice

    thread = sigterm_after(act)
    run_bot(config)
    thread.join(5)
    assert sorted(int(call.params["chat_id"]) for call in replies([slow_user, *quick_users])) == [
        slow_user, *quick_users]
    assert polls_while_slow and polls_while_slow[0] < 30, "held-back updates are not asked for in a loop"
    assert telegram.updates[TOKEN] == []



def test_a_signal_during_start_up_is_deferred_to_a_safe_point() -> None:
    """A SIGTERM during start-up is recorded, not raised mid-import; the next safe point stops cleanly."""
    from bot.errors import Interrupted
    from bot.signals import StopSignal

    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignal()
    with stop.recorded():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs here and must not raise
        assert stop.signal_name == "SIGTERM" and stop.count == 1
        with pytest.raises(Interrupted, match="stopped by SIGTERM"):
            stop.check()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_just_before_the_runner_starts_is_not_lost(sqlite_url: URL, telegram: FakeTelegram,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A stop recorded during start-up, handed to the runner, stops the bot before it ever polls."""
    from bot.signals import StopSignal
    from bot.telegram.runner import run_bot

    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url})
    stop = StopSignal()
    stop.request(signal.SIGTERM)
    run_bot(config, stop=stop)
    assert telegram.calls_to("getUpdates") == []
    err = capsys.readouterr().err
    stopped = events_named(err, "bot stopped")[0]
    assert stopped["reason"] == "stopped by SIGTERM" and stopped["drained"] == 0
    assert events_named(err, "stop requested")[0]["signal"] == "SIGTERM"


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


def test_a_burst_beyond_the_hold_back_limit_is_handled_once_each(sqlite_url: URL, telegram: FakeTelegram) -> None:
    """150 updates at once (more than getUpdates' 100 from a held-back offset) are each handled exactly once."""
    from bot.telegram.runner import run_bot

    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "TELEGRAM_PACING": "false"})
    users = list(range(3000, 3150))
    replies = lambda: [int(call.params["chat_id"]) for call in telegram.completed  # noqa: E731
                       if call.method == "sendMessage"]

    def act() -> None:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        for user in users:
            telegram.push_message(TOKEN, "/help", user_id=user)
        wait_until(lambda: len(set(replies())) == len(users), 60, "a reply to every update")
        time.sleep(0.5)  # a poll or two more, to see nothing comes twice

    thread = sigterm_after(act)
    run_bot(config)
    thread.join(5)
    assert sorted(replies()) == users
    assert telegram.updates[TOKEN] == []
