"""The migration journal: the toolkit's own audit table of every step, stamp and operator event.

The table lives in its own MetaData (never the bot's models), carries its own schema version in a
second one-row table, and is read and written through plain SQLAlchemy Core on whatever sync
connection the caller holds, so a migration journals on its own connection and SQLite never
deadlocks with itself.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.types import TypeEngine

from bot import __version__
from bot.data.engine import INTERNAL
from bot.errors import Refused
from bot.paths import PROJECT_ROOT

JOURNAL_TABLE = "toolkit_journal"
SCHEMA_TABLE = "toolkit_journal_schema"
SCHEMA_VERSION = 1

# Row states. A step row starts as RUNNING and ends in one of the others.
RUNNING = "running"
APPLIED = "applied"
REVERTED = "reverted"
FAILED = "failed"
ABORTED = "aborted"
HALF_APPLIED = "half-applied"
STAMPED = "stamped"
OK = "ok"
UNFINISHED = (RUNNING, HALF_APPLIED)

STEP = "step"
STAMP = "stamp"
RUN = "run"

ERROR_LIMIT = 500

# One cheap SELECT, no parameters, valid on every backend: the rows that block or may block a start.
UNFINISHED_SQL = (f"SELECT id, revision, direction, from_revision, to_revision, status, transactional, started_at, "
                  f"host, pid FROM {JOURNAL_TABLE} WHERE status IN ('{RUNNING}', '{HALF_APPLIED}') "
                  f"AND resolved_by IS NULL ORDER BY id")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive UTC with microseconds everywhere."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("journal times must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

journal = Table(
    JOURNAL_TABLE, metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("revision", String(64)),
    Column("direction", String(16)),
    Column("from_revision", String(255)),
    Column("to_revision", String(255)),
    Column("description", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("transactional", Boolean),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("duration_ms", Double),
    Column("success", Boolean),
    Column("error", String(ERROR_LIMIT)),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("os_user", String(64), nullable=False),
    Column("app_version", String(64), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("resolved_by", Integer),
    Column("details", Text),
    Index("ix_toolkit_journal_status", "status"),
)

journal_schema = Table(
    SCHEMA_TABLE, metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)

_INSERT = journal.insert()

# version N -> the function that brings a version-N journal to N+1 (DDL and data), in order.
UPGRADES: dict[int, Callable[[Connection], None]] = {}


@dataclass(frozen=True)
class Origin:
    """Who is writing: the host, process, OS user, application version and ENV of this run."""

    host: str
    pid: int
    os_user: str
    app_version: str
    environment: str

    def values(self) -> dict[str, object]:
        """The origin as column values."""
        return {"host": self.host[:255], "pid": self.pid, "os_user": self.os_user[:64],
                "app_version": self.app_version[:64], "environment": self.environment[:32]}


@dataclass(frozen=True)
class Entry:
    """One journal row as the readers see it."""

    id: int
    kind: str
    revision: str | None
    direction: str | None
    from_revision: str | None
    to_revision: str | None
    description: str
    status: str
    transactional: bool | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    success: bool | None
    error: str | None
    host: str
    pid: int
    os_user: str
    app_version: str
    environment: str
    resolved_by: int | None
    details: str | None

    def origin(self) -> Origin:
        """Who wrote this row."""
        return Origin(self.host, self.pid, self.os_user, self.app_version, self.environment)

    def as_json(self) -> dict[str, object]:
        """The row as JSON-ready data: ISO-8601 UTC times, details parsed back into an object."""
        data: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["started_at"] = iso(self.started_at)
        data["finished_at"] = iso(self.finished_at)
        data["duration_ms"] = None if self.duration_ms is None else round(self.duration_ms, 1)
        data["details"] = json.loads(self.details) if self.details else None
        return data


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def origin(environment: str) -> Origin:
    """This process as the journal records it."""
    return Origin(host=socket.gethostname(), pid=os.getpid(), os_user=os_user(), app_version=app_version(),
                  environment=environment)


def os_user() -> str:
    """The login name, or the numeric uid in containers without a passwd entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@cache
def app_version() -> str:
    """bot.__version__, plus the git commit when the project is a checkout (read from .git, no subprocess)."""
    commit = _git_commit(PROJECT_ROOT / ".git")
    return f"{__version__}+{commit[:12]}" if commit else __version__


def _git_commit(git_dir: Path) -> str | None:
    """HEAD's commit id from the files git keeps, or None when that is not cheap to know."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head[5:]
        ref_file = git_dir / ref
        if ref_file.is_file():
            return ref_file.read_text().strip() or None
        for line in (git_dir / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        return None
    return None


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@")
_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)")


def sanitize(text: str, secrets: Iterable[str] = ()) -> str:
    """An error summary fit for a database row: no known secret, URL password, bot token or password=…"""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(lambda match: f"{match['scheme']}{match['user']}:***@", text)
    text = _TOKEN.sub("***", text)
    text = _KEY_VALUE.sub(lambda match: f"{match[1]}{match[2]}***", text)
    text = " ".join(text.split())
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT - 1] + "…"


def error_summary(error: BaseException, secrets: Iterable[str] = ()) -> str:
    """The exception's type and the driver's first line, sanitized."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return sanitize(f"{type(original).__name__}: {lines[0] if lines else ''}".rstrip(": "), secrets)


def schema_version(connection: Connection) -> int | None:
    """The journal's schema version, or None when the toolkit never created it here."""
    if not inspect(connection).has_table(SCHEMA_TABLE):
        return None
    return connection.execute(select(journal_schema.c.version).where(journal_schema.c.id == 1)).scalar()


def ensure_schema(connection: Connection) -> int:
    """Create the journal, or bring an older one up to SCHEMA_VERSION; call it under the migration lock."""
    _end_transaction(connection)
    with connection.begin():
        version = schema_version(connection)
    if version is not None and version > SCHEMA_VERSION:
        raise Refused(f"the migration journal here is at schema version {version}",
                      f"this toolkit knows versions up to {SCHEMA_VERSION}, so a newer release wrote it",
                      "deploy the toolkit release that wrote it (or a newer one)")
    if version is None:
        with connection.begin():
            metadata.create_all(connection, checkfirst=True)
            connection.execute(journal_schema.insert().values(id=1, version=SCHEMA_VERSION, changed_at=now()))
        return SCHEMA_VERSION
    while version < SCHEMA_VERSION:
        with connection.begin():
            UPGRADES[version](connection)
            version += 1
            connection.execute(update(journal_schema).where(journal_schema.c.id == 1)
                               .values(version=version, changed_at=now()))
    return version


def insert_entry(connection: Connection, *, kind: str, status: str, who: Origin, started_at: datetime,
                 description: str = "", **values: object) -> int:
    """Insert one row in the caller's transaction and return its id."""
    row = {"kind": kind, "status": status, "started_at": started_at, "description": description[:255],
           **who.values(), **values}
    # One prebuilt statement with parameters: a fresh .values() per row cost ~0.3 ms of SQLAlchemy coercion.
    result = connection.execute(_INSERT, row, execution_options=INTERNAL)
    key = result.inserted_primary_key
    assert key is not None  # SQLAlchemy types it Optional; a single-row INSERT always has one
    return int(key[0])


def insert_run(connection: Connection, *, who: Origin, direction: str, started_at: datetime,
               steps: Sequence[tuple[str, str, str | None, str | None]]) -> int:
    """A running `run` row for a transactional run, listing its steps as (revision, message, from, to)."""
    destination = steps[-1][3]
    return insert_entry(connection, kind=RUN, status=RUNNING, who=who, started_at=started_at,
                        description=f"{direction} of {len(steps)} revision(s) to {destination or 'base'}",
                        direction=direction, from_revision=steps[0][2], to_revision=destination, transactional=True,
                        details=json.dumps({"steps": [list(step) for step in steps]}, separators=(",", ":")))


def close_run(connection: Connection, run_id: int, *, started_at: datetime, success: bool,
              error: str | None = None) -> None:
    """End a run row in the caller's transaction: `ok`, or `failed` with the error summary."""
    finished_at = now()
    update_entry(connection, run_id, status=OK if success else FAILED, success=success, error=error,
                 finished_at=finished_at, duration_ms=(finished_at - started_at).total_seconds() * 1000)


class InterruptedStep(TypedDict):
    """What interrupted_step() returns: the journal columns of the step an open run is in."""

    revision: str
    description: str
    from_revision: str | None
    to_revision: str | None
    started_at: datetime


def interrupted_step(run: Entry, later: Iterable[Entry]) -> InterruptedStep | None:
    """The planned step an open run is in, or died in: the first one without a row of its own.

    `later` holds rows written after the run row. None when the run's last step row is itself open (its
    DDL commits as it goes, so that row tells) or every planned step has a row.
    """
    mine = sorted((entry for entry in later if entry.kind == STEP and entry.id > run.id
                   and (entry.host, entry.pid) == (run.host, run.pid)), key=lambda entry: entry.id)
    if mine and mine[-1].status in UNFINISHED:
        return None
    planned = json.loads(run.details or "{}").get("steps", [])
    if len(mine) >= len(planned):
        return None
    revision, message, source, destination = planned[len(mine)]
    since = mine[-1].finished_at if mine and mine[-1].finished_at else run.started_at
    return {"revision": revision, "description": message, "from_revision": source, "to_revision": destination,
            "started_at": since}


def update_entry(connection: Connection, entry_id: int, **values: object) -> None:
    """Change one row in the caller's transaction."""
    connection.execute(update(journal).where(journal.c.id == entry_id).values(**values), execution_options=INTERNAL)


def committed(connection: Connection, work: Callable[[Connection], Any]) -> Any:
    """Run `work` in a transaction of its own on this connection and commit it."""
    _end_transaction(connection)
    with connection.begin():
        return work(connection)


def record_event(connection: Connection, kind: str, *, who: Origin, description: str,
                 started_at: datetime | None = None, finished_at: datetime | None = None, success: bool = True,
                 error: BaseException | str | None = None, details: Mapping[str, object] | None = None,
                 revision: str | None = None, secrets: Iterable[str] = ()) -> int:
    """Journal a non-step event (backup, restore, review, …) and commit it; returns the entry id.

    Make sure the journal exists first (ensure_schema, under the migration lock). `details` must be
    JSON-serializable and must not hold secrets; `error` is sanitized like a step's.
    """
    finished_at = finished_at or now()
    started_at = started_at or finished_at
    summary = error_summary(error, secrets) if isinstance(error, BaseException) else (
        sanitize(error, secrets) if error else None)
    values: dict[str, object] = {
        "revision": revision, "finished_at": finished_at, "success": success, "error": summary,
        "duration_ms": (finished_at - started_at).total_seconds() * 1000,
        "details": json.dumps(dict(details), sort_keys=True, default=str) if details else None,
    }
    return committed(connection, lambda conn: insert_entry(
        conn, kind=kind, status="ok" if success else FAILED, who=who, started_at=started_at,
        description=description, **values))


def unfinished(connection: Any) -> list[tuple[Any, ...]]:
    """Rows that are running or half-applied, by one parameterless SELECT on a SQLAlchemy or DB-API connection.

    Raises the driver's error when the journal table does not exist yet (nothing was migrated by the toolkit).
    """
    if hasattr(connection, "exec_driver_sql"):
        return [tuple(row) for row in connection.exec_driver_sql(UNFINISHED_SQL)]
    cursor = connection.cursor()
    try:
        cursor.execute(UNFINISHED_SQL)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def exists(connection: Connection) -> bool:
    """Whether the toolkit has created its journal in this database."""
    return inspect(connection).has_table(JOURNAL_TABLE)


def entries(connection: Connection, *, limit: int | None = None, kinds: Iterable[str] | None = None) -> list[Entry]:
    """Journal rows, newest first; empty when there is no journal yet."""
    if not exists(connection):
        return []
    query = select(journal).order_by(journal.c.id.desc())
    if kinds is not None:
        query = query.where(journal.c.kind.in_(list(kinds)))
    if limit is not None:
        query = query.limit(limit)
    return [_entry(row) for row in connection.execute(query)]


def open_entries(connection: Connection) -> list[Entry]:
    """Unresolved running and half-applied rows, oldest first; empty when there is no journal yet."""
    if not exists(connection):
        return []
    query = (select(journal).where(journal.c.status.in_(UNFINISHED), journal.c.resolved_by.is_(None))
             .order_by(journal.c.id))
    return [_entry(row) for row in connection.execute(query)]


def durations(connection: Connection, direction: str) -> dict[str, float]:
    """The last successful duration of each revision in one direction, for progress estimates."""
    if not exists(connection):
        return {}
    done = APPLIED if direction == "upgrade" else REVERTED
    query = (select(journal.c.revision, journal.c.duration_ms)
             .where(journal.c.kind == STEP, journal.c.direction == direction, journal.c.status == done)
             .order_by(journal.c.id))
    return {row.revision: float(row.duration_ms) for row in connection.execute(query) if row.duration_ms is not None}


def settle(connection: Connection, who: Origin) -> list[Entry]:
    """Under the migration lock: close what dead runs left open and return the unresolved half-applied rows.

    A running row here belongs to a process that is gone (it would hold the lock otherwise). A run row
    means the database rolled its current step back: that step gets an aborted entry and simply runs
    again. A step row means its DDL may have committed in part: it becomes half-applied.
    """
    def work(conn: Connection) -> list[Entry]:
        found = open_entries(conn)
        for entry in found:
            if entry.status != RUNNING:
                continue
            if entry.kind == RUN:
                _abort_run(conn, entry, who)
                continue
            status = ABORTED if entry.transactional else HALF_APPLIED
            note = ("the process ended before the step finished; the database rolled it back"
                    if entry.transactional else
                    "the process ended before the step finished; DDL that ran before that stayed committed")
            update_entry(conn, entry.id, status=status, success=False,
                         error=sanitize(f"{note} (found by pid {who.pid} on {who.host})"))
        return [entry for entry in open_entries(conn) if entry.status == HALF_APPLIED]

    return committed(connection, work)


def _abort_run(connection: Connection, run: Entry, who: Origin) -> None:
    """Close a dead run's row and give the step it died in an aborted entry, in the caller's transaction."""
    found_by = f"found by pid {who.pid} on {who.host}"
    later = [_entry(row) for row in connection.execute(
        select(journal).where(journal.c.id > run.id, journal.c.kind == STEP).order_by(journal.c.id))]
    step = interrupted_step(run, later)
    if step is not None:
        insert_entry(connection, kind=STEP, status=ABORTED, who=run.origin(), direction=run.direction,
                     transactional=True, success=False,
                     error=sanitize(f"the process ended during this step; the database rolled it back ({found_by})"),
                     **step)
    update_entry(connection, run.id, status=ABORTED, success=False,
                 error=sanitize(f"the process ended before the run finished ({found_by})"))


def half_applied_now(entries_found: Iterable[Entry], lock_free: bool) -> list[Entry]:
    """Which open rows are half-applied, judged without writing: running rows count only when nobody holds the lock."""
    return [entry for entry in entries_found
            if entry.status == HALF_APPLIED or (entry.status == RUNNING and lock_free and not entry.transactional)]


def resolve(connection: Connection, stamp_id: int) -> list[int]:
    """Mark every open row as resolved by a stamp, in the caller's transaction; returns their ids."""
    ids = [entry.id for entry in open_entries(connection)]
    if ids:
        connection.execute(update(journal).where(journal.c.id.in_(ids)).values(resolved_by=stamp_id))
    return ids


def _entry(row: Row[Any]) -> Entry:
    data = row._mapping
    return Entry(**{name: data[name] for name in Entry.__dataclass_fields__})


def _end_transaction(connection: Connection) -> None:
    """Commit whatever the connection auto-began (reads only, by contract) so a block of our own can start."""
    if connection.in_transaction():
        connection.commit()


def prepare(connection: Connection, who: Origin) -> list[Entry]:
    """Under the migration lock, before any step: the journal exists and is current, dead runs are settled."""
    ensure_schema(connection)
    return settle(connection, who)


def refuse_half_applied(found: Iterable[Entry], location: str) -> None:
    """Refuse to change a half-applied database, naming the revision and the way out."""
    entry = next(iter(found), None)
    if entry is None:
        return
    done = entry.to_revision or "base"
    undone = entry.from_revision or "base"
    ending = (f"failed ({entry.error})" if entry.finished_at is not None and entry.error else "never finished")
    raise Refused(
        f"revision {entry.revision} ({entry.description}) is half-applied on {location}",
        f"its {entry.direction} started {iso(entry.started_at)} by {entry.os_user}@{entry.host} (pid {entry.pid}) "
        f"and {ending}, and DDL that ran before that stayed committed",
        f"repair the schema by hand, then run `invoke stamp --to {done}` if you completed the {entry.direction} "
        f"or `invoke stamp --to {undone}` if you undid it (see docs/JOURNAL.md)")
