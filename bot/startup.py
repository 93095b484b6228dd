"""The startup sequence shared by `invoke start` and `python -m bot`."""

from __future__ import annotations

from bot.config import Config
from bot.database.migrations import run_migrations_if_needed
from bot.errors import Interrupted, MigrationFailed
from bot.logs import get_logger
from bot.signals import stop_signals_raise

log = get_logger("bot.startup")


def start(config: Config) -> None:
    """Check the token, bring the schema to head (or refuse), then run the bot in this process."""
    config.require_bot_token()
    try:
        with stop_signals_raise():
            try:
                report = run_migrations_if_needed(config)
            except MigrationFailed as error:
                from bot.notify import alert_migration_failed

                alert_migration_failed(config, error)
                raise
            if report is not None:
                log.info("schema ready", revision=",".join(report.after) or None, applied=len(report.steps),
                         duration_ms=round(report.duration_ms, 1))
            from bot.telegram.runner import StartInfo, run_bot
    except Interrupted as stop:
        log.info("stopped before polling", reason=stop.line())
        return
    run_bot(config, StartInfo(applied=len(report.steps), duration_ms=report.duration_ms) if report else StartInfo())
