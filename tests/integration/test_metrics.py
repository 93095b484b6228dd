"""/metrics over real HTTP in polling and webhook mode, the per-update log context, and docs/METRICS.md kept true."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL

from bot import __version__
from bot.logs import configure_logging
from bot.settings.loading import load_config
from bot.telegram.listener.health import Check, RuntimeState, add_health_routes
from bot.telegram.listener.metrics import BotMetrics
from tests.support.bots import (
    http_json,
    in_process_webhook_bot,
    message_update,
    metric_value,
    post_update,
    run_in_thread,
    scrape_metrics,
)
from tests.support.environment import ROOT, TOKEN, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import json_lines

SECRET = "metrics-webhook-secret"


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """Metric name -> (type, label names), from the table in docs/METRICS.md."""
    rows: dict[str, tuple[str, frozenset[str]]] = {}
    text = (ROOT / "docs" / "METRICS.md").read_text(encoding="utf-8")
    for line in text.partition("## What each metric says")[2].splitlines():
        match = re.match(r"^\|\s*`([a-z_]+)`\s*\|\s*(\w+)\s*\|\s*([^|]*)\|", line)
        if match:
            labels = frozenset(word.strip() for word in match.group(3).split(",") if word.strip() not in ("", "—"))
            rows[match.group(1)] = (match.group(2), labels)
    return rows


def served_metrics(text: str) -> dict[str, tuple[str, frozenset[str] | None]]:
    """Metric name as queried -> (type, label names or None when it has no samples yet), from an exposition."""
    served: dict[str, tuple[str, frozenset[str] | None]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        served[name] = (family.type, frozenset(labels) if family.samples else None)
    return served


def test_metrics_md_lists_exactly_what_metrics_serves() -> None:
    """Every metric GET /metrics serves has a row in docs/METRICS.md with its type and labels, and no row is stale."""
    state = RuntimeState(mode="polling", heads=("0002",), role="leader")
    metrics = BotMetrics(state, pool_in_use=lambda: 0, in_flight=lambda: 0)
    metrics.record_migration("applied", [12.5])

    async def check() -> Check:
        return Check(True, "at head 0002")

    async def scrape() -> tuple[int, str, str]:
        app = web.Application()
        add_health_routes(app, state, check, metrics.render)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/metrics")
            return response.status, response.headers["Content-Type"], await response.text()

    status, content_type, text = asyncio.run(scrape())
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    served = served_metrics(text)
    documented = documented_metrics()
    assert len(documented) > 20, "the table of docs/METRICS.md was not found"
    assert sorted(set(served) - set(documented)) == [], "add these to docs/METRICS.md"
    assert sorted(set(documented) - set(served)) == [], "docs/METRICS.md lists metrics /metrics does not serve"
    for name, (kind, labels) in served.items():
        assert documented[name][0] == kind, f"{name}: served as a {kind}, documented as a {documented[name][0]}"
        if labels is not None:
            assert documented[name][1] == labels, f"{name}: served with labels {sorted(labels)}"


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """Log at DEBUG for one test (the per-update summary is a debug line), then back to the suite's INFO."""
    configure_logging("DEBUG", "json")
    yield
    configure_logging("INFO", "json")


def _wait_for_metric(url: str, sample: str, total: float, timeout: float = 20.0) -> dict[str, Any]:
    """Scrape until the sum of a sample over its labels reaches `total`; return that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        families = scrape_metrics(url)
        found = sum(sample_.value for family in families.values() for sample_ in family.samples
                    if sample_.name == sample)
        if found >= total or time.monotonic() > deadline:
            return families
        time.sleep(0.1)


def test_polling_bot_serves_metrics_and_logs_every_update_with_its_context(
        sqlite_url: URL, telegram: FakeTelegram, capsys: pytest.CaptureFixture[str], debug_logging: None) -> None:
    """Polling over real HTTP: counts by type/handler/outcome, API results, role, migration; each line has the ids."""
    from bot.migrate.api import upgrade
    from bot.telegram.runner import StartInfo, run_bot

    port = free_port()
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url,
                          "HEALTH_PORT": str(port), "SHUTDOWN_TIMEOUT": "2"})
    report = upgrade(config)  # its steps become the start's migration metrics
    capsys.readouterr()
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}

    def client() -> None:
        telegram.wait_for("getUpdates", token=TOKEN, timeout=30)
        telegram.push_message(TOKEN, "/start", user_id=1001)
        telegram.wait_for("sendMessage", token=TOKEN, count=1)
        telegram.fail_next["sendMessage"] = [{"ok": False, "error_code": 400,
                                              "description": "Bad Request: chat not found"}]
        telegram.push_message(TOKEN, "/help", user_id=1004)
        telegram.wait_for("sendMessage", token=TOKEN, count=2)
        telegram.push_message(TOKEN, "/help", user_id=1002)
        telegram.push_message(TOKEN, "just chatting", user_id=1003)
        edited = message_update(0, "edited text", user_id=1005)["message"]
        telegram.push_update(TOKEN, {"edited_message": {**edited, "edit_date": int(time.time())}})
        seen["metrics"] = _wait_for_metric(f"{base}/metrics", "bot_updates_handled_total", 5)
        seen["livez"] = http_json(f"{base}/livez")
        os.kill(os.getpid(), signal.SIGTERM)

    errors = run_in_thread(client)
    run_bot(config, StartInfo.of(report))
    assert not errors, errors
    families = seen["metrics"]

    def value(sample: str, **labels: str) -> float | None:
        return metric_value(families, sample, **labels)

    assert value("bot_updates_received_total", update_type="message") == 4
    assert value("bot_updates_received_total", update_type="edited_message") == 1
    handled = {(s.labels["update_type"], s.labels["handler"], s.labels["outcome"]): s.value
               for s in families["bot_updates_handled"].samples}
    assert handled == {("message", "greet", "handled"): 1, ("message", "show_help", "error"): 1,
                       ("message", "show_help", "handled"): 1, ("message", "count_message", "handled"): 1,
                       ("edited_message", "none", "unhandled"): 1}
    assert value("bot_handler_duration_seconds_count", handler="show_help") == 2
    assert value("bot_api_requests_total", method="sendMessage", result="ok") == 2
    assert value("bot_api_requests_total", method="sendMessage", result="bad_request") == 1
    assert (value("bot_api_requests_total", method="getMe", result="ok") or 0) >= 1
    assert value("bot_leader") == 1 and value("bot_role", role="leader") == 1 and value("bot_role", role="standby") == 0
    assert value("bot_build_info", version=__version__, schema_head="0002") == 1
    assert value("bot_migration_runs_total", result="applied") == 1 and value("bot_migration_steps_total") == 2
    assert value("bot_migration_step_duration_seconds_count") == 2
    assert value("bot_db_pool_connections_in_use") == 0 and value("bot_updates_in_flight") == 0
    assert (value("process_cpu_seconds_total") or 0) > 0
    assert seen["livez"][0] == 200 and seen["livez"][1]["role"] == "leader"

    lines: list[dict[str, Any]] = json_lines(capsys.readouterr().err)
    finished = [line for line in lines if line["event"] == "update finished"]
    assert len(finished) == 5 and all(line["level"] == "debug" and line["duration_ms"] >= 0 for line in finished)
    by_user = {line["user_id"]: line for line in finished}
    assert by_user[1001]["handler"] == "greet" and by_user[1001]["chat_id"] == 1001
    assert (by_user[1005]["outcome"], by_user[1005]["handler"], by_user[1005]["update_type"]) == \
        ("unhandled", "none", "edited_message")
    sql = [line for line in lines if line["logger"].startswith("sqlalchemy.engine") and "users" in line["event"]]
    assert sql and all(line.get("update_id") and line.get("user_id") and line.get("handler") for line in sql), sql
    failed = [line for line in lines if line["event"] == "update failed"]
    assert len(failed) == 1 and failed[0]["handler"] == "show_help" and failed[0]["chat_id"] == 1004
    assert "TelegramBadRequest" in failed[0]["error"] and "Traceback" in failed[0]["exception"]
    assert [line for line in lines if line["logger"] == "aiogram.event"] == [], "aiogram's copies are dropped"
    stopped = [line for line in lines if line["event"] == "bot stopped"]
    assert stopped and "update_id" not in stopped[0] and "handler" not in stopped[0], "the context ends with the update"


def test_webhook_bot_serves_metrics_on_the_shared_port(sqlite_url: URL, telegram: FakeTelegram) -> None:
    """Webhook mode over real HTTP: /metrics beside the webhook on one port, role `webhook`, updates counted."""
    from bot.telegram.runner import run_bot

    config, url, port = in_process_webhook_bot(sqlite_url, telegram, SECRET, "/hook", SHUTDOWN_TIMEOUT="2")
    seen: dict[str, Any] = {}

    def client() -> None:
        telegram.wait_for("setWebhook", token=TOKEN, timeout=30)
        deadline = time.monotonic() + 10
        while http_json(f"http://127.0.0.1:{port}/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["posts"] = [post_update(url, message_update(71, "/help", user_id=71), SECRET)[0],
                         post_update(url, message_update(72, "hello", user_id=72), SECRET)[0]]
        seen["metrics"] = _wait_for_metric(f"http://127.0.0.1:{port}/metrics", "bot_updates_handled_total", 2)
        os.kill(os.getpid(), signal.SIGTERM)

    errors = run_in_thread(client)
    run_bot(config)
    assert not errors, errors
    assert seen["posts"] == [200, 200]
    families = seen["metrics"]
    assert metric_value(families, "bot_role", role="webhook") == 1 and metric_value(families, "bot_leader") == 0
    assert metric_value(families, "bot_updates_handled_total", handler="show_help", outcome="handled") == 1
    assert metric_value(families, "bot_updates_handled_total", handler="count_message", outcome="handled") == 1
    assert metric_value(families, "bot_api_requests_total", method="setWebhook", result="ok") == 1
    assert metric_value(families, "bot_migration_runs_total", result="verified") == 1
    assert metric_value(families, "bot_migration_steps_total") == 0
