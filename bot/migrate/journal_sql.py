"""The journal's names and the SELECTs the at-head fast path runs through a plain DB-API connection.

No SQLAlchemy table objects here: a no-op `migrate` or `start` reads the journal through these two queries and
never loads bot.migrate.journal (its table definitions are the one place that creates and writes the rows).
"""

from __future__ import annotations

import json
from typing import Any

JOURNAL_TABLE = "toolkit_journal"
SCHEMA_TABLE = "toolkit_journal_schema"

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

CHECKSUMS = "checksums"  # kind: the digest of every revision's file checksum, after an upgrade to head

# One cheap SELECT, no parameters, valid on every backend: the rows that block or may block a start.
UNFINISHED_SQL = (f"SELECT id, revision, direction, from_revision, to_revision, status, transactional, started_at, "
                  f"host, pid FROM {JOURNAL_TABLE} WHERE status IN ('{RUNNING}', '{HALF_APPLIED}') "
                  f"AND resolved_by IS NULL ORDER BY id")
LATEST_DIGEST_SQL = f"SELECT details FROM {JOURNAL_TABLE} WHERE kind = '{CHECKSUMS}' ORDER BY id DESC LIMIT 1"


def unfinished(connection: Any) -> list[tuple[Any, ...]]:
    """Rows that are running or half-applied, by one parameterless SELECT on a SQLAlchemy or DB-API connection.

    Raises the driver's error when the journal table does not exist yet (nothing was migrated by the toolkit).
    """
    return fetch(connection, UNFINISHED_SQL)


def latest_digest(connection: Any) -> str | None:
    """The digest of the last upgrade to head, by one parameterless SELECT on a SQLAlchemy or DB-API connection."""
    rows = fetch(connection, LATEST_DIGEST_SQL)
    if not rows:
        return None
    value = details_of(rows[0][0]).get("digest")
    return value if isinstance(value, str) else None


def details_of(text: str | None) -> dict[str, Any]:
    """A row's JSON details as a dict ({} when empty or not JSON)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def fetch(connection: Any, sql: str) -> list[tuple[Any, ...]]:
    """Every row of a parameterless SELECT, on a SQLAlchemy connection or a DB-API one."""
    if hasattr(connection, "exec_driver_sql"):
        return [tuple(row) for row in connection.exec_driver_sql(sql)]
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
