"""Running Alembic's upgrade/downgrade steps under the lock: plan, rails, each step watched, failures explained.

This is the body of `invoke migrate`, `rollback` and `rollback-base` (bot.migrate.api is their entry):
the same steps `alembic upgrade` would run, on our connection, with every step journaled, reviewed
(upgrades) and kept out of the way of stop signals, and a lock timeout on a step retried with backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Dialect

from bot import collector
from bot.data.urls import where
from bot.data.waiting import is_lock_wait, reason
from bot.errors import Interrupted, MigrationFailed, Refused, ToolkitError
from bot.logs import get_logger
from bot.migrate import journal, manifest
from bot.migrate.baseline.standin import fresh_scripts, is_standin, refuse_stranded
from bot.migrate.baseline.standin import step_details as standin_details
from bot.migrate.graph import (
    alembic_config,
    applied_revisions,
    current_heads,
    load_scripts,
    plan_steps,
    planned,
    refuse_downward_upgrade,
    refuse_unknown,
    refuse_unsafe_state,
    status_of,
    steps_between,
)
from bot.migrate.journal import checksums, settle
from bot.migrate.journal.origin import Origin
from bot.migrate.journal.recorder import RemainingEstimate, StepRecorder, joined
from bot.migrate.plan import Confirm, Guard
from bot.migrate.rails.guards import REVIEW, bound_ddl_locks, ddl_limit_hint, record
from bot.migrate.rails.tools import MYSQL_BACKENDS
from bot.migrate.report import MigrationReport, StepResult
from bot.migrate.review.catalog import Catalog
from bot.migrate.review.checker import ALLOW, COLLECT, ENFORCE, REPORT, REPORTED, Review, ReviewRefused
from bot.migrate.session import LockedSession, locked
from bot.settings.config import Config
from bot.signals import StopSignal, run_guarded

log = get_logger("bot.migrations")


@dataclass
class StepObserver:
    """Logs each step with its position and timing, journals it, and keeps stop signals out of its middle."""

    direction: str
    stop: StopSignal
    recorder: StepRecorder
    review: Review | None = None
    results: list[StepResult] = field(default_factory=list)
    current: RevisionStep | None = None
    position: int = 0
    total: int = 0
    started_at: float = 0.0

    def observe(self, steps: list[RevisionStep]) -> Iterator[RevisionStep]:
        """Yield Alembic's steps; code after each yield runs once that step's transaction committed."""
        self.total = len(steps)
        run_started = time.perf_counter()
        # Built once: a per-step pass over the whole run makes long histories quadratic.
        plans = [planned(step) for step in steps]
        estimate = RemainingEstimate.of([step_plan.revision for step_plan in plans], self.recorder.known_durations)
        done_ms = 0.0
        self.recorder.run_started(plans)
        for position, (step, step_plan) in enumerate(zip(steps, plans, strict=True), 1):
            self.current, self.position, self.started_at = step, position, time.perf_counter()
            with self.stop.step():
                if self.review is not None:
                    self.review.step_started(step_plan.revision, step_plan.message, step.revision.module)
                self.recorder.step_started(step_plan)
                yield step
                self.recorder.step_finished()
            result = StepResult(step_plan.revision, self.direction, step_plan.message, step_plan.source,
                                step_plan.destination, (time.perf_counter() - self.started_at) * 1000)
            self.results.append(result)
            done_ms += result.duration_ms
            self.current = None
            remaining_ms, estimate_source = estimate.after(position, done_ms)
            log.info("migration applied" if self.direction == "upgrade" else "migration reverted",
                     revision=result.revision, previous_revision=joined(result.source),
                     target_revision=joined(result.destination), message=result.message,
                     duration_ms=round(result.duration_ms, 1), position=f"{position}/{self.total}",
                     elapsed_ms=round((time.perf_counter() - run_started) * 1000, 1),
                     remaining_ms=None if remaining_ms is None else round(remaining_ms, 1),
                     remaining_estimate=estimate_source)
            self.stop.check()


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
        list(recorder.context_options()["on_version_apply"])
    alembic_cfg.attributes["extra_context_options"] = {
        **alembic_cfg.attributes.get("extra_context_options", {}), "on_version_apply": applied}

    def work(heads: tuple[str, ...], context: MigrationContext) -> Iterator[RevisionStep]:
        recorder.bind(context.connection or connection, context.impl.transactional_ddl)
        if review is not None:
            review.attach(context.connection or connection, (context.version_table_schema, context.version_table))
        return observer.observe(steps_between(scripts, direction, target, tuple(heads)))

    try:
        with EnvironmentContext(alembic_cfg, scripts, fn=work, destination_rev=target):
            scripts.run_env()
    finally:
        recorder.unbind()
        if review is not None:
            review.detach()


def migrate(config: Config, direction: str, target: str, *, confirm: Confirm | None,
            safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Upgrade or downgrade to `target` under the migration lock, with stop signals handled."""
    return run_guarded(lambda stop: _migrate(config, direction, target, confirm, stop, safeguards))


async def _migrate(config: Config, direction: str, target: str, confirm: Confirm | None,
                   stop: StopSignal, safeguards: Sequence[Guard]) -> MigrationReport:
    """Lock, re-read where the database stands, plan, confirm, run (retrying lock timeouts), report."""
    alembic_cfg = alembic_config(config)
    scripts = load_scripts(alembic_cfg)
    files = manifest.snapshot(scripts, config.alembic_ini)
    file_checksums: dict[str, str] = {}  # read once, after the snapshot: for the manifest and the checksum checks

    def check(before: tuple[str, ...], dialect: Dialect) -> None:
        nonlocal scripts
        whole = scripts
        if not before and direction == "upgrade":
            scripts = fresh_scripts(scripts, dialect, target)  # a fresh database takes the baseline, if any
        refuse_stranded(scripts, before)
        with collector.loading():  # the first look at the graph imports every revision script
            state = status_of(scripts, before)
        file_checksums.update(checksums.files_of(checksums.scripts_of(scripts)))
        if scripts is whole:  # Alembic has just read the graph: the next start reuses it
            manifest.remember(scripts, files, file_checksums)
        if direction == "upgrade" and target == "head":
            refuse_unsafe_state(state)
        else:
            refuse_unknown(state)
        if direction == "upgrade":
            refuse_downward_upgrade(scripts, before, target)

    async with locked(config, check=check) as session:
        connection, before = session.connection, session.before
        settle.refuse_half_applied(session.half_applied, session.location)
        upgrading = direction == "upgrade"
        if upgrading:
            await connection.run_sync(validate_checksums, config, scripts, before, session.who, file_checksums)
        revision_steps = plan_steps(scripts, direction, target, before)
        if direction == "downgrade" and target != "base":
            refuse_partial_undo(revision_steps)
        steps = tuple(planned(step) for step in revision_steps)
        plan = session.plan(direction, target, steps)
        if not steps:
            log.info("nothing to migrate", direction=direction, target=target, current=list(before))
            if upgrading:
                await connection.run_sync(checksums.record_digest_at_head, tuple(scripts.get_heads()), before,
                                          session.who, file_checksums)
            return MigrationReport(direction, before, before)
        await session.confirm(confirm, plan)
        mode = review_mode(config) if direction == "upgrade" else None
        if mode == ENFORCE and config.database_url.get_backend_name() in MYSQL_BACKENDS:
            await connection.run_sync(preflight, config, alembic_cfg, scripts, target, before)
        for safeguard in safeguards:
            await connection.run_sync(safeguard, plan)
        await connection.run_sync(bound_ddl_locks, config)
        started = time.perf_counter()
        log.info("migrations starting", direction=direction, count=len(steps), current=list(before),
                 target=target, database=session.location)
        results = await StepsRun(session, alembic_cfg, scripts, direction, target, stop, mode,
                                 file_checksums).until_done()
        after = await connection.run_sync(current_heads)
        await connection.rollback()
        if upgrading:
            await connection.run_sync(checksums.record_digest_at_head, tuple(scripts.get_heads()), after,
                                      session.who, file_checksums)
        total = (time.perf_counter() - started) * 1000
        log.info("migrations complete", direction=direction, applied=len(results),
                 duration_ms=round(total, 1), revision=",".join(after) or None)
        return MigrationReport(direction, before, after, tuple(results), total)


def refuse_partial_undo(steps: Sequence[RevisionStep]) -> None:
    """Undoing a baseline drops everything it made: that is rollback-base, with its own prompt, never a step count."""
    for step in steps:
        if is_standin(step.revision):
            raise Refused(f"this rollback would undo baseline {step.revision.revision}",
                          "undoing a baseline drops every table it made (and their rows)",
                          "roll back to the baseline at most (`invoke rollback --to "
                          f"{step.revision.revision}`), or undo everything with `invoke rollback-base`")


def review_mode(config: Config) -> str:
    """What an upgrade's review does with an unacknowledged finding: refuse, allow loudly, or warn (development)."""
    if not config.is_production:
        return REPORT
    return ALLOW if config.allow_destructive_migrations else ENFORCE


@dataclass
class StepsRun:
    """The steps of one command, run and, when a step waited too long for a table lock, run again."""

    session: LockedSession
    alembic_cfg: AlembicConfig
    scripts: ScriptDirectory
    direction: str
    target: str
    stop: StopSignal
    mode: str | None
    file_checksums: Mapping[str, str]  # each revision file's, read right after Alembic imported the scripts
    review: Review | None = None
    results: list[StepResult] = field(default_factory=list)

    async def until_done(self) -> list[StepResult]:
        """Run what is left; a lock timeout on a step that left nothing behind is retried with backoff."""
        config, connection = self.session.config, self.session.connection
        attempt = 0
        while True:
            recorder = StepRecorder(self.session.who, self.direction, config.secrets(),
                                    await connection.run_sync(journal.durations, self.direction))
            review = await connection.run_sync(self._review) if self.mode is not None else None
            observer = StepObserver(self.direction, self.stop, recorder, review)
            recorder.step_details = partial(self._step_details, observer, review)
            if review is not None:
                recorder.read_only = review.read_only
            try:
                await connection.run_sync(run_steps, self.alembic_cfg, self.scripts, self.direction, self.target,
                                          observer)
                await connection.run_sync(recorder.run_finished)
                self.results += observer.results
                return self.results
            except Exception as error:
                self.results += observer.results
                written = await connection.run_sync(recorder.step_failed, error)
                if isinstance(error, ReviewRefused):
                    await connection.run_sync(journal_refusal, config, error)
                elif written == journal.FAILED and is_lock_wait(error) and attempt < config.ddl_lock_retries \
                        and observer.current is not None and not self.stop.signal_name:
                    attempt += 1
                    delay = min(2.0 ** (attempt - 1), 30.0)
                    log.warning("migration step retried", revision=observer.current.revision.revision,
                                attempt=attempt, retries=config.ddl_lock_retries, retry_in_s=delay,
                                reason=reason(error))
                    await asyncio.sleep(delay)
                    await connection.rollback()
                    continue
                raise failure(error, observer, config.database_url.get_backend_name(),
                              half_applied=written == journal.HALF_APPLIED if written else None) from error

    def _step_details(self, observer: StepObserver, review: Review | None) -> dict[str, object] | None:
        """What the step's journal row keeps beyond its columns: the file's checksums (upgrades), the review."""
        details: dict[str, object] = {}
        step = observer.current
        if self.direction == "upgrade" and step is not None and is_standin(step.revision):
            details.update(standin_details(step.revision, self.session.connection.dialect))
        elif self.direction == "upgrade" and step is not None:
            script = step.revision
            details["checksum"] = checksums.of_script(script.path, script.module,
                                                      self.file_checksums.get(script.revision)).as_json()
        if review is not None:
            details.update(review.step_details() or {})
        return details or None

    def _review(self, connection: Connection) -> Review:
        """One review for the whole command: tables created by earlier attempts' steps stay known."""
        if self.review is None:
            assert self.mode is not None
            self.review = Review(connection.dialect.name, Catalog(connection.dialect.name), self.mode)
        return self.review


def validate_checksums(connection: Connection, config: Config, scripts: ScriptDirectory,
                       current: tuple[str, ...], who: Origin, files: Mapping[str, str]) -> None:
    """Refuse (production) or report an applied revision edited since; give unrecorded ones a baseline checksum."""
    triples = checksums.scripts_of(scripts)
    applied = applied_revisions(scripts, current)
    checksums.refuse_edited(checksums.edited(connection, triples, applied, files), config,
                            where(config.database_url))
    lacking = checksums.missing(connection, applied)
    if lacking:
        recorded = checksums.record_baseline(connection, who, triples, lacking)
        log.info("revision checksums recorded", revisions=sorted(recorded), reason="baseline")
    if connection.in_transaction():
        connection.commit()


def preflight(connection: Connection, config: Config, alembic_cfg: AlembicConfig, scripts: ScriptDirectory,
              target: str, before: tuple[str, ...]) -> None:
    """MySQL/MariaDB: judge the pending revisions rendered offline first, since their DDL commits as it runs."""
    from bot.migrate.review.offline import check_offline  # offline rendering is needed on MySQL/MariaDB only

    review = Review(connection.dialect.name, Catalog(connection.dialect.name, offline=True, connection=connection),
                    COLLECT)
    checks = check_offline(alembic_cfg, scripts, steps_between(scripts, "upgrade", target, before), before, review)
    if connection.in_transaction():
        connection.commit()
    refused = [(check, verdict) for check in checks for verdict in check.verdicts if verdict.verdict == REPORTED]
    for check, verdict in refused:
        log.error("destructive migration refused", revision=check.revision, rule=verdict.finding.rule,
                  target=verdict.finding.target, statement=verdict.finding.statement, why=verdict.finding.why,
                  fix=verdict.finding.fix)
    if not refused:
        return
    check, verdict = refused[0]
    error = ReviewRefused(verdict.finding, check.revision, check.message)
    journal_refusal(connection, config, error, before_anything=True)
    more = f" (and {len(refused) - 1} more finding(s), logged above)" if len(refused) > 1 else ""
    raise Refused(error.what + more, f"{error.why}; nothing was changed: the pending revisions were checked, "
                  "rendered offline, before any of them ran", error.fix, revision=check.revision,
                  rule=verdict.finding.rule)


def journal_refusal(connection: Connection, config: Config, error: ReviewRefused, *,
                    before_anything: bool = False) -> None:
    """The review's refusal, in the journal: which rule, on what, in which revision."""
    record(connection, config, REVIEW, f"review refused revision {error.revision}", started=journal.now(),
           success=False, error=error.line(), revision=error.revision,
           details={"rule": error.finding.rule, "target": error.finding.target,
                    "statement": error.finding.statement, "checked": "offline" if before_anything else "as it ran"})


def failure(error: Exception, observer: StepObserver, backend: str, *,
            half_applied: bool | None = None) -> Exception:
    """Name the revision that failed (or was refused), why, and what state that leaves the database in."""
    refused = isinstance(error, ReviewRefused)
    if isinstance(error, (Interrupted, ToolkitError)) and not refused:
        return error
    step = observer.current
    if step is None:
        return MigrationFailed("migration failed before any revision ran", reason(error),
                               "see the error event above")
    step_plan = planned(step)
    if half_applied or (half_applied is None and backend in MYSQL_BACKENDS):
        state = "its DDL committed as it went (MySQL/MariaDB, or an autocommit block), so it is half-applied"
        fix = (f"repair the schema by hand, then `invoke stamp --to {joined(step_plan.destination) or 'base'}` "
               f"(completed) or `invoke stamp --to {joined(step_plan.source) or 'base'}` (undone); "
               "see docs/JOURNAL.md")
    else:
        state = ("its first statement failed, so nothing of it ran" if backend in MYSQL_BACKENDS
                 else "this revision was rolled back as a whole")
        fix = "fix the revision and run migrate again"
    if isinstance(error, ReviewRefused):
        if half_applied:
            return Refused(error.what, f"{error.why}; the statement was stopped before it ran, but {state}",
                           f"{fix}; {error.fix}", **error.fields)
        return Refused(error.what, f"{error.why}; the statement was stopped before it ran; nothing was changed",
                       error.fix, **error.fields)
    hint = ddl_limit_hint(error)
    fix = f"{hint}; {fix}" if hint else fix
    log.error("migration failed", revision=step_plan.revision, message=step_plan.message,
              position=f"{observer.position}/{observer.total}",
              applied_before_failure=[result.revision for result in observer.results],
              database_state=state, exc_info=error)
    return MigrationFailed(f"revision {step_plan.revision} ({step_plan.message}) failed",
                           f"{reason(error)}; {state}", fix, revision=step_plan.revision)
