"""/healthz and /readyz over real HTTP from a real `invoke start`, and the health JSON in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import URL

from bot.health import Check, RuntimeState, add_health_routes
from tests.conftest import PG_ADMIN, TOKEN, clean_env, free_port, plain
from tests.fake_telegram import FakeTelegram
from tests.helpers_db import HEAD
from tests.test_leader import Replica, http_json, wait_until


def test_readyz_names_each_failing_check_and_healthz_stays_up() -> None:
    """A standby is alive (200) but not ready (503); so is a leader in a 409 conflict; each check says why."""
    state = RuntimeState(mode="polling", heads=("0002",), role="standby", bot_ok=True, username="b", revision="0002")

    async def database() -> Check:
        return Check(True, "at head 0002")

    async def scenario() -> tuple[int, dict[str, object], int, dict[str, object], int]:
        app = web.Application()
        add_health_routes(app, state, database)
        async with TestClient(TestServer(app)) as client:
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
            health_body, ready_body = await health.json(), await ready.json()
            state.role, state.serving, state.conflict = "leader", True, True
            conflicted = await client.get("/readyz")
            assert conflicted.status == 503
            assert "409 Conflict" in (await conflicted.json())["checks"]["serving"]["detail"]
            state.conflict = False
            ready_now = await client.get("/readyz")
            return health.status, health_body, ready.status, ready_body, ready_now.status

    health_status, health_body, ready_status, ready_body, ready_later = asyncio.run(scenario())
    assert health_status == 200 and health_body["role"] == "standby" and health_body["revision"] == "0002"
    assert isinstance(health_body["uptime_s"], float)
    assert ready_status == 503 and ready_body["status"] == "not ready"
    assert ready_body["checks"] == {"database": {"ok": True, "detail": "at head 0002"},
                                    "telegram": {"ok": True, "detail": "getMe ok as @b"},
                                    "serving": {"ok": False, "detail": "standing by"}}
    assert ready_later == 200


def _allow_connections(database: str, allowed: bool) -> None:
    """Take a PostgreSQL database down for clients (and kick the current ones), or bring it back."""
    import psycopg

    with psycopg.connect(**PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


@pytest.mark.slow
def test_health_endpoints_of_a_real_start(project: Path, postgres_url: URL, telegram: FakeTelegram) -> None:
    """Ready only after migrations and getMe; not ready while the database is down; ready again after."""
    port = free_port()
    replica = Replica(project, clean_env(ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url,
                                         DATABASE_URL=plain(postgres_url), HEALTH_PORT=str(port)))
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> dict[str, object] | None:
            try:
                status, body = http_json(f"{base}/readyz")
            except OSError:
                return None
            return body if status == 200 else None

        body = wait_until(ready, 40, "/readyz to answer 200")
        assert body["role"] == "leader" and body["revision"] == HEAD and body["mode"] == "polling"
        names = [event["event"] for event in replica.events]
        assert names.index("migrations complete") < names.index("listening") < names.index("polling started")

        _allow_connections(postgres_url.database or "", False)
        try:
            down = wait_until(lambda: (lambda r: r[1] if r[0] == 503 else None)(http_json(f"{base}/readyz")),
                              10, "/readyz to answer 503")
            assert down["checks"]["database"]["ok"] is False, down
            assert http_json(f"{base}/healthz")[0] == 200, "the process is alive even when the database is not"
            wait_until(lambda: replica.named("leadership lost") or replica.named("leader election failed"), 10,
                       "the leader to notice")
        finally:
            _allow_connections(postgres_url.database or "", True)
        started = time.monotonic()
        wait_until(ready, 15, "/readyz to recover")
        print(f"ready again {time.monotonic() - started:.2f}s after the database came back")
        assert replica.stop() == 0
    finally:
        if replica.process.poll() is None:
            replica.process.kill()
