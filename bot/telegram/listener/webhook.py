"""Webhook mode: every replica serves Telegram's POSTs behind a load balancer, checking the secret token."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.errors import ConfigError
from bot.logs import get_logger
from bot.settings.config import Config
from bot.telegram.listener.health import RuntimeState, start_site
from bot.telegram.tracker import HandlerTracker

log = get_logger("bot.telegram.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
REGISTER_ATTEMPTS = 5  # replicas starting together can make Telegram throttle setWebhook (429 retry_after)
REJECT_LOG_INTERVAL = 10.0


class GuardedRequestHandler(SimpleRequestHandler):
    """aiogram's handler, plus: 401 logged (rate-limited) on a wrong secret, 503 while draining."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, state: RuntimeState, secret_token: str) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret_token)
        self.state = state
        self.rejected = 0
        self._last_logged = -REJECT_LOG_INTERVAL

    async def handle(self, request: web.Request) -> web.Response:
        if self.state.draining:
            # Telegram retries a failed delivery, and the load balancer sends it to a replica that is up.
            return web.Response(status=503, text="draining")
        if not secrets.compare_digest(request.headers.get(SECRET_HEADER, ""), self.secret_token or ""):
            self.rejected += 1
            if time.monotonic() - self._last_logged >= REJECT_LOG_INTERVAL:
                self._last_logged = time.monotonic()
                log.warning("webhook request rejected", reason="wrong or missing secret token",
                            remote=request.remote, rejected=self.rejected)
        return await super().handle(request)


async def serve_webhook(config: Config, bot: Bot, dispatcher: Dispatcher, tracker: HandlerTracker,
                        state: RuntimeState, stop: asyncio.Event,
                        mount_health: Callable[[web.Application], None] | None = None) -> tuple[int, int]:
    """Listen, register the webhook, serve until a stop, then refuse new updates and drain; return (drained, cut)."""
    assert config.webhook_url is not None and config.webhook_secret is not None
    app = web.Application()
    handler = GuardedRequestHandler(dispatcher, bot, state, config.webhook_secret.reveal())
    app.router.add_post(config.webhook_path, handler.handle)
    if mount_health is not None:
        mount_health(app)
    runner = await start_site(app, config.webhook_host, config.webhook_port, purpose="webhook")
    try:
        if not await _register(config, bot, dispatcher, stop):
            return 0, 0
        log.info("webhook registered", bot_id=bot.id, url=config.webhook_url, path=config.webhook_path,
                 listen=f"{config.webhook_host}:{config.webhook_port}")
        state.role = "webhook"
        await stop.wait()
        state.draining = True
        # The webhook stays registered: the other replicas keep serving it (rolling deploys).
        return await tracker.drain(config.shutdown_timeout)
    finally:
        await runner.cleanup()


async def _register(config: Config, bot: Bot, dispatcher: Dispatcher, stop: asyncio.Event) -> bool:
    """setWebhook, waiting out Telegram's throttling; False when a stop arrived meanwhile."""
    assert config.webhook_url is not None and config.webhook_secret is not None
    for attempt in range(1, REGISTER_ATTEMPTS + 1):
        try:
            await bot.set_webhook(config.webhook_url, secret_token=config.webhook_secret.reveal(),
                                  allowed_updates=dispatcher.resolve_used_update_types(), drop_pending_updates=False)
            return True
        except TelegramBadRequest as error:
            raise ConfigError(f"Telegram refused WEBHOOK_URL {config.webhook_url}", error.message,
                              "use a public https:// address on port 443, 80, 88 or 8443") from None
        except TelegramRetryAfter as error:
            if attempt == REGISTER_ATTEMPTS:
                raise
            log.warning("webhook registration throttled", bot_id=bot.id, retry_after_s=error.retry_after,
                        attempt=attempt)
            try:
                await asyncio.wait_for(stop.wait(), error.retry_after)
                return False
            except TimeoutError:
                continue
    return False
