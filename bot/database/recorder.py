"""Journal each migration step on the migration's own connection: a committed start row, then its end.

The start row commits before the step's transaction begins, so a killed process always leaves a
trace. The end (status, finish time, duration) is written by Alembic's on_version_apply hook, inside
the step's transaction right after alembic_version moved: where DDL is transactional the two commit
or roll back together. A step that enters an autocommit block (CREATE INDEX CONCURRENTLY …) has its
row flipped to non-transactional, committed, before the block runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from bot.database import journal
from bot.logs import get_logger

if TYPE_CHECKING:
    from bot.database.steps import PlannedStep

log = get_logger("bot.migrations")


@dataclass
class StepRecorder:
    """Writes one journal row per step; bound to the migration connection while the steps run."""

    who: journal.Origin
    direction: str
    secrets: tuple[str, ...] = ()
    known_durations: Mapping[str, float] = field(default_factory=dict)
    connection: Connection | None = None
    transactional: bool = True
    entry_id: int | None = None
    step_transactional: bool = True
    started_at: datetime | None = None
    started: float = 0.0

    def context_options(self) -> dict[str, Any]:
        """What env.py merges into context.configure() so Alembic calls us inside each step's transaction."""
        return {"on_version_apply": [self._version_applied]}

    def bind(self, connection: Connection, transactional: bool) -> None:
        """Start watching the connection Alembic runs the steps on."""
        self.connection, self.transactional = connection, transactional
        event.listen(connection, "set_connection_execution_options", self._options_changed)

    def unbind(self) -> None:
        """Stop watching the connection."""
        if self.connection is not None and event.contains(self.connection, "set_connection_execution_options",
                                                          self._options_changed):
            event.remove(self.connection, "set_connection_execution_options", self._options_changed)

    def step_started(self, planned: PlannedStep) -> None:
        """Commit a running row before the step's transaction begins."""
        assert self.connection is not None, "bind() first"
        self.step_transactional = self.transactional
        self.started_at, self.started = journal.now(), time.perf_counter()
        self.entry_id = journal.committed(self.connection, lambda conn: journal.insert_entry(
            conn, kind=journal.STEP, status=journal.RUNNING, who=self.who, started_at=self.started_at,
            description=planned.message, revision=planned.revision, direction=self.direction,
            from_revision=joined(planned.source), to_revision=joined(planned.destination),
            transactional=self.transactional))

    def step_finished(self) -> None:
        """The step committed (and its row with it)."""
        self.entry_id = None

    def step_failed(self, connection: Connection, error: BaseException) -> str | None:
        """After a step raised: record it failed (rolled back) or half-applied (DDL stayed); returns the status."""
        if self.entry_id is None:
            return None
        entry_id, self.entry_id = self.entry_id, None
        status = journal.FAILED if self.step_transactional else journal.HALF_APPLIED
        values = {"status": status, "success": False, "finished_at": journal.now(),
                  "duration_ms": (time.perf_counter() - self.started) * 1000,
                  "error": journal.error_summary(error, self.secrets)}
        try:
            if connection.in_transaction():
                connection.rollback()
            journal.committed(connection, lambda conn: journal.update_entry(conn, entry_id, **values))
        except Exception as write_error:  # noqa: BLE001 - never hide the step's own error behind ours
            log.warning("journal write failed", entry_id=entry_id, status=status,
                        reason=journal.error_summary(write_error, self.secrets))
        return status

    def _version_applied(self, *, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        """Alembic's on_version_apply: alembic_version just moved, in the step's transaction; so does our row."""
        if self.entry_id is None:
            return
        status = journal.APPLIED if self.direction == "upgrade" else journal.REVERTED
        journal.update_entry(ctx.connection, self.entry_id, status=status, success=True,
                             finished_at=journal.now(), duration_ms=(time.perf_counter() - self.started) * 1000)

    def _options_changed(self, connection: Connection, options: dict[str, Any]) -> None:
        """An autocommit block is about to run: from here on this step's DDL commits as it goes."""
        if (options.get("isolation_level") == "AUTOCOMMIT" and self.entry_id is not None
                and self.step_transactional):
            self.step_transactional = False
            entry_id = self.entry_id
            journal.committed(connection, lambda conn: journal.update_entry(conn, entry_id, transactional=False))


def estimate_remaining(remaining: Sequence[str], known: Mapping[str, float],
                       done: Iterable[float]) -> tuple[float | None, str | None]:
    """Milliseconds left: earlier journal durations where known, this run's average step otherwise."""
    if not remaining:
        return 0.0, None
    finished = list(done)
    known_part = [known[revision] for revision in remaining if revision in known]
    unknown = len(remaining) - len(known_part)
    if unknown and not finished:
        return None, None
    average = sum(finished) / len(finished) if finished else 0.0
    source = "journal" if not unknown else ("run" if not known_part else "journal+run")
    return sum(known_part) + unknown * average, source


def joined(revisions: Iterable[str]) -> str | None:
    """A revision tuple as one stored or logged value (None for base)."""
    items = list(revisions)
    return ",".join(items) if items else None
