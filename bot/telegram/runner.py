"""Run the bot in this process: health, getMe, then poll as the elected leader or serve webhooks; drain on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.data.engine import create_engine
from bot.logs import get_logger
from bot.migrate.fastpath import script_heads
from bot.settings.config import Config
from bot.signals import StopSignal, current
from bot.telegram.app import build_bot, build_dispatcher
from bot.telegram.listener.health import RuntimeState, add_health_routes, check_database, start_site
from bot.telegram.listener.metrics import BotMetrics
from bot.telegram.observe import ApiCallObserver, UpdateObserver
from bot.telegram.outbound.notices import Notices
from bot.telegram.outbound.notify import started_text, stopped_text, took_over_text
from bot.telegram.outbound.pacing import FloodControl
from bot.telegram.outbound.reaching import reach_bot_api
from bot.telegram.polling.conflict import ConflictWatch
from bot.telegram.polling.leader import LeaderElection
from bot.telegram.polling.offsets import ConfirmHandled
from bot.telegram.tracker import HandlerTracker

if TYPE_CHECKING:  # aiohttp.web and aiogram's webhook server load only when health or webhooks are on
    from aiohttp import web

    from bot.migrate.report import MigrationReport

log = get_logger("bot.telegram")

POLLING_TIMEOUT = 10  # seconds Telegram holds a getUpdates open; a stop cancels it at once anyway


@dataclass(frozen=True)
class StartInfo:
    """What the start-up sequence did to the schema before the bot ran, for the start notice and the metrics."""

    applied: int = 0
    duration_ms: float = 0.0
    migration: str = "verified"  # applied, at_head (migrated on start, nothing to do), verified (only checked)
    step_durations_ms: tuple[float, ...] = ()

    @classmethod
    def of(cls, report: MigrationReport | None) -> StartInfo:
        """From what run_migrations_if_needed returned (None: MIGRATE_ON_START=false, the schema was verified)."""
        if report is None:
            return cls()
        durations = tuple(step.duration_ms for step in report.steps)
        return cls(applied=len(durations), duration_ms=report.duration_ms,
                   migration="applied" if durations else "at_head", step_durations_ms=durations)


async def serve(config: Config, stop: StopSignal, start: StartInfo | None = None) -> None:
    """Run until a stop: poll as the elected leader (or stand by), or serve webhooks; then drain and close."""
    start = start or StartInfo()
    # From the revision manifest: the health check needs the heads, not Alembic (docs/PERFORMANCE.md).
    state = RuntimeState(mode=config.mode, heads=script_heads(config.alembic_ini))
    engine = create_engine(config.database_url)
    tracker = HandlerTracker()
    metrics = BotMetrics(state, pool_in_use=_pool_in_use(engine), in_flight=lambda: tracker.in_flight)
    metrics.record_migration(start.migration, start.step_durations_ms)
    flood = FloodControl(pacing=config.telegram_pacing, max_wait=config.telegram_retry_max_wait, metrics=metrics)
    bot = build_bot(config, ConfirmHandled(tracker), ConflictWatch(state), flood, ApiCallObserver(metrics))
    dispatcher = build_dispatcher(async_sessionmaker(engine, expire_on_commit=False), tracker,
                                  UpdateObserver(metrics))
    notices = Notices(config, bot)
    mount_health = _health_mount(engine, state, metrics)
    draining = asyncio.create_task(_drain_on(stop.drain, state))
    shared_port = config.mode == "webhook" and config.health_port == config.webhook_port
    health_runner: web.AppRunner | None = None
    drained = cut = 0
    try:
        if config.health_port and not shared_port:
            from aiohttp import web  # aiohttp.web: only when a health listener is configured

            app = web.Application()
            mount_health(app)
            health_runner = await start_site(app, config.health_host, config.health_port, purpose="health")
        me = await reach_bot_api(bot, config, stop.drain)  # getMe, cached on the Bot for polling
        if me is None:
            return
        state.bot_ok, state.username = True, me.username
        log.info("bot connected", bot_id=me.id, username=me.username)
        await check_database(engine, state)

        def started(role: str) -> None:
            notices.send("start", started_text(username=me.username, revision=state.revision,
                                               applied=start.applied, duration_ms=start.duration_ms, role=role))

        if config.mode == "webhook":
            from bot.telegram.listener.webhook import serve_webhook  # aiogram's webhook server: webhook mode only

            started("webhook (every replica serves)")
            drained, cut = await serve_webhook(config, bot, dispatcher, tracker, state, stop.drain,
                                               mount_health if shared_port else None)
        else:
            drained, cut = await _poll_as_leader(config, bot, dispatcher, tracker, state, stop.drain,
                                                 notices, metrics, started)
        log.info("bot stopped", bot_id=me.id, reason=stop.reason, drained=drained, cut=cut)
        notices.send("stop", stopped_text(username=me.username, reason=stop.reason, drained=drained, cut=cut))
    finally:
        draining.cancel()
        await notices.flush()
        if health_runner is not None:
            await health_runner.cleanup()
        await bot.session.close()
        await engine.dispose()


async def _poll_as_leader(config: Config, bot: Bot, dispatcher: Dispatcher, tracker: HandlerTracker,
                          state: RuntimeState, stop: asyncio.Event, notices: Notices, metrics: BotMetrics,
                          started: Callable[[str], None]) -> tuple[int, int]:
    """Elect one poller per token through the database; return what its terms drained and cut in total."""
    drained = cut = 0
    announced = False

    def on_role(role: str) -> None:
        nonlocal announced
        if not announced and role in ("leader", "standby"):
            announced = True
            started(role)

    async def lead(lost: asyncio.Event, took_over: bool) -> None:
        nonlocal drained, cut
        if took_over:
            metrics.takeovers.inc()
            notices.send("takeover", took_over_text(username=state.username))
        term_drained, term_cut = await _poll(config, bot, dispatcher, tracker, state, stop, lost)
        drained, cut = drained + term_drained, cut + term_cut

    await LeaderElection(config, bot.id, state, stop, on_role=on_role).run(lead)
    return drained, cut


async def _poll(config: Config, bot: Bot, dispatcher: Dispatcher, tracker: HandlerTracker, state: RuntimeState,
                stop: asyncio.Event, lost: asyncio.Event) -> tuple[int, int]:
    """Poll until a stop or a lost lock, then drain in-flight handlers and acknowledge what they finished."""
    await _remove_leftover_webhook(bot)
    log.info("polling started", bot_id=bot.id)
    tracker.begin_polling()
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False,
                                                           polling_timeout=POLLING_TIMEOUT))
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
    try:
        await asyncio.wait([polling, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not polling.done():
            await dispatcher.stop_polling()
        await polling
        tracker.polling = False
    log.info("polling stopped", bot_id=bot.id, reason="leadership lost" if lost.is_set() else "stop requested")
    drained, cut = await tracker.drain(config.shutdown_timeout)
    if not lost.is_set():
        await _acknowledge(bot, tracker)
    return drained, cut


async def _remove_leftover_webhook(bot: Bot) -> None:
    """getUpdates answers 409 while a webhook is set, and aiogram does not remove it: do it here."""
    try:
        info = await bot.get_webhook_info()
        if info.url:
            log.warning("leftover webhook removed", bot_id=bot.id, url=info.url,
                        pending_updates=info.pending_update_count)
            await bot.delete_webhook(drop_pending_updates=False)
    except TelegramAPIError as error:
        # Polling retries on its own; if a webhook is really set, `polling conflict` will say so.
        log.warning("webhook check failed", bot_id=bot.id, reason=error.message)


async def _acknowledge(bot: Bot, tracker: HandlerTracker) -> None:
    """Confirm the handled updates now, so the next leader does not receive them again (but does receive a cut
    one, and the ones after it: Telegram's offset is a watermark)."""
    offset = tracker.confirm_offset()
    if offset is None:
        return
    try:
        await bot.get_updates(offset=offset, limit=1, timeout=0)
    except TelegramAPIError as error:
        log.warning("updates not acknowledged", bot_id=bot.id, offset=offset, reason=error.message)


def _health_mount(engine: AsyncEngine, state: RuntimeState,
                  metrics: BotMetrics) -> Callable[[web.Application], None]:
    """A function that mounts /livez, /healthz, /readyz (checking this engine) and /metrics on an app."""

    def mount(app: web.Application) -> None:
        add_health_routes(app, state, lambda: check_database(engine, state), metrics.render)

    return mount


def _pool_in_use(engine: AsyncEngine) -> Callable[[], int | None]:
    """Read, at scrape time, how many connections the bot's pool has checked out (None for a pool without one)."""

    def read() -> int | None:
        checkedout = getattr(engine.pool, "checkedout", None)
        return int(checkedout()) if callable(checkedout) else None

    return read


async def _drain_on(stop: asyncio.Event, state: RuntimeState) -> None:
    """From the first stop signal on, /readyz answers 503 in either mode, so traffic moves to other replicas."""
    await stop.wait()
    state.draining = True


def run_bot(config: Config, start: StartInfo | None = None, stop: StopSignal | None = None) -> None:
    """Block until the bot stops; a second stop signal cuts the drain short (exit 8).

    `stop` is the command's stop signal: one that arrived during start-up makes the bot drain at once.
    """
    signal_owner = stop or current()

    async def main() -> None:
        await signal_owner.serving(lambda: serve(config, signal_owner, start))

    asyncio.run(main())
