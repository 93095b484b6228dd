"""Flood control against the fake Bot API: 429s waited out (or dropped past the limit), messages paced per chat."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy.engine import URL

from bot.errors import ConfigError
from bot.settings.loading import load_config
from bot.telegram.listener.health import RuntimeState
from bot.telegram.listener.metrics import BotMetrics
from bot.telegram.outbound.pacing import FloodControl
from tests.support.bots import in_process_bot, metric_value, run_in_thread, scrape_metrics
from tests.support.environment import TOKEN, free_port
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named


def _with_bot(telegram: FakeTelegram, flood: FloodControl, use: Callable[[Bot], Awaitable[None]]) -> None:
    """Run `use(bot)` with a real aiogram Bot whose session goes through `flood`, against the fake Bot API."""
    from bot.telegram.app import build_bot

    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "ADMIN_IDS": "11,22"})

    async def main() -> None:
        bot = build_bot(config, flood)
        try:
            await use(bot)
        finally:
            await bot.session.close()

    asyncio.run(main())


def _sent_at(telegram: FakeTelegram, chat_id: int) -> list[float]:
    """When each sendMessage to this chat reached the fake, in order."""
    return [call.at for call in telegram.calls_to("sendMessage", TOKEN) if call.params["chat_id"] == str(chat_id)]


@pytest.mark.slow
def test_a_429_is_waited_out_and_one_beyond_the_maximum_wait_is_dropped(
        sqlite_url: URL, telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    """A reply answered 429 retry_after 1 is sent 1 s later; one told to wait 5 s (max 2) is dropped, logged once."""
    from bot.telegram.runner import run_bot

    port = free_port()
    config = in_process_bot(sqlite_url, telegram, HEALTH_PORT=str(port), TELEGRAM_RETRY_MAX_WAIT="2",
                            SHUTDOWN_TIMEOUT="2")
    capsys.readouterr()
    seen: dict[str, Any] = {}

    def client() -> None:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        telegram.throttle("sendMessage", retry_after=1)
        telegram.push_message(TOKEN, "/help", user_id=501)
        telegram.wait_for("sendMessage", token=TOKEN, count=2, timeout=10)
        telegram.throttle("sendMessage", retry_after=5)
        telegram.push_message(TOKEN, "/help", user_id=502)
        deadline = time.monotonic() + 10
        while metric_value(scrape_metrics(f"http://127.0.0.1:{port}/metrics"), "bot_api_calls_dropped_total",
                           method="sendMessage") != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        seen["metrics"] = scrape_metrics(f"http://127.0.0.1:{port}/metrics")
        os.kill(os.getpid(), signal.SIGTERM)

    errors = run_in_thread(client)
    run_bot(config)
    assert not errors, errors
    waited = _sent_at(telegram, 501)
    assert len(waited) == 2 and waited[1] - waited[0] >= 0.95, waited
    assert [call.params["chat_id"] for call in telegram.completed if call.method == "sendMessage"] == ["501"]
    assert len(_sent_at(telegram, 502)) == 1, "a 429 longer than the maximum wait is not retried"
    families = seen["metrics"]
    assert metric_value(families, "bot_api_requests_total", method="sendMessage", result="retry_after") == 2
    assert metric_value(families, "bot_api_requests_total", method="sendMessage", result="ok") == 1
    assert metric_value(families, "bot_api_retry_after_seconds_total", method="sendMessage") == 6
    assert metric_value(families, "bot_updates_handled_total", handler="show_help", outcome="error") == 1
    err = capsys.readouterr().err
    throttled = events_named(err, "bot api throttled")
    assert len(throttled) == 1 and throttled[0]["level"] == "warning" and throttled[0]["retry_after_s"] == 1
    assert throttled[0]["chat_id"] == 501 and throttled[0]["handler"] == "show_help" and throttled[0]["update_id"]
    dropped = events_named(err, "bot api call dropped")
    assert len(dropped) == 1 and dropped[0]["level"] == "error" and dropped[0]["user_id"] == 502
    assert (dropped[0]["retry_after_s"], dropped[0]["max_wait_s"], dropped[0]["method"]) == (5, 2.0, "sendMessage")
    assert events_named(err, "update failed") == [] and "Cause exception" not in err, "the drop is logged once"


@pytest.mark.slow
def test_messages_are_paced_per_chat_and_overall(telegram: FakeTelegram) -> None:
    """With Telegram's limits a chat gets 3 at once then 1 per second, and 33 chats share 30 per second."""
    metrics = BotMetrics(RuntimeState(mode="polling"))

    async def use(bot: Bot) -> None:
        for number in range(5):
            await bot.send_message(7001, f"one chat {number}")
        await asyncio.gather(*(bot.send_message(8000 + chat, "many chats") for chat in range(33)))

    _with_bot(telegram, FloodControl(metrics=metrics), use)
    one_chat = _sent_at(telegram, 7001)
    assert one_chat[2] - one_chat[0] < 0.9, "a burst of 3 goes out at once"
    assert one_chat[3] - one_chat[0] >= 0.95 and one_chat[4] - one_chat[0] >= 1.95, one_chat
    many = sorted(call.at for call in telegram.calls_to("sendMessage", TOKEN)
                  if call.params["chat_id"].startswith("80"))
    assert len(many) == 33 and many[-1] - many[0] >= 0.08, "past 30 in a second, the overall bucket waits"
    families = metrics.registry.collect()
    delays = {sample.labels["limit"]: sample.value for family in families for sample in family.samples
              if sample.name == "bot_api_pacing_delay_seconds_total"}
    assert delays["chat"] >= 1.5 and delays["overall"] > 0, delays


@pytest.mark.slow
def test_groups_get_their_own_slower_bucket_and_pacing_can_be_turned_off(telegram: FakeTelegram) -> None:
    """A group waits for its per-minute bucket (here 2 per second); with pacing off the same burst is not held."""

    async def burst(bot: Bot) -> None:
        for number in range(4):
            await bot.send_message(-100123, f"group {number}")

    _with_bot(telegram, FloodControl(group=(2.0, 1.0), chat=(100.0, 1.0)), burst)
    paced = _sent_at(telegram, -100123)
    assert paced[2] - paced[0] >= 0.45 and paced[3] - paced[0] >= 0.95, paced
    telegram.calls.clear()
    _with_bot(telegram, FloodControl(pacing=False, group=(2.0, 1.0), chat=(1.0, 10.0)), burst)
    unpaced = _sent_at(telegram, -100123)
    assert len(unpaced) == 4 and unpaced[3] - unpaced[0] < 0.9, unpaced


def test_admin_notices_go_through_the_same_flood_control(telegram: FakeTelegram,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A notice answered 429 retry_after 1 reaches both admins after the wait, through the bot's own session."""
    from bot.telegram.outbound.notices import Notices

    config = load_config({"BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "ADMIN_IDS": "11,22"})
    telegram.throttle("sendMessage", retry_after=1)

    async def use(bot: Bot) -> None:
        notices = Notices(config, bot, timeout=5)
        notices.send("start", f"started with {TOKEN}")
        await notices.flush()

    started = time.monotonic()
    _with_bot(telegram, FloodControl(), use)
    assert time.monotonic() - started >= 0.95
    delivered = [call for call in telegram.completed if call.method == "sendMessage"]
    assert sorted(call.params["chat_id"] for call in delivered) == ["11", "22"]
    assert all(TOKEN.split(":")[1] not in call.params["text"] for call in delivered)
    err = capsys.readouterr().err
    assert events_named(err, "bot api throttled")[0]["chat_id"] == 11
    assert events_named(err, "admin notification sent")[0]["delivered"] == 2


def test_flood_control_variables_are_validated() -> None:
    """TELEGRAM_PACING is a yes/no switch (default on) and TELEGRAM_RETRY_MAX_WAIT a number of seconds (default 30)."""
    defaults = load_config({})
    assert (defaults.telegram_pacing, defaults.telegram_retry_max_wait) == (True, 30.0)
    off = load_config({"TELEGRAM_PACING": "false", "TELEGRAM_RETRY_MAX_WAIT": "0"})
    assert (off.telegram_pacing, off.telegram_retry_max_wait) == (False, 0.0)
    with pytest.raises(ConfigError, match="TELEGRAM_PACING='sometimes' is not a yes/no value"):
        load_config({"TELEGRAM_PACING": "sometimes"})
    with pytest.raises(ConfigError, match="TELEGRAM_RETRY_MAX_WAIT='-1' is not a number of seconds"):
        load_config({"TELEGRAM_RETRY_MAX_WAIT": "-1"})
