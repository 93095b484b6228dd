"""Tell the admins (ADMIN_IDS) that the bot started, failed to migrate, or stopped, through plain Bot API calls."""

from __future__ import annotations

import socket
import time

from bot import __version__
from bot.errors import ToolkitError
from bot.logs import get_logger
from bot.redact import redact
from bot.settings.config import Config
from bot.telegram.outbound.botapi import BotApiError, call

log = get_logger("bot.telegram.notify")

# The whole notice, all admins together, never holds up the exit code longer than this.
NOTIFY_TIMEOUT = 3.0


def enabled(config: Config) -> bool:
    """Notices need somewhere to go and a token to send them with."""
    return bool(config.admin_ids) and config.bot_token is not None


def notify_admins(config: Config, kind: str, text: str, *, timeout: float = NOTIFY_TIMEOUT) -> int:
    """Send `text` to every admin within `timeout` seconds in total; return how many got it, never raise."""
    if not enabled(config):
        return 0
    text = redact(text, config.secrets())
    deadline = time.monotonic() + timeout
    delivered = 0
    for admin in config.admin_ids:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            log.warning("admin notification failed", kind=kind, admin_id=admin, reason="out of time")
            continue
        try:
            call(config, "sendMessage", {"chat_id": admin, "text": text, "disable_notification": kind == "stop"},
                 timeout=remaining)
        except BotApiError as error:
            log.warning("admin notification failed", kind=kind, admin_id=admin, reason=error.reason)
            continue
        delivered += 1
    log.info("admin notification sent", kind=kind, delivered=delivered, admins=len(config.admin_ids))
    return delivered


def started_text(*, username: str | None, revision: str | None, applied: int, duration_ms: float,
                 role: str) -> str:
    """What an admin reads when a replica comes up."""
    migrations = f"{applied} migration(s) applied in {duration_ms:.0f} ms" if applied else "no migrations applied"
    return (f"✅ @{username or 'bot'} started on {socket.gethostname()}\n"
            f"version {__version__}, revision {revision or 'none'}\n{migrations}\nrole: {role}")


def took_over_text(*, username: str | None) -> str:
    """A standby became the poller: the previous leader stopped or died."""
    return f"🔁 @{username or 'bot'} on {socket.gethostname()} took over polling"


def stopped_text(*, username: str | None, reason: str, drained: int, cut: int) -> str:
    """What an admin reads when a replica stops."""
    return (f"⏹ @{username or 'bot'} stopped on {socket.gethostname()} ({reason})\n"
            f"in-flight updates: {drained} finished, {cut} cut off")


def migration_failed_text(error: ToolkitError) -> str:
    """What an admin reads before the process exits 4."""
    return (f"❌ migration failed on {socket.gethostname()} (version {__version__}); the bot is not running\n"
            f"{error.line()}")


def alert_migration_failed(config: Config, error: ToolkitError) -> None:
    """The fail-fast alert: one bounded attempt, then the caller exits 4 whatever happened."""
    notify_admins(config, "migration failed", migration_failed_text(error))
