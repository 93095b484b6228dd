"""Where the database stands, with the journal: what `invoke history` and `invoke status` show.

Read-only: it never writes, and opens a plain (non-migration) connection so that on SQLite it
reads beside a running migration instead of queueing behind it. Open "running" rows are judged by
probing the migration lock: held means a step is in progress, free means its process is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from bot.data.engine import create_engine
from bot.data.lock import migration_lock
from bot.data.presence import require_existing_database, sqlite_file_missing
from bot.data.urls import where
from bot.data.waiting import open_connection
from bot.errors import CheckFailed, LockTimeout
from bot.migrate import journal
from bot.migrate.baseline.standin import baseline_of
from bot.migrate.baseline.store import Baseline
from bot.migrate.graph import alembic_config, applied_revisions, current_heads, history_of, load_scripts, status_of
from bot.migrate.journal import checksums, settle
from bot.migrate.plan import RevisionInfo, Status
from bot.settings.config import Config
from bot.signals import run_guarded

APPLIED = "applied"
PENDING = "pending"
# The status words of `invoke history` (docs/JOURNAL.md).
WORDS = (APPLIED, PENDING, journal.FAILED, journal.ABORTED, journal.HALF_APPLIED)


@dataclass(frozen=True)
class RevisionRecord:
    """One revision: the script, its status word, and the journal's word on it."""

    info: RevisionInfo
    status: str
    last_applied: journal.Entry | None
    last_entry: journal.Entry | None


@dataclass(frozen=True)
class Overview:
    """The revision graph against the database, and what the journal adds to it."""

    location: str
    state: Status
    revisions: tuple[RevisionRecord, ...]
    half_applied: tuple[journal.Entry, ...]
    in_progress: tuple[journal.Entry, ...]
    last_entry: journal.Entry | None
    journal_version: int | None
    edited: tuple[checksums.Edited, ...] = ()
    baseline: Baseline | None = None

    @property
    def covered(self) -> frozenset[str]:
        """The revisions the project's baseline stands for (empty without one)."""
        return self.baseline.covered_revisions if self.baseline is not None else frozenset()

    @property
    def check_problems(self) -> list[str]:
        """Why `status --check` fails, empty when the database is exactly at head and whole."""
        problems = []
        if self.half_applied:
            problems.append("half-applied: " + ", ".join(str(entry.revision) for entry in self.half_applied))
        if self.state.unknown:
            problems.append("unknown revision: " + ", ".join(self.state.unknown))
        if self.state.pending:
            problems.append(f"{len(self.state.pending)} pending: "
                            + ", ".join(info.revision for info in self.state.pending))
        if len(self.state.heads) > 1:
            problems.append("several heads: " + ", ".join(self.state.heads))
        if self.edited:
            problems.append("edited after it was applied: " + ", ".join(item.revision for item in self.edited))
        return problems


def read_overview(config: Config, *, missing_is_empty: bool = False) -> Overview:
    """Read the revision scripts, alembic_version and the journal, and judge open rows by the lock.

    A SQLite file that does not exist is never created here: exit 3, or (missing_is_empty) an empty database.
    """
    scripts = load_scripts(alembic_config(config))
    url = config.database_url
    baseline = baseline_of(scripts)
    if missing_is_empty and sqlite_file_missing(url):
        return replace(_combine(where(url), status_of(scripts, ()), history_of(scripts, ()), None, [], True),
                       baseline=baseline)
    require_existing_database(url)

    async def read() -> Overview:
        engine = create_engine(url, poolclass=NullPool)
        try:
            connection = await open_connection(engine, url, config.db_wait_timeout)
            try:
                current, version, rows = await connection.run_sync(_read_rows)
                edited = await connection.run_sync(_edited, scripts, current) if version is not None else []
            finally:
                await connection.close()
            running = [entry for entry in rows if entry.status == journal.RUNNING and entry.resolved_by is None]
            lock_free = await _lock_is_free(engine, config) if running else True
        finally:
            await engine.dispose()
        found = _combine(where(url), status_of(scripts, current), history_of(scripts, current), version, rows,
                         lock_free)
        return replace(found, edited=tuple(edited), baseline=baseline)

    return run_guarded(lambda _stop: read())


def check(overview: Overview) -> None:
    """For CI and deploy gates: fail (exit 7) when anything is pending, half-applied or unknown."""
    problems = overview.check_problems
    if problems:
        raise CheckFailed(f"the database at {overview.location} is not at head", "; ".join(problems),
                          _check_fix(overview))


def _check_fix(overview: Overview) -> str:
    """The way out of the first problem migrate cannot solve by itself, else `invoke migrate`."""
    stranded = [revision for revision in overview.state.unknown if revision in overview.covered]
    if stranded and overview.baseline is not None:
        return (f"revision {stranded[0]} is covered by baseline {overview.baseline.revision} and its file is retired: "
                f"migrate it with commit {overview.baseline.retired_in} first (docs/BASELINE.md)")
    if overview.state.unknown:
        return ("migrate refuses a revision the scripts do not know: deploy the code that has it, or restore a "
                "backup taken at a revision these scripts know (docs/ROLLBACK.md)")
    if overview.half_applied:
        return "repair the half-applied revision, then `invoke stamp --to REV` (docs/JOURNAL.md)"
    if len(overview.state.heads) > 1:
        return "merge the heads (`alembic merge heads`), then run `invoke migrate`"
    if overview.edited and not overview.state.pending:
        return ("restore the edited file from version control, or `invoke accept-edit --revision REV --reason ...` "
                "once the edit is intended (docs/REVIEW.md)")
    return "run `invoke migrate`"


def history_document(overview: Overview, limit: int | None = None) -> dict[str, object]:
    """`invoke history --json`: the graph newest first, each revision with its status word and journal facts."""
    revisions = overview.revisions if limit is None else overview.revisions[:limit]
    return {
        "database": overview.location,
        "current": list(overview.state.current),
        "heads": list(overview.state.heads),
        "half_applied": bool(overview.half_applied),
        "baseline": baseline_document(overview.baseline),
        "revisions": [{
            "revision": record.info.revision,
            "message": record.info.message,
            "down_revisions": list(record.info.down_revisions),
            "is_head": record.info.is_head,
            "is_current": record.info.is_current,
            "status": record.status,
            "edited": record.info.revision in {item.revision for item in overview.edited},
            "in_baseline": record.info.revision in overview.covered,
            "last_applied": None if record.last_applied is None else _applied_json(record.last_applied),
            "last_entry": None if record.last_entry is None else record.last_entry.as_json(),
        } for record in revisions],
    }


def status_document(overview: Overview) -> dict[str, object]:
    """`invoke status --json`: current, heads, pending, last journal entry and the half-applied flag."""
    state = overview.state
    return {
        "database": overview.location,
        "current": list(state.current),
        "heads": list(state.heads),
        "at_head": state.at_head and not overview.half_applied,
        "pending": [{"revision": info.revision, "message": info.message} for info in state.pending],
        "unknown": list(state.unknown),
        "half_applied": bool(overview.half_applied),
        "half_applied_entries": [entry.as_json() for entry in overview.half_applied],
        "in_progress": [entry.as_json() for entry in overview.in_progress],
        "last_entry": None if overview.last_entry is None else overview.last_entry.as_json(),
        "journal_schema_version": overview.journal_version,
        "edited": [item.as_json() for item in overview.edited],
        "problems": overview.check_problems,
        "baseline": baseline_document(overview.baseline),
    }


def baseline_document(baseline: Baseline | None) -> dict[str, object] | None:
    """The project's baseline in --json: its revision, what it covers, the commit holding retired files."""
    if baseline is None:
        return None
    return {"revision": baseline.revision, "covers": [item.revision for item in baseline.covered],
            "dialects": sorted(baseline.dialects), "retired_in": baseline.retired_in}


def _edited(connection: Connection, scripts: Any, current: tuple[str, ...]) -> list[checksums.Edited]:
    """Applied revisions whose file changed since the journal recorded it."""
    if journal.schema_version(connection) != journal.SCHEMA_VERSION:
        return []
    triples = checksums.scripts_of(scripts)
    return checksums.edited(connection, triples, applied_revisions(scripts, current), checksums.files_of(triples))


def _read_rows(connection: Connection) -> tuple[tuple[str, ...], int | None, list[journal.Entry]]:
    """alembic_version, the journal's schema version and its rows (newest first), on one connection."""
    current = current_heads(connection)
    version = journal.schema_version(connection)
    if version is not None and version > journal.SCHEMA_VERSION:
        return current, version, []
    return current, version, journal.entries(connection)


async def _lock_is_free(engine: Any, config: Config) -> bool:
    """Try the migration lock once, without waiting: free means no migration is running right now."""
    try:
        async with migration_lock(engine, config.database_url, 0):
            return True
    except LockTimeout:
        return False


def _combine(location: str, state: Status, infos: list[RevisionInfo], version: int | None,
             rows: list[journal.Entry], lock_free: bool) -> Overview:
    """Give every revision its word from alembic_version and the journal."""
    open_rows = [entry for entry in reversed(rows) if entry.status in journal.UNFINISHED and entry.resolved_by is None]
    half = settle.half_applied_now(open_rows, lock_free)
    open_steps = [_current_step(entry, rows) if entry.kind == journal.RUN else entry
                  for entry in open_rows if entry.status == journal.RUNNING]
    in_progress = [] if lock_free else [entry for entry in open_steps if entry is not None]
    aborted = {entry.revision for entry in open_steps
               if lock_free and entry is not None and entry.kind == journal.RUN and entry.direction == "upgrade"}
    half_revisions = {entry.revision for entry in half}
    steps = [entry for entry in rows if entry.kind == journal.STEP]
    records = []
    for info in infos:
        mine = [entry for entry in steps if entry.revision == info.revision]
        last_applied = next((entry for entry in mine if entry.status == journal.APPLIED), None)
        records.append(RevisionRecord(info, _word(info, mine, half_revisions, aborted), last_applied,
                                      mine[0] if mine else None))
    return Overview(location, state, tuple(records), tuple(half), tuple(in_progress), rows[0] if rows else None,
                    version)


def _current_step(run: journal.Entry, rows: list[journal.Entry]) -> journal.Entry | None:
    """An open run row narrowed to the step it is in (or died in), or None when that step has a row of its own."""
    step = settle.interrupted_step(run, rows)
    return None if step is None else replace(run, details=None, **step)


def _word(info: RevisionInfo, mine: Iterable[journal.Entry], half_revisions: set[str | None],
          aborted: set[str | None]) -> str:
    """applied, pending, failed, aborted or half-applied, for one revision."""
    if info.revision in half_revisions:
        return journal.HALF_APPLIED
    if info.applied:
        return APPLIED
    if info.revision in aborted:
        return journal.ABORTED
    last_upgrade = next((entry for entry in mine if entry.direction == "upgrade"), None)
    if last_upgrade is not None and last_upgrade.status in (journal.FAILED, journal.ABORTED):
        return last_upgrade.status
    return PENDING


def _applied_json(entry: journal.Entry) -> dict[str, object]:
    """When, by whom, from where and how long a revision was last applied."""
    return {"started_at": journal.iso(entry.started_at), "finished_at": journal.iso(entry.finished_at),
            "duration_ms": None if entry.duration_ms is None else round(entry.duration_ms, 1),
            "os_user": entry.os_user, "host": entry.host, "pid": entry.pid, "app_version": entry.app_version,
            "environment": entry.environment}
