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
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from bot.config import Config, load_config
from bot.database import fastpath, journal
from bot.database.engine import create_engine
from bot.database.presence import require_existing_database
from bot.database.recorder import StepRecorder
from bot.database.safeguards import bound_ddl_locks
from bot.database.targets import refuse_downward_upgrade
from bot.database.urls import database_label, where
from bot.errors import ConfigError, MigrationFailed, Refused
from bot.logs import get_logger
from bot.signals import ShutdownGuard, run_guarded

if TYPE_CHECKING:  # Alembic and SQLAlchemy's asyncio layer load only when the fast path cannot answer
    from alembic.script import ScriptDirectory
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bot.database.steps import PlannedStep, StepObserver, StepResult

log = get_logger("bot.migrations")


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
    from bot.database.safeguards import upgrade_guards

    config = config or load_config()
    if to == "head":
        done = _already_at_head(config)
        if done is not None:
            return done
    return _migrate(config, "upgrade", to, confirm=None,
                    safeguards=upgrade_guards(config) if safeguards is None else safeguards)


def _already_at_head(config: Config) -> MigrationReport | None:
    """The no-op upgrade without Alembic or the asyncio layer, when bot.database.fastpath can prove it."""
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
    from bot.database.scripts import alembic_config, load_scripts
    from bot.database.steps import current_heads

    config = config or load_config()
    scripts = load_scripts(alembic_config(config))
    current = run_guarded(lambda guard: _read(config, current_heads))
    return _status(scripts, current)


def history(config: Config | None = None) -> list[RevisionInfo]:
    """Every revision, newest first, marked applied, current or pending."""
    from bot.database.scripts import alembic_config, load_scripts
    from bot.database.steps import current_heads

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
    from bot.database.overview import read_overview  # overview builds on this module

    found = read_overview(config, missing_is_empty=True)  # one read: revisions, alembic_version and the journal
    state = found.state
    _refuse_unsafe_state(state)
    journal.refuse_half_applied(found.half_applied, found.location)
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
    from bot.database.scripts import alembic_config, load_scripts

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
    applied = _applied(scripts, current)
    heads = set(scripts.get_heads())
    return [RevisionInfo(revision=script.revision, message=script.doc or "",
                         down_revisions=tuple(script._all_down_revisions), is_head=script.revision in heads,
                         is_current=script.revision in current, applied=script.revision in applied)
            for script in scripts.walk_revisions()]


def _applied(scripts: ScriptDirectory, current: tuple[str, ...]) -> set[str]:
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
    from bot.database.waiting import open_connection

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


def _migrate(config: Config, direction: str, target: str, *, confirm: Confirm | None,
             safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Shared body of upgrade and the rollbacks."""
    return run_guarded(lambda guard: _migrate_async(config, direction, target, confirm, guard, safeguards))


async def _migrate_async(config: Config, direction: str, target: str, confirm: Confirm | None,
                         guard: ShutdownGuard, safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Lock, re-read where the database stands, plan, confirm, run, report."""
    from bot.database.lock import migration_lock
    from bot.database.scripts import alembic_config, load_scripts
    from bot.database.steps import StepObserver, current_heads, run_steps

    alembic_cfg = alembic_config(config)
    scripts = load_scripts(alembic_cfg)
    files = fastpath.snapshot(scripts)
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
            steps = _plan_steps(scripts, direction, target, before)
            planned = Plan(direction, database_label(url), where(url), before, target, steps)
            if not steps:
                log.info("nothing to migrate", direction=direction, target=target, current=list(before))
                return MigrationReport(direction, before, before)
            if confirm is not None and not await _ask(confirm, planned):
                raise Refused(f"{direction} of {where(url)} was not confirmed", "the answer did not match",
                              "run it again and type the database name, or pass --yes")
            for safeguard in safeguards:
                await connection.run_sync(safeguard, planned)
            await connection.run_sync(bound_ddl_locks, config)
            recorder = StepRecorder(who, direction, config.secrets(),
                                    await connection.run_sync(journal.durations, direction))
            observer = StepObserver(direction, guard, recorder=recorder)
            started = time.perf_counter()
            log.info("migrations starting", direction=direction, count=len(steps), current=list(before),
                     target=target, database=where(url))
            try:
                await connection.run_sync(run_steps, alembic_cfg, scripts, direction, target, observer)
                await connection.run_sync(recorder.run_finished)
            except Exception as error:
                written = await connection.run_sync(recorder.step_failed, error)
                raise _failure(error, observer, url.get_backend_name(),
                               half_applied=written == journal.HALF_APPLIED if written else None) from error
            after = await connection.run_sync(current_heads)
            await connection.rollback()
            total = (time.perf_counter() - started) * 1000
            log.info("migrations complete", direction=direction, applied=len(observer.results),
                     duration_ms=round(total, 1), revision=",".join(after) or None)
            return MigrationReport(direction, before, after, tuple(observer.results), total)


def _refuse_unknown(state: Status) -> None:
    """A rollback may run with several heads, but never from a revision the scripts do not know."""
    _refuse_unsafe_state(Status(state.current, state.heads[:1], state.pending, state.unknown))


def _plan_steps(scripts: ScriptDirectory, direction: str, target: str,
                heads: tuple[str, ...]) -> tuple[PlannedStep, ...]:
    """Resolve the target into steps, turning Alembic's resolution errors into one clear line."""
    from alembic.script.revision import ResolutionError, RevisionError
    from alembic.util import CommandError

    from bot.database.steps import plan, steps_between

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
    """Name the revision that failed, why, and what state that leaves the database in."""
    from bot.database.steps import plan
    from bot.database.waiting import reason
    from bot.errors import Interrupted, ToolkitError

    if isinstance(error, (Interrupted, ToolkitError)):
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
    from bot.database.safeguards import ddl_limit_hint

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
