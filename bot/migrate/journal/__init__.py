"""The migration journal: the toolkit's own audit table of every step, stamp and operator event.

The table lives in its own MetaData (never the bot's models), carries its own schema version in a
second one-row table, and is read and written through plain SQLAlchemy Core on whatever sync
connection the caller holds, so a migration journals on its own connection and SQLite never
deadlocks with itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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

from bot.data.engine import INTERNAL
from bot.errors import Refused
from bot.migrate.journal.origin import Origin
from bot.migrate.journal_sql import (  # the journal's names, shared with the at-head fast path
    ABORTED as ABORTED,
)
from bot.migrate.journal_sql import (
    APPLIED as APPLIED,
)
from bot.migrate.journal_sql import (
    FAILED as FAILED,
)
from bot.migrate.journal_sql import (
    HALF_APPLIED as HALF_APPLIED,
)
from bot.migrate.journal_sql import (
    JOURNAL_TABLE as JOURNAL_TABLE,
)
from bot.migrate.journal_sql import (
    OK as OK,
)
from bot.migrate.journal_sql import (
    REVERTED as REVERTED,
)
from bot.migrate.journal_sql import (
    RUN as RUN,
)
from bot.migrate.journal_sql import (
    RUNNING as RUNNING,
)
from bot.migrate.journal_sql import (
    SCHEMA_TABLE as SCHEMA_TABLE,
)
from bot.migrate.journal_sql import (
    STAMP as STAMP,
)
from bot.migrate.journal_sql import (
    STAMPED as STAMPED,
)
from bot.migrate.journal_sql import (
    STEP as STEP,
)
from bot.migrate.journal_sql import (
    UNFINISHED as UNFINISHED,
)
from bot.migrate.journal_sql import (
    unfinished as unfinished,
)
from bot.redact import redact

SCHEMA_VERSION = 1

ERROR_LIMIT = 500




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


def sanitize(text: str, secrets: Iterable[str] = ()) -> str:
    """An error summary fit for a database row: the one redactor (bot.redact), on one line, at most ERROR_LIMIT."""
    text = " ".join(redact(text, secrets).split())
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
    return [entry_of(row) for row in connection.execute(query)]


def open_entries(connection: Connection) -> list[Entry]:
    """Unresolved running and half-applied rows, oldest first; empty when there is no journal yet."""
    if not exists(connection):
        return []
    query = (select(journal).where(journal.c.status.in_(UNFINISHED), journal.c.resolved_by.is_(None))
             .order_by(journal.c.id))
    return [entry_of(row) for row in connection.execute(query)]


def durations(connection: Connection, direction: str) -> dict[str, float]:
    """The last successful duration of each revision in one direction, for progress estimates."""
    if not exists(connection):
        return {}
    done = APPLIED if direction == "upgrade" else REVERTED
    query = (select(journal.c.revision, journal.c.duration_ms)
             .where(journal.c.kind == STEP, journal.c.direction == direction, journal.c.status == done)
             .order_by(journal.c.id))
    return {row.revision: float(row.duration_ms) for row in connection.execute(query) if row.duration_ms is not None}


def entry_of(row: Row[Any]) -> Entry:
    """A selected journal row as an Entry."""
    data = row._mapping
    return Entry(**{name: data[name] for name in Entry.__dataclass_fields__})


def _end_transaction(connection: Connection) -> None:
    """Commit whatever the connection auto-began (reads only, by contract) so a block of our own can start."""
    if connection.in_transaction():
        connection.commit()
