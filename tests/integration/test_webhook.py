"""Webhook mode, in-process: real HTTP posts to aiogram's aiohttp integration, right and wrong secrets."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Any

import pytest
from sqlalchemy.engine import URL

from bot.settings.loading import load_config
from tests.support.bots import http_json, in_process_webhook_bot, message_update, post_update, run_in_thread
from tests.support.environment import TOKEN, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named

SECRET = "s3cret-token_for-webhooks"


@pytest.mark.slow
def test_webhook_serves_updates_checks_the_secret_and_drains(sqlite_url: URL, telegram: FakeTelegram,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """setWebhook carries URL and secret; a right secret is handled, wrong/missing get 401, draining gets 503."""
    from bot.telegram.runner import run_bot

    config, url, port = in_process_webhook_bot(sqlite_url, telegram, SECRET, "/tg/hook", SHUTDOWN_TIMEOUT="5")
    seen: dict[str, Any] = {}

    def client() -> None:
        telegram.wait_for("setWebhook", token=TOKEN, timeout=30)
        seen["ready"] = http_json(f"http://127.0.0.1:{port}/readyz")
        seen["right"] = post_update(url, message_update(1, "/help"), SECRET)
        telegram.wait_for("sendMessage", token=TOKEN)
        seen["wrong"] = post_update(url, message_update(2, "/help"), "not-the-secret")
        seen["missing"] = post_update(url, message_update(3, "/help"), None)
        telegram.method_delays["sendMessage"] = 1.5
        seen["slow"] = post_update(url, message_update(4, "/help", user_id=902), SECRET)
        telegram.wait_for("sendMessage", token=TOKEN, count=2)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        seen["draining"] = post_update(url, message_update(5, "/help"), SECRET)

    errors = run_in_thread(client)
    run_bot(config)
    assert not errors, errors
    registered = telegram.calls_to("setWebhook", TOKEN)[0].params
    assert registered["url"] == url and registered["secret_token"] == SECRET
    assert "message" in json.loads(registered["allowed_updates"])
    assert seen["ready"][0] == 200 and seen["ready"][1]["role"] == "webhook", seen["ready"]
    assert seen["right"][0] == 200
    assert seen["wrong"][0] == 401 and seen["missing"][0] == 401
    assert seen["slow"][0] == 200 and seen["draining"][0] == 503
    replies = [call.params["chat_id"] for call in telegram.completed if call.method == "sendMessage"]
    assert replies == ["901", "902"], "only the right-secret updates were handled; the slow one was drained"
    err = capsys.readouterr().err
    assert events_named(err, "webhook request rejected")[0]["reason"] == "wrong or missing secret token"
    stopped = events_named(err, "bot stopped")[0]
    assert (stopped["drained"], stopped["cut"]) == (1, 0)
    assert telegram.calls_to("deleteWebhook") == [], "the webhook stays for the other replicas"
    assert SECRET not in err


def test_webhook_configuration_is_validated() -> None:
    """WEBHOOK_URL needs https (unless a self-hosted Bot API) and a WEBHOOK_SECRET of Telegram's alphabet."""
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not"):
        load_config({"WEBHOOK_URL": "https://bot.example.com/hook"})
    with pytest.raises(ConfigError, match="WEBHOOK_URL is malformed"):
        load_config({"WEBHOOK_URL": "http://bot.example.com/hook", "WEBHOOK_SECRET": "abc"})
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is malformed"):
        load_config({"WEBHOOK_URL": "https://bot.example.com/hook", "WEBHOOK_SECRET": "has space"})
    with pytest.raises(ConfigError, match="WEBHOOK_PORT"):
        load_config({"WEBHOOK_PORT": "70000"})
    config = load_config({"WEBHOOK_URL": "https://bot.example.com", "WEBHOOK_SECRET": "abc", "PORT": "3000"})
    assert (config.mode, config.webhook_path, config.webhook_port) == ("webhook", "/webhook", 3000)
    assert "abc" not in repr(config)


def test_a_webhook_url_telegram_refuses_is_a_config_error(sqlite_url: URL, telegram: FakeTelegram) -> None:
    """setWebhook answering 400 stops start with a ConfigError (exit 2) naming WEBHOOK_URL, and frees the port."""
    from bot.errors import ConfigError
    from bot.telegram.runner import run_bot

    telegram.fail_methods["setWebhook"] = (400, "Bad Request: bad webhook: HTTPS url must be provided for webhook")
    port = free_port()
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "WEBHOOK_SECRET": SECRET,
                          "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PORT": str(port)})
    with pytest.raises(ConfigError, match="Telegram refused WEBHOOK_URL") as refused:
        run_bot(config)
    assert refused.value.exit_code == 2 and "HTTPS url must be provided" in refused.value.line()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the listener was closed on the way out


def test_a_throttled_set_webhook_is_retried_after_telegrams_delay(sqlite_url: URL, telegram: FakeTelegram,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A 429 with retry_after on setWebhook (replicas starting at once) is waited out, then registration works."""
    from bot.telegram.runner import run_bot

    telegram.throttle("setWebhook", retry_after=1)
    port = free_port()
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "WEBHOOK_URL": f"http://127.0.0.1:{port}/hook", "WEBHOOK_SECRET": SECRET,
                          "WEBHOOK_HOST": "127.0.0.1", "WEBHOOK_PORT": str(port)})

    def client() -> None:
        telegram.wait_for("setWebhook", token=TOKEN, count=2, timeout=30)
        os.kill(os.getpid(), signal.SIGTERM)

    errors = run_in_thread(client)
    run_bot(config)
    assert not errors, errors
    calls = telegram.calls_to("setWebhook", TOKEN)
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.9
    err = capsys.readouterr().err
    assert events_named(err, "webhook registration throttled")[0]["retry_after_s"] == 1
    assert events_named(err, "webhook registered")
