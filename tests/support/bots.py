"""Running the bot in this process or as replicas, and talking to its HTTP endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL

from bot.settings.config import Config
from bot.settings.loading import load_config
from tests.support.environment import TOKEN, free_port, plain
from tests.support.fake_telegram import FakeTelegram


def http_json(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """GET a health endpoint and decode its JSON body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def scrape_metrics(url: str) -> dict[str, Metric]:
    """GET /metrics over HTTP and parse it with prometheus_client's own parser: family name -> family."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def metric_value(families: dict[str, Metric], sample: str, **labels: str) -> float | None:
    """The value of one sample (e.g. `bot_updates_received_total`, update_type="message"), None when absent."""
    for family in families.values():
        for found in family.samples:
            if found.name == sample and all(found.labels.get(key) == value for key, value in labels.items()):
                return float(found.value)
    return None


def post_update(url: str, body: dict[str, Any], secret: str | None) -> tuple[int, str]:
    """POST a JSON update the way Telegram does; return the status and body."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def message_update(update_id: int, text: str, user_id: int = 901) -> dict[str, Any]:
    """A private text message update, as Telegram would post it."""
    message = {"message_id": update_id, "date": int(time.time()), "text": text,
               "chat": {"id": user_id, "type": "private", "first_name": "Wu"},
               "from": {"id": user_id, "is_bot": False, "first_name": "Wu"}}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


def in_process_bot(database: URL, telegram: FakeTelegram, **variables: str) -> Config:
    """The configuration of a bot run in this process on this database and fake Bot API, the schema at head."""
    from bot.migrate.api import upgrade  # loads Alembic: only for the tests that run a bot

    config = load_config({"DATABASE_URL": plain(database), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          **variables})
    upgrade(config)
    return config


def in_process_webhook_bot(database: URL, telegram: FakeTelegram, secret: str, path: str,
                           **variables: str) -> tuple[Config, str, int]:
    """An in-process webhook bot's configuration, its webhook address and its port (health on the same port)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{path}"
    config = in_process_bot(database, telegram, WEBHOOK_URL=url, WEBHOOK_SECRET=secret, WEBHOOK_HOST="127.0.0.1",
                            WEBHOOK_PORT=str(port), HEALTH_PORT=str(port), **variables)
    return config, url, port


def run_in_thread(steps: Callable[[], None]) -> list[BaseException]:
    """Run the test's client side beside an in-process bot's loop; the steps send SIGTERM, or a failure does."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            steps()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            errors.append(error)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=body, daemon=True).start()
    return errors


class Replica:
    """A real `invoke start` process whose JSON log lines are collected as they arrive."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "invoke", "start"], cwd=project, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.raw.append(line)
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"event": "<not json>", "line": line})

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in list(self.events) if event.get("event") == name]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        self._reader.join(5)
        return code


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sigterm_after(action: Callable[[], Any]) -> threading.Thread:
    """Run `action` in a thread, then SIGTERM this process (an in-process bot's loop runs in it), even if it failed."""

    def act() -> None:
        try:
            action()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread
