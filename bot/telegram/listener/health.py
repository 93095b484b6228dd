"""/livez, /readyz and /metrics over aiohttp (which aiogram ships), served from the bot's own event loop.

Kubernetes' conventions: /livez says only that the loop answers (never the database, or a database blip would
restart every pod); /readyz says whether this replica is fit to serve; /healthz is kept as an alias of /livez.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:  # aiohttp.web loads only when a health or webhook listener is configured
    from aiohttp import web

from bot import __version__
from bot.data.waiting import reason
from bot.errors import ConfigError
from bot.logs import get_logger

log = get_logger("bot.telegram.health")

DATABASE_CHECK_TIMEOUT = 2.0
# Every role a replica can be in; /readyz accepts the ones that know what they are doing.
ROLES = ("starting", "leader", "standby", "lost", "webhook")
READY_ROLES = ("leader", "standby", "webhook")
LIVENESS_PATHS = ("/livez", "/healthz")
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"


@dataclass
class RuntimeState:
    """What this replica is doing right now, read by the health endpoints and the admin notices."""

    mode: str
    heads: tuple[str, ...] = ()
    started_at: float = field(default_factory=time.monotonic)
    role: str = "starting"
    username: str | None = None
    bot_ok: bool = False
    conflict: bool = False
    draining: bool = False
    revision: str | None = None

    def uptime_s(self) -> float:
        """Seconds since the bot's loop started."""
        return round(time.monotonic() - self.started_at, 1)


@dataclass(frozen=True)
class Check:
    """One readiness condition and why it holds or not."""

    ok: bool
    detail: str


DatabaseCheck = Callable[[], Awaitable[Check]]


async def check_database(engine: AsyncEngine, state: RuntimeState) -> Check:
    """Reachable within two seconds and exactly at the scripts' heads."""
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT):
            async with engine.connect() as connection:
                rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except TimeoutError:
        return Check(False, f"no answer within {DATABASE_CHECK_TIMEOUT:g}s")
    except Exception as error:  # noqa: BLE001 - any driver error means "not ready", reported by type
        return Check(False, f"{type(error).__name__}: {reason(error)}")
    current = tuple(sorted(rows))
    state.revision = ",".join(current) or None
    if set(current) != set(state.heads):
        return Check(False, f"at {state.revision or 'base'}, head is {','.join(state.heads) or 'none'}")
    return Check(True, f"at head {state.revision}")


MetricsRender = Callable[[str | None], tuple[bytes, str]]


def add_health_routes(app: web.Application, state: RuntimeState, database: DatabaseCheck,
                      metrics: MetricsRender | None = None) -> None:
    """Mount /livez (and /healthz), /readyz and, given a renderer, /metrics on an aiohttp application."""
    from aiohttp import web  # see the TYPE_CHECKING import above

    async def livez(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **_identity(state)})

    async def readyz(_request: web.Request) -> web.Response:
        checks = {
            "database": await database(),
            "telegram": Check(state.bot_ok, f"getMe ok as @{state.username}" if state.bot_ok else "getMe not done"),
            "role": _role(state),
        }
        ready = all(check.ok for check in checks.values())
        body = {"status": "ready" if ready else "not ready", **_identity(state),
                "checks": {name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()}}
        return web.json_response(body, status=200 if ready else 503)

    for path in LIVENESS_PATHS:
        app.router.add_get(path, livez)
    app.router.add_get(READINESS_PATH, readyz)
    if metrics is not None:
        app.router.add_get(METRICS_PATH, _metrics_endpoint(metrics))


def _metrics_endpoint(render: MetricsRender) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /metrics: Prometheus' text format, or OpenMetrics when the scraper asks for it."""
    from aiohttp import web  # see the TYPE_CHECKING import above

    async def serve_metrics(request: web.Request) -> web.Response:
        body, content_type = render(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return serve_metrics


def _identity(state: RuntimeState) -> dict[str, object]:
    """Who answers: enough to tell replicas apart in a dashboard."""
    return {"version": __version__, "mode": state.mode, "role": state.role, "revision": state.revision,
            "uptime_s": state.uptime_s()}


def _role(state: RuntimeState) -> Check:
    """Ready once the replica knows its role (leader, standby or webhook); not while draining or in a 409 conflict.

    A polling standby is ready on purpose: it is what takes over, and a Deployment whose standbys never became
    ready would stall every rolling update and break its PodDisruptionBudget.
    """
    if state.draining:
        return Check(False, "draining before shutdown")
    if state.conflict:
        return Check(False, "getUpdates answered 409 Conflict: another process polls this token")
    if state.role not in READY_ROLES:
        return Check(False, f"role not known yet ({state.role})")
    if state.role == "standby":
        return Check(True, "standing by to take over polling")
    return Check(True, "polling" if state.role == "leader" else "serving webhooks")


async def start_site(app: web.Application, host: str, port: int, *, purpose: str) -> web.AppRunner:
    """Listen on host:port; a port already in use is a clear configuration error."""
    from aiohttp import web  # see the TYPE_CHECKING import above

    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        variable = "HEALTH_PORT" if purpose == "health" else "WEBHOOK_PORT"
        raise ConfigError(f"cannot listen on {host}:{port} for {purpose}", error.strerror or str(error),
                          f"pick a free port in {variable} (or fix {variable.replace('PORT', 'HOST')})") from None
    log.info("listening", purpose=purpose, host=host, port=port)
    return runner
