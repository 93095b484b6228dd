"""The startup sequence shared by `invoke start` and `python -m bot`."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from bot.collector import paused_then_frozen
from bot.errors import Interrupted, MigrationFailed
from bot.logs import get_logger
from bot.migrate.api import run_migrations_if_needed
from bot.settings.config import Config
from bot.signals import current
from bot.telegram.outbound.notify import alert_migration_failed

log = get_logger("bot.startup")


@contextmanager
def loading_without_collection() -> Iterator[None]:
    """Load the bot's modules with the cyclic collector paused, then freeze what they built.

    Importing aiogram builds ~200,000 long-lived objects, and the collector's passes over them while they
    are being built cost ~170 ms, 5 % of start-up (bench G3). Frozen, they are also skipped by every later
    full collection while the bot serves. The few cycles that import leaves behind stay until exit.
    """
    if "aiogram" in sys.modules:  # already loaded (a second start in one process): nothing to gain
        yield
        return
    if "alembic" in sys.modules:
        # The full migration path ran: its revision modules are garbage in cycles, which freezing would keep
        # for the bot's lifetime; one collection now is cheaper than carrying them. The migration froze what
        # it loaded (bot.collector), so that goes back to the collector first.
        gc.unfreeze()
        gc.collect()
    with paused_then_frozen():
        yield


def start(config: Config) -> None:
    """Check the token, bring the schema to head (or refuse), then run the bot in this process."""
    config.require_bot_token()
    stop = current()  # the command's one stop signal: start-up records, migrations defer, the runner drains
    with stop.recorded():
        try:
            stop.check("the signal arrived during start-up")
            try:
                report = run_migrations_if_needed(config)
            except MigrationFailed as error:
                alert_migration_failed(config, error)
                raise
            if report is not None:
                log.info("schema ready", revision=",".join(report.after) or None, applied=len(report.steps),
                         duration_ms=round(report.duration_ms, 1))
            stop.check("the signal arrived during start-up")
            with loading_without_collection():
                from bot.telegram.runner import StartInfo, run_bot  # aiogram: only once the schema is ready

            stop.check("the signal arrived during start-up")
        except Interrupted as stopped:
            log.info("stopped before polling", reason=stopped.line())
            return
        info = StartInfo.of(report)
        # Still inside: a signal in the instant before the runner installs its own handlers is recorded, and the
        # runner drains at once.
        run_bot(config, info, stop)
