"""The migration API: Alembic's commands, in-process, locked, observed and safe to call from anywhere.

Every function takes the toolkit's Config (loaded from the environment when omitted), raises the
typed errors of bot.errors, and leaves exit codes to the entry layer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import Connection

from bot.data.engine import create_engine
from bot.data.presence import require_existing_database
from bot.data.urls import database_label, where
from bot.data.waiting import reason
from bot.errors import ConfigError, MigrationFailed, Refused
from bot.logs import get_logger
from bot.migrate import checksums, fastpath, journal
from bot.migrate.rails.guards import bound_ddl_locks, is_lock_wait
from bot.migrate.recorder import StepRecorder
from bot.migrate.review.catalog import Catalog
from bot.migrate.review.checker import ALLOW, COLLECT, ENFORCE, REPORT, REPORTED, Review, ReviewRefused
from bot.migrate.targets import refuse_downward_upgrade
from bot.settings import Config, load_config
from bot.signals import ShutdownGuard, run_guarded

if TYPE_CHECKING:  # Alembic and SQLAlchemy's asyncio layer load only when the fast path cannot answer
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bot.migrate.run import PlannedStep, StepObserver, StepResult

log = get_logger("bot.migrations")
T = TypeVar("T")


@dataclass(frozen=True)
class RevisionInfo:
    """One revision script and where the database stands relative to it."""

    revision: str
    message: str
    down_revisions: tuple[str, ...]
    is_head: bool
    is_current: bool
    applied: bool


@dataclass(frozen=True)
class Status:
    """The database's revisions against the scripts' heads."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[RevisionInfo, ...]
    unknown: tuple[str, ...] = ()

    @property
    def at_head(self) -> bool:
        """Exactly at every head, nothing pending, nothing unknown."""
        return not self.pending and not self.unknown and set(self.current) == set(self.heads)


@dataclass(frozen=True)
class Plan:
    """What a command is about to do, shown to the operator before a destructive change."""

    direction: str
    database: str
    location: str
    current: tuple[str, ...]
    target: str
    steps: tuple[PlannedStep, ...]
    source: str | None = None  # restore: the backup file the data comes from


@dataclass(frozen=True)
class MigrationReport:
    """What a command did."""

    direction: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    duration_ms: float = 0.0


Confirm = Callable[[Plan], bool]
# A rail run under the lock after planning and before any step (review, backup); it refuses by raising.
Guard = Callable[[Connection, Plan], None]


def is_production(config: Config | None = None) -> bool:
    """Production migrates on start; development refuses to start on a stale schema."""
    return (config or load_config()).is_production


def upgrade(config: Config | None = None, to: str = "head", *,
            safeguards: Sequence[Guard] | None = None) -> MigrationReport:
    """Apply revisions up to `to` under the migration lock (production: after the review and backup rails)."""
    from bot.migrate.rails.guards import upgrade_guards

    config = config or load_config()
    if to == "head":
        done = _already_at_head(config)
        if done is not None:
            return done
    return _migrate(config, "upgrade", to, confirm=None,
                    safeguards=upgrade_guards(config) if safeguards is None else safeguards)


def _already_at_head(config: Config) -> MigrationReport | None:
    """The no-op upgrade without Alembic or the asyncio layer, when bot.migrate.fastpath can prove it."""
    current = fastpath.at_head(config)
    if current is None:
        return None
    log.info("nothing to migrate", direction="upgrade", target="head", current=list(current), fast_path=True)
    return MigrationReport("upgrade", current, current)


def rollback(config: Config | None = None, steps: int | None = 1, to: str | None = None,
             *, confirm: Confirm | None = None, safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Undo the last `steps` revisions, or down to revision `to`, under the migration lock."""
    return _migrate(config or load_config(), "downgrade", rollback_target(steps, to), confirm=confirm,
                    safeguards=safeguards)


def rollback_target(steps: int | None = 1, to: str | None = None) -> str:
    """Alembic's downgrade target for --steps N or --to REV, or a clear error for a bad pair."""
    if to is not None and steps not in (None, 1):
        raise ConfigError("--steps and --to were both given", "a rollback has one target", "pass only one of them")
    if to is None:
        if steps is None or steps < 1:
            raise ConfigError(f"--steps {steps} is not allowed", "a rollback undoes at least one revision",
                              "pass --steps 1 or more")
        return f"-{steps}"
    return to


def rollback_to_base(config: Config | None = None, *, confirm: Confirm | None = None,
                     safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Undo every revision: every table the revisions created is dropped; alembic_version stays."""
    return _migrate(config or load_config(), "downgrade", "base", confirm=confirm, safeguards=safeguards)


def status(config: Config | None = None) -> Status:
    """Current revision(s), head(s) and pending revisions, read without the lock."""
    from bot.migrate.graph import alembic_config, load_scripts
    from bot.migrate.run import current_heads

    config = config or load_config()
    scripts = load_scripts(alembic_config(config))
    current = run_guarded(lambda guard: _read(config, current_heads))
    return _status(scripts, current)


def history(config: Config | None = None) -> list[RevisionInfo]:
    """Every revision, newest first, marked applied, current or pending."""
    from bot.migrate.graph import alembic_config, load_scripts
    from bot.migrate.run import current_heads

    config = config or load_config()
    scripts = load_scripts(alembic_config(config))
    current = run_guarded(lambda guard: _read(config, current_heads))
    return _history(scripts, current)


def run_migrations_if_needed(config: Config | None = None) -> MigrationReport | None:
    """MIGRATE_ON_START (default: production only): upgrade to head, failing fast; otherwise refuse a stale schema."""
    config = config or load_config()
    if config.migrate_on_start:
        return upgrade(config, "head")
    if fastpath.at_head(config) is not None:
        return None
    from bot.migrate.read.overview import read_overview  # overview builds on this module

    found = read_overview(config, missing_is_empty=True)  # one read: revisions, alembic_version and the journal
    state = found.state
    _refuse_unsafe_state(state)
    journal.refuse_half_applied(found.half_applied, found.location)
    refuse_edited(found.edited, config, found.location)
    if state.pending:
        revisions = [info.revision for info in state.pending]
        if not config.is_production:
            log.warning("migrations skipped in development", pending=len(state.pending), revisions=revisions)
            raise Refused(f"the schema is {len(state.pending)} revision(s) behind head",
                          "development mode never migrates on start", "run `invoke migrate`")
        log.warning("migrations left to the release step", pending=len(state.pending), revisions=revisions)
        raise Refused(f"the schema is {len(state.pending)} revision(s) behind head",
                      "MIGRATE_ON_START=false: start never migrates",
                      "run `invoke migrate` as the release (pre-deploy) command, or set MIGRATE_ON_START=true")
    return None


def create_revision(message: str, autogenerate: bool = False, config: Config | None = None) -> str:
    """Write a new revision file (numbered after the newest) and return its path."""
    from alembic import command
    from bot.migrate.graph import alembic_config, load_scripts

    if not message.strip():
        raise ConfigError("the revision message is empty", "it names the file and the history entry",
                          "pass -m 'what this revision does'")
    config = config or load_config()
    alembic_cfg = alembic_config(config)
    rev_id = _next_revision_id(load_scripts(alembic_cfg))

    def write(connection: Connection | None) -> Any:
        alembic_cfg.attributes["connection"] = connection
        return command.revision(alembic_cfg, message=message.strip(), autogenerate=autogenerate, rev_id=rev_id)

    if autogenerate:
        script = run_guarded(lambda guard: _read(config, write))
    else:
        script = write(None)
    scripts = script if isinstance(script, list) else [script]
    path = str(scripts[0].path)
    log.info("revision created", revision=scripts[0].revision, path=path, autogenerate=autogenerate)
    return path


def _next_revision_id(scripts: ScriptDirectory) -> str | None:
    """0001, 0002, …: readable ids in order; None (Alembic's random id) when the history is not numbered."""
    ids = [script.revision for script in scripts.walk_revisions()]
    if not ids:
        return "0001"
    if not all(rev.isdigit() for rev in ids):
        return None
    return f"{max(int(rev) for rev in ids) + 1:04d}"


def _status(scripts: ScriptDirectory, current: tuple[str, ...]) -> Status:
    """Compare the database's revisions with the scripts without touching the database."""
    unknown = tuple(rev for rev in current if not _known(scripts, rev))
    heads = tuple(scripts.get_heads())
    if unknown:
        return Status(current, heads, (), unknown)
    pending = tuple(info for info in _history(scripts, current) if not info.applied)
    return Status(current, heads, tuple(reversed(pending)))


def _history(scripts: ScriptDirectory, current: tuple[str, ...]) -> list[RevisionInfo]:
    """All revisions, newest first, each marked against the database's current revisions."""
    applied = applied_revisions(scripts, current)
    heads = set(scripts.get_heads())
    return [RevisionInfo(revision=script.revision, message=script.doc or "",
                         down_revisions=tuple(script._all_down_revisions), is_head=script.revision in heads,
                         is_current=script.revision in current, applied=script.revision in applied)
            for script in scripts.walk_revisions()]


def applied_revisions(scripts: ScriptDirectory, current: tuple[str, ...]) -> set[str]:
    """Every revision at or below the database's current revisions."""
    known = [rev for rev in current if _known(scripts, rev)]
    if not known:
        return set()
    return {script.revision for script in scripts.revision_map.iterate_revisions(known, "base")}


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    """Whether the scripts contain a revision id."""
    from alembic.script.revision import ResolutionError, RevisionError

    try:
        return scripts.revision_map.get_revision(revision) is not None
    except (ResolutionError, RevisionError):
        return False


def _refuse_unsafe_state(state: Status) -> None:
    """Several heads or a revision the scripts do not know: no command may change anything."""
    if state.unknown:
        raise Refused(f"the database is at revision {', '.join(state.unknown)}, which the scripts do not know",
                      "newer code has migrated this database, or a revision file is missing",
                      "deploy the code that contains that revision, then roll back with it if needed")
    if len(state.heads) > 1:
        raise Refused(f"the revision scripts have several heads: {', '.join(state.heads)}",
                      "upgrading to 'head' would be ambiguous",
                      "merge them with `alembic merge -m 'merge heads' heads`")


@asynccontextmanager
async def _connection(config: Config) -> AsyncIterator[tuple[Any, AsyncConnection]]:
    """An engine and one connection, waiting for the database if it is not up yet."""
    from bot.data.waiting import open_connection

    engine = create_engine(config.database_url, for_migrations=True)
    try:
        connection = await open_connection(engine, config.database_url, config.db_wait_timeout)
        try:
            yield engine, connection
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def _read(config: Config, work: Callable[[Connection], Any]) -> Any:
    """Run a read-only sync function on a fresh connection."""
    require_existing_database(config.database_url)
    async with _connection(config) as (_engine, connection):
        return await connection.run_sync(work)


def read_on_connection(config: Config, work: Callable[[Connection], T]) -> T:
    """Run a read-only sync function on a fresh connection (waiting for the database), from synchronous code."""
    return run_guarded(lambda guard: _read(config, work))


def _migrate(config: Config, direction: str, target: str, *, confirm: Confirm | None,
             safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Shared body of upgrade and the rollbacks."""
    return run_guarded(lambda guard: _migrate_async(config, direction, target, confirm, guard, safeguards))


async def _migrate_async(config: Config, direction: str, target: str, confirm: Confirm | None,
                         guard: ShutdownGuard, safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Lock, re-read where the database stands, plan, confirm, run (retrying lock timeouts), report."""
    from bot.data.lock import migration_lock
    from bot.migrate.graph import alembic_config, load_scripts
    from bot.migrate.run import current_heads

    alembic_cfg = alembic_config(config)
    scripts = load_scripts(alembic_cfg)
    files = fastpath.snapshot(scripts, config.alembic_ini)
    url = config.database_url
    async with _connection(config) as (engine, connection):
        async with migration_lock(engine, url, config.migration_lock_timeout):
            before = await connection.run_sync(current_heads)
            state = _status(scripts, before)
            fastpath.remember(scripts, files)  # Alembic has just read the graph: the next no-op start reuses it
            if direction == "upgrade" and target == "head":
                _refuse_unsafe_state(state)
            else:
                _refuse_unknown(state)
            if direction == "upgrade":
                refuse_downward_upgrade(scripts, before, target)
            who = journal.origin(config.env)
            journal.refuse_half_applied(await connection.run_sync(journal.prepare, who), where(url))
            revision_files = None
            if direction == "upgrade":
                revision_files = await connection.run_sync(_validate_checksums, config, scripts, before, who)
            steps = _plan_steps(scripts, direction, target, before)
            planned = Plan(direction, database_label(url), where(url), before, target, steps)
            if not steps:
                log.info("nothing to migrate", direction=direction, target=target, current=list(before))
                if revision_files is not None:
                    await connection.run_sync(checksums.record_digest_at_head, tuple(scripts.get_heads()), before, who,
                                              revision_files)
                return MigrationReport(direction, before, before)
            if confirm is not None and not await _ask(confirm, planned):
                raise Refused(f"{direction} of {where(url)} was not confirmed", "the answer did not match",
                              "run it again and type the database name, or pass --yes")
            mode = review_mode(config) if direction == "upgrade" else None
            if mode == ENFORCE and url.get_backend_name() in ("mysql", "mariadb"):
                await connection.run_sync(_preflight, config, alembic_cfg, scripts, target, before)
            for safeguard in safeguards:
                await connection.run_sync(safeguard, planned)
            await connection.run_sync(bound_ddl_locks, config)
            started = time.perf_counter()
            log.info("migrations starting", direction=direction, count=len(steps), current=list(before),
                     target=target, database=where(url))
            run = _Run(config, alembic_cfg, scripts, direction, target, guard, who, mode)
            results = await run.until_done(connection, current_heads)
            after = await connection.run_sync(current_heads)
            await connection.rollback()
            if revision_files is not None:
                await connection.run_sync(checksums.record_digest_at_head, tuple(scripts.get_heads()), after, who,
                                          revision_files)
            total = (time.perf_counter() - started) * 1000
            log.info("migrations complete", direction=direction, applied=len(results),
                     duration_ms=round(total, 1), revision=",".join(after) or None)
            return MigrationReport(direction, before, after, tuple(results), total)


def review_mode(config: Config) -> str:
    """What an upgrade's review does with an unacknowledged finding: refuse, allow loudly, or warn (development)."""
    if not config.is_production:
        return REPORT
    return ALLOW if config.allow_destructive_migrations else ENFORCE


@dataclass
class _Run:
    """The steps of one command, run and, when a step waited too long for a table lock, run again."""

    config: Config
    alembic_cfg: Any
    scripts: ScriptDirectory
    direction: str
    target: str
    guard: ShutdownGuard
    who: journal.Origin
    mode: str | None
    review: Review | None = None
    results: list[StepResult] = field(default_factory=list)

    async def until_done(self, connection: AsyncConnection,
                         heads: Callable[[Connection], tuple[str, ...]]) -> list[StepResult]:
        """Run what is left; a lock timeout on a step that left nothing behind is retried with backoff."""
        from bot.migrate.run import StepObserver, plan, run_steps

        attempt = 0
        while True:
            recorder = StepRecorder(self.who, self.direction, self.config.secrets(),
                                    await connection.run_sync(journal.durations, self.direction))
            review = await connection.run_sync(self._review) if self.mode is not None else None
            observer = StepObserver(self.direction, self.guard, recorder=recorder, review=review)
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
                backend = self.config.database_url.get_backend_name()
                left_nothing = written == journal.FAILED
                if isinstance(error, ReviewRefused):
                    await connection.run_sync(_journal_refusal, self.config, error)
                elif left_nothing and is_lock_wait(error) and attempt < self.config.ddl_lock_retries \
                        and observer.current is not None and not self.guard.signal_name:
                    attempt += 1
                    delay = min(2.0 ** (attempt - 1), 30.0)
                    log.warning("migration step retried", revision=plan(observer.current).revision, attempt=attempt,
                                retries=self.config.ddl_lock_retries, retry_in_s=delay, reason=reason(error))
                    await asyncio.sleep(delay)
                    await connection.rollback()
                    continue
                raise _failure(error, observer, backend,
                               half_applied=written == journal.HALF_APPLIED if written else None) from error

    def _step_details(self, observer: StepObserver, review: Review | None) -> dict[str, object] | None:
        """What the step's journal row keeps beyond its columns: the file's checksums (upgrades), the review."""
        details: dict[str, object] = {}
        step = observer.current
        if self.direction == "upgrade" and step is not None:
            details["checksum"] = checksums.of_script(step.revision.path, step.revision.module).as_json()
        if review is not None:
            details.update(review.step_details() or {})
        return details or None

    def _review(self, connection: Connection) -> Review:
        """One review for the whole command: tables created by earlier attempts' steps stay known."""
        if self.review is None:
            assert self.mode is not None
            self.review = Review(connection.dialect.name, Catalog(connection.dialect.name), self.mode)
        return self.review


def _validate_checksums(connection: Connection, config: Config, scripts: ScriptDirectory,
                        current: tuple[str, ...], who: journal.Origin) -> dict[str, str]:
    """Refuse (production) or report an applied revision edited since; give unrecorded ones a baseline checksum."""
    triples = checksums.scripts_of(scripts)
    files = checksums.files_of(triples)
    applied = applied_revisions(scripts, current)
    refuse_edited(checksums.edited(connection, triples, applied, files), config, where(config.database_url))
    lacking = checksums.missing(connection, applied)
    if lacking:
        recorded = checksums.record_baseline(connection, who, triples, lacking)
        log.info("revision checksums recorded", revisions=sorted(recorded), reason="baseline")
    if connection.in_transaction():
        connection.commit()
    return files


def refuse_edited(edited: Sequence[checksums.Edited], config: Config, location: str) -> None:
    """An applied revision whose file changed: production refuses to go on (exit 6), development warns."""
    if not edited:
        return
    names = [item.revision for item in edited]
    if not config.is_production:
        log.warning("applied revision edited", revisions=names, database=location,
                    fix="`invoke accept-edit --revision REV --reason ...` once the change is intended")
        return
    raise Refused(f"revision(s) {', '.join(names)} were edited after they were applied to {location}",
                  "an applied revision never runs again, so the edit does not match what this database holds",
                  "restore the file from version control, or, if the edit is intended (a fix for new databases), "
                  f"run `invoke accept-edit --revision {names[0]} --reason '...'` (docs/REVIEW.md)",
                  revisions=names)


def _preflight(connection: Connection, config: Config, alembic_cfg: Any, scripts: ScriptDirectory, target: str,
               before: tuple[str, ...]) -> None:
    """MySQL/MariaDB: judge the pending revisions rendered offline first, since their DDL commits as it runs."""
    from bot.migrate.review.offline import check_offline
    from bot.migrate.run import steps_between

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
    _journal_refusal(connection, config, error, before_anything=True)
    more = f" (and {len(refused) - 1} more finding(s), logged above)" if len(refused) > 1 else ""
    raise Refused(error.what + more, f"{error.why}; nothing was changed: the pending revisions were checked, "
                  "rendered offline, before any of them ran", error.fix, revision=check.revision,
                  rule=verdict.finding.rule)


def _journal_refusal(connection: Connection, config: Config, error: ReviewRefused, *,
                     before_anything: bool = False) -> None:
    """The review's refusal, in the journal: which rule, on what, in which revision."""
    from bot.migrate.rails.guards import REVIEW, record

    record(connection, config, REVIEW, f"review refused revision {error.revision}", started=journal.now(),
           success=False, error=error.line(), revision=error.revision,
           details={"rule": error.finding.rule, "target": error.finding.target,
                    "statement": error.finding.statement, "checked": "offline" if before_anything else "as it ran"})


def _refuse_unknown(state: Status) -> None:
    """A rollback may run with several heads, but never from a revision the scripts do not know."""
    _refuse_unsafe_state(Status(state.current, state.heads[:1], state.pending, state.unknown))


def _plan_steps(scripts: ScriptDirectory, direction: str, target: str,
                heads: tuple[str, ...]) -> tuple[PlannedStep, ...]:
    """Resolve the target into steps, turning Alembic's resolution errors into one clear line."""
    from alembic.script.revision import ResolutionError, RevisionError
    from alembic.util import CommandError

    from bot.migrate.run import plan, steps_between

    try:
        return tuple(plan(step) for step in steps_between(scripts, direction, target, heads))
    except (CommandError, ResolutionError, RevisionError) as error:
        raise ConfigError(f"cannot {direction} to {target!r}", str(error).rstrip("."),
                          "pick a revision from `invoke history`") from None


async def _ask(confirm: Confirm, planned: Plan) -> bool:
    """Ask on a daemon thread, so a stop signal is not stuck behind a blocking prompt."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def prompt() -> None:
        try:
            result = confirm(planned)
        except BaseException as error:  # noqa: BLE001 - handed back to the loop as is
            loop.call_soon_threadsafe(_settle, answer, None, error)
        else:
            loop.call_soon_threadsafe(_settle, answer, result, None)

    threading.Thread(target=prompt, name="confirm", daemon=True).start()
    return await answer


def _settle(future: Any, result: bool | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(bool(result))


def _failure(error: Exception, observer: StepObserver, backend: str, *,
             half_applied: bool | None = None) -> Exception:
    """Name the revision that failed (or was refused), why, and what state that leaves the database in."""
    from bot.data.waiting import reason
    from bot.errors import Interrupted, ToolkitError
    from bot.migrate.run import plan

    refused = isinstance(error, ReviewRefused)
    if isinstance(error, (Interrupted, ToolkitError)) and not refused:
        return error
    step = observer.current
    if step is None:
        return MigrationFailed("migration failed before any revision ran", reason(error),
                               "see the error event above")
    planned = plan(step)
    done = [result.revision for result in observer.results]
    if half_applied or (half_applied is None and backend in ("mysql", "mariadb")):
        state = "its DDL committed as it went (MySQL/MariaDB, or an autocommit block), so it is half-applied"
        fix = (f"repair the schema by hand, then `invoke stamp --to {_one_or_base(planned.destination)}` "
               f"(completed) or `invoke stamp --to {_one_or_base(planned.source)}` (undone); see docs/JOURNAL.md")
    else:
        state = ("its first statement failed, so nothing of it ran" if backend in ("mysql", "mariadb")
                 else "this revision was rolled back as a whole")
        fix = "fix the revision and run migrate again"
    if isinstance(error, ReviewRefused):
        nothing = "" if half_applied else "; nothing was changed"
        state = ("the statement was stopped before it ran" + nothing if not half_applied else
                 f"the statement was stopped before it ran, but {state}")
        return Refused(error.what, f"{error.why}; {state}", error.fix if not half_applied else f"{fix}; {error.fix}",
                       **error.fields)
    from bot.migrate.rails.guards import ddl_limit_hint

    hint = ddl_limit_hint(error)
    fix = f"{hint}; {fix}" if hint else fix
    log.error("migration failed", revision=planned.revision, message=planned.message,
              position=f"{observer.position}/{observer.total}", applied_before_failure=done,
              database_state=state, exc_info=error)
    return MigrationFailed(f"revision {planned.revision} ({planned.message}) failed",
                           f"{reason(error)}; {state}", fix, revision=planned.revision)


def _one_or_base(revisions: tuple[str, ...]) -> str:
    """A revision tuple as a stamp target."""
    return ",".join(revisions) or "base"
