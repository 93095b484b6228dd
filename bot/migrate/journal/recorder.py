"""Journal each migration step on its own connection, with no commit of its own where DDL is transactional.

Where DDL is transactional (PostgreSQL, SQLite under the migration engine's recipe), one `run` row
listing the planned steps commits before the first step, and each step's row is inserted by
Alembic's on_version_apply hook inside the step's own transaction, so it commits or rolls back with
the step. A process killed mid-step leaves an open run row; the next run, under the lock, turns it
into an `aborted` entry for the first step it has no row for. Where DDL commits as it goes
(MySQL/MariaDB, or once a step enters an autocommit block), a `running` row commits before the DDL
runs, so a killed process always leaves a trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection

from bot.data.engine import INTERNAL
from bot.logs import get_logger
from bot.migrate import journal
from bot.migrate.journal.origin import Origin
from bot.migrate.plan import PlannedStep

log = get_logger("bot.migrations")


@dataclass
class StepRecorder:
    """Writes a run row and one journal row per step; bound to the migration connection while the steps run."""

    who: Origin
    direction: str
    secrets: tuple[str, ...] = ()
    known_durations: Mapping[str, float] = field(default_factory=dict)
    connection: Connection | None = None
    transactional: bool = True
    run_id: int | None = None
    run_started_at: datetime | None = None
    planned: PlannedStep | None = None
    entry_id: int | None = None
    step_transactional: bool = True
    started_at: datetime | None = None
    started: float = 0.0
    statements_done: int | None = None  # where DDL commits as it goes: the current step's successful statements
    step_details: Callable[[], dict[str, object] | None] | None = None  # extra facts for the step's row (review)
    read_only: Callable[[], bool] | None = None  # whether the statement just run only read (the review knows)

    def context_options(self) -> dict[str, Any]:
        """What env.py merges into context.configure() so Alembic calls us inside each step's transaction."""
        return {"on_version_apply": [self._version_applied]}

    def bind(self, connection: Connection, transactional: bool) -> None:
        """Start watching the connection Alembic runs the steps on."""
        self.connection, self.transactional = connection, transactional
        event.listen(connection, "set_connection_execution_options", self._options_changed)
        if not transactional:
            event.listen(connection, "after_cursor_execute", self._statement_done)

    def unbind(self) -> None:
        """Stop watching the connection."""
        for name, listener in (("set_connection_execution_options", self._options_changed),
                               ("after_cursor_execute", self._statement_done)):
            if self.connection is not None and event.contains(self.connection, name, listener):
                event.remove(self.connection, name, listener)

    def run_started(self, steps: Sequence[PlannedStep]) -> None:
        """Transactional DDL: commit one running `run` row naming every planned step, the only commit before them."""
        assert self.connection is not None, "bind() first"
        if not self.transactional or not steps:
            return
        self.run_started_at = started_at = journal.now()
        planned = [(step.revision, step.message, joined(step.source), joined(step.destination)) for step in steps]

        def work(conn: Connection) -> int:
            run_id = journal.insert_run(conn, who=self.who, direction=self.direction,
                                        started_at=started_at, steps=planned)
            _flush_commits(conn, False)
            return run_id

        self.run_id = journal.committed(self.connection, work)

    def step_started(self, planned: PlannedStep) -> None:
        """Remember the step; commit a running row first only where its DDL will commit as it goes."""
        assert self.connection is not None, "bind() first"
        self.planned, self.entry_id, self.step_transactional = planned, None, self.transactional
        self.started_at, self.started = journal.now(), time.perf_counter()
        if not self.transactional:
            self.entry_id = journal.committed(self.connection, lambda conn: self._insert(conn, journal.RUNNING))
            self.statements_done = 0  # counted from here: the running row is ours, not the step's

    def step_finished(self) -> None:
        """The step committed (and its row with it)."""
        self.planned, self.entry_id, self.statements_done = None, None, None

    def run_finished(self, connection: Connection) -> None:
        """Every step committed: close the run row."""
        if self.run_id is not None:
            run_id, self.run_id = self.run_id, None
            journal.committed(connection, lambda conn: self._close_run(conn, run_id, success=True))

    def step_failed(self, connection: Connection, error: BaseException) -> str | None:
        """After a step (or the run) raised: record the step failed or half-applied and close the run row.

        Returns the step's status, or None when no step was running (a stop between steps).
        """
        planned, entry_id, run_id = self.planned, self.entry_id, self.run_id
        status = None
        if planned is not None:
            # Where DDL commits as it goes, a step whose first statement failed changed nothing (a DDL statement
            # is atomic on MySQL 8 and MariaDB 10.6+): a lock wait timeout there is a plain failure.
            nothing_ran = self.statements_done == 0
            status = journal.FAILED if self.step_transactional or nothing_ran else journal.HALF_APPLIED
        summary = journal.error_summary(error, self.secrets)
        ending: dict[str, object] = {"success": False, "finished_at": journal.now(),
                                     "duration_ms": (time.perf_counter() - self.started) * 1000, "error": summary}

        def work(conn: Connection) -> None:
            if entry_id is not None:
                journal.update_entry(conn, entry_id, status=status, **ending)
            elif status is not None:  # set exactly when a step was planned
                self._insert(conn, status, **ending)
            if run_id is not None:
                self._close_run(conn, run_id, success=False, error=summary)

        try:
            if connection.in_transaction():
                connection.rollback()
            journal.committed(connection, work)
        except Exception as write_error:  # noqa: BLE001 - never hide the step's own error behind ours
            log.warning("journal write failed", entry_id=entry_id, status=status,
                        reason=journal.error_summary(write_error, self.secrets))
        finally:
            self.planned, self.entry_id, self.run_id, self.statements_done = None, None, None, None
        return status

    def _close_run(self, connection: Connection, run_id: int, *, success: bool, error: str | None = None) -> None:
        assert self.run_started_at is not None
        _flush_commits(connection, True)
        journal.close_run(connection, run_id, started_at=self.run_started_at, success=success, error=error)

    def _insert(self, connection: Connection, status: str, **values: object) -> int:
        """This step's row, in the caller's transaction."""
        assert self.planned is not None and self.started_at is not None
        planned = self.planned
        return journal.insert_entry(
            connection, kind=journal.STEP, status=status, who=self.who, started_at=self.started_at,
            description=planned.message, revision=planned.revision, direction=self.direction,
            from_revision=joined(planned.source), to_revision=joined(planned.destination),
            transactional=self.step_transactional, **values)

    def _version_applied(self, *, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        """Alembic's on_version_apply: alembic_version just moved, in the step's transaction; so does our row."""
        if self.planned is None:
            return
        status = journal.APPLIED if self.direction == "upgrade" else journal.REVERTED
        ending: dict[str, object] = {"success": True, "finished_at": journal.now(),
                                     "duration_ms": (time.perf_counter() - self.started) * 1000}
        details = self.step_details() if self.step_details is not None else None
        if details:
            ending["details"] = json.dumps(details, sort_keys=True, separators=(",", ":"))
        if self.entry_id is None:
            # Not remembered: if the step's COMMIT fails (a deferred constraint), this row rolls back with it
            # and step_failed must insert the failed row rather than update one that is gone.
            self._insert(ctx.connection, status, **ending)
        else:
            journal.update_entry(ctx.connection, self.entry_id, status=status, **ending)

    def _statement_done(self, _connection: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any,
                        _executemany: bool) -> None:
        """after_cursor_execute: one more statement of the step succeeded, so it may have changed something."""
        if context is not None and any(context.execution_options.get(key) for key in INTERNAL):
            return  # the toolkit's own (journal rows, the review's catalog reads)
        if self.read_only is not None and self.read_only():
            return  # a read (Alembic's reflection, a revision's SELECT) changed nothing
        if self.statements_done is not None:
            self.statements_done += 1

    def _options_changed(self, connection: Connection, options: dict[str, Any]) -> None:
        """An autocommit block is about to run: from here on this step's DDL commits as it goes, so commit its row."""
        if options.get("isolation_level") != "AUTOCOMMIT" or self.planned is None or not self.step_transactional:
            return
        self.step_transactional = False
        self.entry_id = journal.committed(connection, lambda conn: self._insert(conn, journal.RUNNING))


def _flush_commits(connection: Connection, wait: bool) -> None:
    """PostgreSQL: steps' commits return before their WAL is on disk; the run's closing commit waits as configured.

    The closing commit's flush covers every earlier commit, so the run is as durable as one transaction when it
    reports done; a server crash mid-run can only lose whole steps (each atomic with its row and
    alembic_version), which the next run applies again. This saves one disk flush per revision.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("RESET synchronous_commit" if wait else "SET synchronous_commit TO off",
                                   execution_options=INTERNAL)


@dataclass(frozen=True)
class RemainingEstimate:
    """Milliseconds left after each step: earlier journal durations where known, this run's average otherwise.

    The sums over what is left are built once, so asking after every step stays linear in the run's length.
    """

    known_after: tuple[float, ...]  # [i]: known milliseconds of the steps after the first i
    unknown_after: tuple[int, ...]  # [i]: how many of the steps after the first i have no known duration

    @classmethod
    def of(cls, revisions: Sequence[str], known: Mapping[str, float]) -> RemainingEstimate:
        """Suffix sums over the run's revisions, in order."""
        known_after, unknown_after = [0.0], [0]
        for revision in reversed(revisions):
            duration = known.get(revision)
            known_after.append(known_after[-1] + (duration or 0.0))
            unknown_after.append(unknown_after[-1] + (duration is None))
        return cls(tuple(reversed(known_after)), tuple(reversed(unknown_after)))

    def after(self, done: int, done_ms: float) -> tuple[float | None, str | None]:
        """Milliseconds left once `done` steps took `done_ms` in all, and where the figure comes from."""
        left = len(self.known_after) - 1 - done
        if left <= 0:
            return 0.0, None
        unknown = self.unknown_after[done]
        if unknown and not done:
            return None, None
        source = "journal" if not unknown else ("run" if unknown == left else "journal+run")
        return self.known_after[done] + unknown * (done_ms / done if done else 0.0), source


def joined(revisions: Iterable[str]) -> str | None:
    """A revision tuple as one stored or logged value (None for base)."""
    items = list(revisions)
    return ",".join(items) if items else None
