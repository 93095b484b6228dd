"""Run Alembic's upgrade/downgrade steps on one connection, watching each step start and finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from bot.logs import get_logger
from bot.migrate.recorder import StepRecorder, estimate_remaining, joined
from bot.signals import ShutdownGuard

if TYPE_CHECKING:
    from bot.migrate.review.checker import Review

log = get_logger("bot.migrations")


@dataclass(frozen=True)
class PlannedStep:
    """One revision to apply or undo, as an operator would read it."""

    revision: str
    message: str
    source: tuple[str, ...]
    destination: tuple[str, ...]


@dataclass(frozen=True)
class StepResult:
    """A step that finished and committed."""

    revision: str
    direction: str
    message: str
    source: tuple[str, ...]
    destination: tuple[str, ...]
    duration_ms: float


@dataclass
class StepObserver:
    """Logs each step with its position and timing, and keeps stop signals out of the middle of a step."""

    direction: str
    guard: ShutdownGuard
    results: list[StepResult] = field(default_factory=list)
    current: RevisionStep | None = None
    position: int = 0
    total: int = 0
    started_at: float = 0.0
    recorder: StepRecorder | None = None
    review: Review | None = None

    def observe(self, steps: list[RevisionStep]) -> Iterator[RevisionStep]:
        """Yield Alembic's steps; code after each yield runs once that step's transaction committed."""
        self.total = len(steps)
        run_started = time.perf_counter()
        # Built once: per-step list comprehensions over the whole run made 1,000 revisions quadratic.
        plans = [plan(step) for step in steps]
        revisions = [planned.revision for planned in plans]
        durations: list[float] = []
        if self.recorder is not None:
            self.recorder.run_started(plans)
        for position, (step, planned) in enumerate(zip(steps, plans, strict=True), 1):
            self.current, self.position, self.started_at = step, position, time.perf_counter()
            self.guard.enter_critical()
            if self.review is not None:
                self.review.step_started(planned.revision, planned.message, step.revision.module)
            if self.recorder is not None:
                self.recorder.step_started(planned)
            yield step
            if self.recorder is not None:
                self.recorder.step_finished()
            self.guard.leave_critical()
            result = StepResult(planned.revision, self.direction, planned.message, planned.source,
                                planned.destination, (time.perf_counter() - self.started_at) * 1000)
            self.results.append(result)
            durations.append(result.duration_ms)
            self.current = None
            remaining_ms, estimate_source = estimate_remaining(
                revisions[position:], self.recorder.known_durations if self.recorder is not None else {}, durations)
            log.info("migration applied" if self.direction == "upgrade" else "migration reverted",
                     revision=result.revision, previous_revision=joined(result.source),
                     target_revision=joined(result.destination), message=result.message,
                     duration_ms=round(result.duration_ms, 1), position=f"{position}/{self.total}",
                     elapsed_ms=round((time.perf_counter() - run_started) * 1000, 1),
                     remaining_ms=None if remaining_ms is None else round(remaining_ms, 1),
                     remaining_estimate=estimate_source)
            self.guard.raise_if_requested()


def plan(step: RevisionStep) -> PlannedStep:
    """Describe a step before it runs."""
    info = step.info
    return PlannedStep(revision=step.revision.revision, message=step.revision.doc or "",
                       source=tuple(info.source_revision_ids), destination=tuple(info.destination_revision_ids))


def current_heads(connection: Connection) -> tuple[str, ...]:
    """What alembic_version says, read on the given connection."""
    return tuple(MigrationContext.configure(connection).get_current_heads())


def steps_between(scripts: ScriptDirectory, direction: str, target: str, heads: tuple[str, ...]) -> list[RevisionStep]:
    """The steps Alembic would run from `heads` to `target`, in order."""
    if direction == "upgrade":
        return list(scripts._upgrade_revs(target, heads))
    return list(scripts._downgrade_revs(target, heads))


def run_steps(connection: Connection, alembic_cfg: AlembicConfig, scripts: ScriptDirectory, direction: str,
              target: str, observer: StepObserver) -> None:
    """What alembic.command.upgrade/downgrade do, on our connection and through our observer."""
    if connection.in_transaction():
        # An open transaction here makes Alembic treat it as external and skip every commit.
        connection.rollback()
    alembic_cfg.attributes["connection"] = connection
    recorder, review = observer.recorder, observer.review
    # The review's hook comes first: a refusal the revision swallowed must stop the step before it is journaled.
    applied = ([review.version_applied] if review is not None else []) + \
        (list(recorder.context_options()["on_version_apply"]) if recorder is not None else [])
    if applied:
        alembic_cfg.attributes["extra_context_options"] = {
            **alembic_cfg.attributes.get("extra_context_options", {}), "on_version_apply": applied}

    def work(heads: tuple[str, ...], context: MigrationContext) -> Iterator[RevisionStep]:
        if recorder is not None:
            recorder.bind(context.connection or connection, context.impl.transactional_ddl)
        if review is not None:
            review.attach(context.connection or connection)
        return observer.observe(steps_between(scripts, direction, target, tuple(heads)))

    try:
        with EnvironmentContext(alembic_cfg, scripts, fn=work, destination_rev=target):
            scripts.run_env()
    finally:
        if recorder is not None:
            recorder.unbind()
        if review is not None:
            review.detach()
