"""Review of pending revisions before a production upgrade: find operations that lose data or hold long locks.

Each revision's upgrade() is called against a recording stand-in for Alembic's `op` on an offline
(SQL-script) context, so its operations are seen but never run and never reach the database. A
revision that holds such an operation must carry the marker

    reviewed_destructive = "why this is safe (e.g. column unused since 1.4, backup taken)"

at module level, or the operator must allow it for one deploy (--allow-destructive or
ALLOW_DESTRUCTIVE_MIGRATIONS=true).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from alembic.operations import BatchOperations, Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.errors import Refused
from bot.logs import get_logger

log = get_logger("bot.review")

MARKER = "reviewed_destructive"
_DELETING_SQL = re.compile(r"^\s*(drop|truncate|delete|alter\s+table\s+\S+\s+drop)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One dangerous operation in one revision."""

    revision: str
    operation: str
    why: str

    def line(self) -> str:
        """revision: operation — why."""
        return f"{self.revision}: {self.operation} — {self.why}"


@dataclass(frozen=True)
class RevisionReview:
    """What the review found in one pending revision, and whether the revision vouches for it."""

    revision: str
    message: str
    findings: tuple[Finding, ...]
    marker_reason: str | None

    @property
    def accepted(self) -> bool:
        """Nothing dangerous, or a reason given in the file."""
        return not self.findings or bool(self.marker_reason)


class _RecordingBatch(BatchOperations):
    """batch_alter_table's operations, recorded instead of run."""

    def __init__(self, context: MigrationContext, recorded: list[Any], table_name: str, schema: str | None) -> None:
        super().__init__(context, impl=SimpleNamespace(table_name=table_name, schema=schema))  # type: ignore[arg-type]
        self.recorded = recorded

    def invoke(self, operation: Any) -> Any:
        self.recorded.append(operation)
        return None


def _recording_operations(context: MigrationContext, recorded: list[Any]) -> Operations:
    """Alembic's own Operations whose invoke keeps each operation object and runs nothing."""
    operations = Operations(context)

    def invoke(operation: Any) -> Any:
        recorded.append(operation)
        if isinstance(operation, alembic_ops.CreateTableOp):
            return operation.to_table(context)
        return None

    @contextmanager
    def batch_alter_table(table_name: str, schema: str | None = None, *_args: Any,
                          **_kwargs: Any) -> Iterator[BatchOperations]:
        yield _RecordingBatch(context, recorded, table_name, schema)

    # Instance attributes win over the class's methods when the `op` proxy binds them below.
    operations.invoke = invoke  # type: ignore[method-assign]
    operations.batch_alter_table = batch_alter_table  # type: ignore[method-assign]
    return operations


def review_revisions(scripts: ScriptDirectory, revisions: Sequence[str], dialect: str) -> list[RevisionReview]:
    """Inspect each revision's upgrade(), in order, without running any of it."""
    output = io.StringIO()
    context = MigrationContext.configure(dialect_name=dialect, opts={"as_sql": True, "output_buffer": output})
    created: set[str] = set()
    reviews = []
    for revision in revisions:
        script = scripts.get_revision(revision)
        if script is None:
            continue
        written = output.tell()
        operations, failure = _record(context, script.module)
        findings = [Finding(revision, "upgrade() could not be inspected without running it",
                            f"it raised {failure}; whatever it does cannot be checked")] if failure else []
        findings += _classify(revision, operations, dialect, created)
        # SQL sent through op.get_bind() lands in the offline script instead of the database: read it too.
        findings += [Finding(revision, f"op.get_bind() executes {statement[:80]!r}",
                             "raw SQL that deletes data or schema")
                     for statement in _statements(output.getvalue()[written:]) if _DELETING_SQL.match(statement)]
        marker = getattr(script.module, MARKER, None)
        reason = marker.strip() if isinstance(marker, str) and marker.strip() else None
        reviews.append(RevisionReview(revision, script.doc or "", tuple(findings), reason))
    return reviews


def _statements(script: str) -> list[str]:
    """The statements of an offline SQL script, one line each."""
    return [" ".join(part.split()) for part in script.split(";") if part.strip()]


def _record(context: MigrationContext, module: Any) -> tuple[list[Any], str | None]:
    """Call upgrade() with the recording `op` installed; an exception is reported, not raised."""
    recorded: list[Any] = []
    operations = _recording_operations(context, recorded)
    operations._install_proxy()
    try:
        module.upgrade()
    except Exception as error:  # noqa: BLE001 - a revision's own error is a finding, not a crash
        return recorded, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    finally:
        operations._remove_proxy()
    return recorded, None


def _classify(revision: str, operations: list[Any], dialect: str, created: set[str]) -> list[Finding]:
    """The dangerous ones among a revision's operations; `created` collects tables made during this run."""
    findings = []
    for operation in operations:
        found = _danger(operation, dialect, created)
        if isinstance(operation, alembic_ops.CreateTableOp):
            created.add(operation.table_name)
        if found:
            findings.append(Finding(revision, *found))
    return findings


def _danger(operation: Any, dialect: str, created: set[str]) -> tuple[str, str] | None:
    """(operation, why) for an operation that loses data or holds a long lock; None when it is safe."""
    table = getattr(operation, "table_name", None)
    if isinstance(operation, alembic_ops.DropTableOp):
        return f"drop table {table}", "every row of the table is lost"
    if isinstance(operation, alembic_ops.DropColumnOp):
        return (f"drop column {table}.{operation.column_name}",
                "the column's data is lost, and code still reading it breaks")
    if isinstance(operation, alembic_ops.RenameTableOp):
        return (f"rename table {table} to {operation.new_table_name}",
                "replicas still running the old code lose the table; use expand/contract")
    if isinstance(operation, alembic_ops.AlterColumnOp):
        column = f"{table}.{operation.column_name}"
        if operation.modify_name:
            return (f"rename column {column} to {operation.modify_name}",
                    "replicas still running the old code lose the column; use expand/contract")
        if operation.modify_type is not None and table not in created:
            return (f"change type of {column} to {operation.modify_type}",
                    "may rewrite the table under an exclusive lock and truncate or reject existing values")
        if operation.modify_nullable is False and table not in created:
            return (f"make {column} NOT NULL", "scans the whole table under a lock and fails if any row holds NULL")
        return None
    if isinstance(operation, alembic_ops.AddColumnOp):
        column = operation.column
        if (not column.nullable and column.server_default is None and not column.primary_key
                and table not in created):
            return (f"add NOT NULL column {table}.{column.name} without a default",
                    "fails on a table that has rows, or rewrites it; add it nullable or with a server_default")
        return None
    if isinstance(operation, alembic_ops.CreateIndexOp):
        concurrently = bool(operation.kw.get("postgresql_concurrently"))
        if dialect == "postgresql" and not concurrently and table not in created:
            return (f"create index {operation.index_name or ''} on {table} without CONCURRENTLY".replace("  ", " "),
                    "blocks every write to the table while the index builds; use postgresql_concurrently=True "
                    "inside op.get_context().autocommit_block()")
        return None
    if isinstance(operation, alembic_ops.CreateForeignKeyOp):
        source = operation.source_table
        if dialect == "postgresql" and source not in created:
            return (f"add foreign key {operation.constraint_name or ''} on {source}".replace("  ", " ").rstrip(),
                    f"checks every row of {source} while blocking writes to it and to {operation.referent_table}")
        return None
    if isinstance(operation, alembic_ops.CreateUniqueConstraintOp):
        if dialect == "postgresql" and table not in created:
            return (f"add unique constraint {operation.constraint_name or ''} on {table}".replace("  ", " ").rstrip(),
                    "builds a unique index while blocking writes; build it CONCURRENTLY first, then add the "
                    "constraint USING INDEX")
        return None
    if isinstance(operation, alembic_ops.ExecuteSQLOp):
        text = str(operation.sqltext)
        if _DELETING_SQL.match(text):
            return f"execute {text.strip().splitlines()[0][:80]!r}", "raw SQL that deletes data or schema"
    return None


def refuse_unreviewed(reviews: Sequence[RevisionReview]) -> None:
    """Exit 6 naming every unmarked dangerous operation; nothing has been applied yet."""
    rejected = [finding for review in reviews if not review.accepted for finding in review.findings]
    if not rejected:
        return
    for finding in rejected:
        log.error("destructive migration refused", revision=finding.revision, operation=finding.operation,
                  why=finding.why)
    listing = "; ".join(finding.line() for finding in rejected)
    raise Refused(f"pending revisions hold {len(rejected)} destructive operation(s) nobody marked as reviewed",
                  listing,
                  f"add {MARKER} = \"<why it is safe>\" to the revision file, or pass --allow-destructive "
                  "(ALLOW_DESTRUCTIVE_MIGRATIONS=true) for this deploy")
