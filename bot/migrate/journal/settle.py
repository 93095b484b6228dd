"""What a dead run left behind: open rows closed as aborted or half-applied, and the refusal that follows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from bot.errors import Refused
from bot.migrate.journal import (
    ABORTED,
    HALF_APPLIED,
    RUN,
    RUNNING,
    STEP,
    UNFINISHED,
    Entry,
    committed,
    ensure_schema,
    entry_of,
    insert_entry,
    iso,
    journal,
    open_entries,
    sanitize,
    update_entry,
)
from bot.migrate.journal.origin import Origin


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
    later = [entry_of(row) for row in connection.execute(
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
