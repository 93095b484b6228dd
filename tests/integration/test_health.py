"""/healthz and /readyz over real HTTP from a real `invoke start`, and the health JSON in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import URL

from bot.telegram.listener.health import Check, RuntimeState, add_health_routes
from tests.support.bots import Replica, http_json, wait_until
from tests.support.environment import PG_ADMIN, TOKEN, clean_env, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.revisions import HEAD


def test_readyz_follows_the_role_and_livez_never_asks_the_database() -> None:
    """A standby is ready (it takes over), a 409 conflict or a drain is not; /livez and /healthz stay 200 throughout."""
    state = RuntimeState(mode="polling", heads=("0002",), role="starting", bot_ok=True, username="b", revision="0002")
    database_calls: list[str] = []

    async def database() -> Check:
        database_calls.append("asked")
        return Check(True, "at head 0002")

    async def scenario() -> list[tuple[str, int, dict[str, Any]]]:
        app = web.Application()
        add_health_routes(app, state, database)
        seen: list[tuple[str, int, dict[str, Any]]] = []
        async with TestClient(TestServer(app)) as client:
            async def probe(label: str, path: str) -> None:
                response = await client.get(path)
                seen.append((label, response.status, await response.json()))

            await probe("starting", "/readyz")
            state.role = "standby"
            await probe("standby", "/readyz")
            await probe("livez", "/livez")
            await probe("healthz", "/healthz")
            calls_before_liveness = len(database_calls)
            state.role, state.conflict = "leader", True
            await probe("conflict", "/readyz")
            state.conflict = False
            await probe("leader", "/readyz")
            state.draining = True
            await probe("draining", "/readyz")
            await probe("livez while draining", "/livez")
            assert calls_before_liveness == 2, "only the two /readyz calls so far asked the database"
        return seen

    seen = {label: (status, body) for label, status, body in asyncio.run(scenario())}
    assert seen["starting"][0] == 503
    assert seen["starting"][1]["checks"]["role"] == {"ok": False, "detail": "role not known yet (starting)"}
    assert seen["standby"][0] == 200 and seen["standby"][1]["status"] == "ready"
    assert seen["standby"][1]["checks"] == {"database": {"ok": True, "detail": "at head 0002"},
                                           "telegram": {"ok": True, "detail": "getMe ok as @b"},
                                           "role": {"ok": True, "detail": "standing by to take over polling"}}
    assert seen["livez"][0] == seen["healthz"][0] == 200
    assert seen["livez"][1]["role"] == "standby" and isinstance(seen["livez"][1]["uptime_s"], float)
    assert seen["conflict"][0] == 503 and "409 Conflict" in seen["conflict"][1]["checks"]["role"]["detail"]
    assert seen["leader"][0] == 200 and seen["leader"][1]["checks"]["role"]["detail"] == "polling"
    assert seen["draining"][0] == 503 and seen["draining"][1]["checks"]["role"]["detail"] == "draining before shutdown"
    assert seen["livez while draining"][0] == 200
    assert len(database_calls) == 5, "only the five /readyz calls asked the database, never /livez or /healthz"


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
        # /readyz says leader as soon as the lock is held; `polling started` follows the webhook check.
        wait_until(lambda: replica.named("polling started"), 10, "polling to start")
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
