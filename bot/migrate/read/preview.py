"""--sql: the SQL an upgrade or downgrade would run, rendered by Alembic's offline mode; nothing is changed.

The database is only read (its current revision, so the script starts where the database stands);
no lock is taken and no statement of the script is executed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory

from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate.baseline.standin import fresh_scripts
from bot.migrate.graph import alembic_config, current_heads, load_scripts, plan_steps, planned
from bot.migrate.session import read_on_connection
from bot.settings.config import Config

log = get_logger("bot.preview")


def render_sql(config: Config, direction: str, target: str) -> str:
    """The SQL script from the database's current revision to `target`, for the configured dialect."""
    alembic_cfg = alembic_config(config)
    scripts = load_scripts(alembic_cfg)
    heads = _current(config)
    if not heads and direction == "upgrade":  # a fresh database would take the baseline: show its statements
        scripts = fresh_scripts(scripts, config.database_url.get_dialect()(), target)
    steps = plan_steps(scripts, direction, target, heads)
    if not steps:
        log.info("nothing to render", direction=direction, target=target, current=list(heads))
        return f"-- nothing to {direction}: the database is already at {', '.join(heads) or 'base'}\n"
    return _render(alembic_cfg, scripts, steps, heads, target, direction, config)


def _current(config: Config) -> tuple[str, ...]:
    """The database's revisions, read without a lock; a SQLite file that does not exist yet is at base."""
    url = config.database_url
    if url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists():
        return ()
    return read_on_connection(config, current_heads)


def _render(alembic_cfg: Any, scripts: ScriptDirectory, steps: list[RevisionStep], heads: tuple[str, ...],
            target: str, direction: str, config: Config) -> str:
    """Run env.py in offline mode over exactly these steps, noting which one is being rendered."""
    buffer = io.StringIO()
    current: list[RevisionStep] = []

    def each_step(_rev: Any, _context: MigrationContext) -> Iterator[RevisionStep]:
        for step in steps:
            current[:] = [step]
            yield step
        current.clear()

    try:
        with EnvironmentContext(alembic_cfg, scripts, fn=each_step, as_sql=True, starting_rev=list(heads) or None,
                                destination_rev=target, output_buffer=buffer):
            scripts.run_env()
    except Exception as error:  # noqa: BLE001 - any failure to render is reported for its step, no traceback
        step = planned(current[0]) if current else None
        text = str(error).strip()
        why = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__
        dialect = config.database_url.get_backend_name()
        if step is None:
            raise Refused(f"the SQL for this {direction} cannot be rendered offline", why,
                          "run the command without --sql on a copy of the database to see what it does") from None
        log.error("sql preview failed", revision=step.revision, direction=direction, reason=why)
        hint = ("SQLite batch operations reflect the live table, which offline mode cannot do: "
                if dialect == "sqlite" and "batch" in why.lower() else "")
        raise Refused(f"revision {step.revision} ({step.message}) cannot be rendered as SQL for {dialect}",
                      f"{hint}{why}",
                      "read that revision's file instead, or run the command without --sql on a copy of the database"
                      ) from None
    return buffer.getvalue()
