"""What a captured schema is made of, dialect by dialect: parts in creation order, and what cannot be carried.

Each part has the statements that make it and a definition, the text two databases are compared by. The
rows that revisions wrote are parts too, rendered as INSERTs by SQLAlchemy (literal values, the dialect's
own quoting), so seed and lookup data travel with the schema.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import CompileError, SAWarning
from sqlglot import exp

from bot.errors import Refused
from bot.migrate.graph import TOOLKIT_TABLES

ROWS_PER_INSERT = 500


@dataclass(frozen=True)
class SchemaObject:
    """What every object a baseline talks about has: a kind and a name."""

    kind: str
    name: str

    @property
    def key(self) -> str:
        """How differences, refusals and --leave-out name it: "index ix_users_name"."""
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Part(SchemaObject):
    """One object of a schema: the statements that make it and the definition two databases are compared by."""

    statements: tuple[str, ...]
    definition: str


@dataclass(frozen=True)
class Uncarried(SchemaObject):
    """An object a baseline cannot make (a trigger, a function, an unknown extension)."""

    probe: str  # SQL answering one row while the object exists: finds the revision that made it


@dataclass(frozen=True)
class Captured:
    """A database's schema and rows as parts, what it holds that cannot be carried, and how to undo the parts."""

    dialect: str
    parts: tuple[Part, ...]
    uncarried: tuple[Uncarried, ...] = ()
    drops: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def statements(self) -> list[str]:
        """Every statement, in the order they must run."""
        return [statement for part in self.parts for statement in part.statements]

    def definitions(self) -> dict[str, str]:
        """Each part's definition by its key, for comparing two builds."""
        return {part.key: part.definition for part in self.parts}


def bot_tables(names: Iterable[str]) -> list[str]:
    """Table names without the toolkit's own (alembic_version and the journal travel with no baseline)."""
    return sorted(name for name in names if name not in TOOLKIT_TABLES)


@contextmanager
def reflecting() -> Iterator[None]:
    """SQLAlchemy reflection without its warning on expression indexes: the catalog's definitions compare those."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
        yield


def insert_order(connection: Connection, names: Sequence[str]) -> list[Table]:
    """The bot's tables reflected, parents before children, so rows load with foreign keys checked."""
    metadata = MetaData()
    with reflecting():
        metadata.reflect(connection, only=list(names), views=False)
    return [table for table in metadata.sorted_tables if table.name in names]


def row_parts(connection: Connection, tables: Sequence[Table], *, skip: Iterable[str] = ()) -> list[Part]:
    """The rows of each table as INSERTs of literal values (generated and skipped columns left out)."""
    skipped = set(skip)
    # Rendered as plain SQL: the named paramstyle keeps a literal's % single (as Alembic's offline mode does).
    plain: Any = type(connection.dialect)(paramstyle="named")  # type: ignore[call-arg]  # every dialect takes it
    parts = []
    for table in tables:
        columns = [column for column in table.columns if column.computed is None and column.name not in skipped]
        order = list(table.primary_key.columns) or columns
        rows = [dict(row._mapping) for row in connection.execute(select(*columns).order_by(*order))]
        statements = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            statement = insert(table).values(rows[start:start + ROWS_PER_INSERT])
            try:
                compiled = statement.compile(dialect=plain, compile_kwargs={"literal_binds": True})
            except (CompileError, NotImplementedError) as error:
                raise Refused(f"the rows of table {table.name} cannot be written as SQL", str(error).rstrip("."),
                              f"leave them out with --leave-out 'rows {table.name}' and seed them another way")\
                    from None
            statements.append(str(compiled))
        parts.append(Part("rows", table.name, tuple(statements), rows_digest(rows)))
    return parts


def rows_digest(rows: Sequence[dict[str, object]]) -> str:
    """A table's rows, as compared between two builds: their count and a digest of their values."""
    canonical = sorted(json.dumps(row, sort_keys=True, default=repr) for row in rows)
    return f"{len(rows)} row(s), sha256 {hashlib.sha256(''.join(canonical).encode()).hexdigest()[:16]}"


def views_in_order(views: dict[str, str], read: str) -> list[str]:
    """View names ordered so that each comes after the views its query reads (sqlglot finds the references)."""
    needs: dict[str, set[str]] = {}
    for name, query in views.items():
        try:
            tree = sqlglot.parse_one(query, read=read)
        except sqlglot.errors.ParseError:
            needs[name] = set()
            continue
        needs[name] = {table.name for table in tree.find_all(exp.Table) if table.name in views and table.name != name}
    ordered: list[str] = []
    placed: set[str] = set()
    while len(ordered) < len(views):
        ready = sorted(name for name in views if name not in placed and needs[name] <= placed)
        if not ready:  # a reference the parser misread: keep the catalog's own order for what is left
            ready = sorted(name for name in views if name not in placed)
        ordered += ready
        placed.update(ready)
    return ordered


def refuse_uncarried(found: Sequence[Uncarried], made_by: dict[str, str | None]) -> None:
    """One line naming the first object a baseline cannot carry and the revision that made it."""
    if not found:
        return
    first = found[0]
    revision = made_by.get(first.key)
    more = f" (and {len(found) - 1} more: {', '.join(item.key for item in found[1:])})" if len(found) > 1 else ""
    raise Refused(f"{first.key}{f' (made by revision {revision})' if revision else ''} cannot be carried by a "
                  f"baseline{more}", "a baseline makes tables, columns, keys, indexes, sequences, enums, views "
                  "and rows; it would silently lose this",
                  f"keep it in a revision after the baseline, or pass --leave-out '{first.key}' to squash "
                  "knowingly without it", objects=[item.key for item in found])
