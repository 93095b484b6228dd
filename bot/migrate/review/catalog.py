"""What the schema holds right now, for the review's judgements (a column's type, a proven NOT NULL, ...).

Online, the catalog reads the migration's own connection, so it sees what earlier statements of the
same transaction did. Offline (SQL rendered by `--sql`), it reads the database as it was before the
pending revisions, when one is reachable, and lays the rendered statements' changes over it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from bot.data.engine import INTERNAL
from bot.migrate.review import parsers
from bot.migrate.review import statements as st
from bot.migrate.review.situation import VOLATILE_FUNCTIONS, ColumnFacts
from bot.migrate.review.statements import Action, TableName

Pause = Callable[[], AbstractContextManager[None]]


class Catalog:
    """Schema facts for the review, read on demand."""

    def __init__(self, dialect_name: str, *, offline: bool = False, connection: Connection | None = None) -> None:
        self.dialect = st.family(dialect_name)
        self.offline = offline
        self._connection = connection
        self._pause: Pause = nullcontext
        self._overlay: dict[tuple[str, str], dict[str, ColumnFacts] | None] = {}
        self.server_version: tuple[int, ...] = ()
        self.default_schema = "main" if self.dialect == st.SQLITE else ""
        if connection is not None:
            self._describe(connection)

    def bind(self, connection: Connection, pause: Pause) -> None:
        """Read through this connection, with the review paused while it does."""
        self._connection, self._pause = connection, pause
        self._describe(connection)

    def _describe(self, connection: Connection) -> None:
        dialect = connection.dialect
        self.server_version = tuple(int(part) for part in (dialect.server_version_info or ())
                                    if isinstance(part, int))
        if self.dialect != st.SQLITE:
            self.default_schema = dialect.default_schema_name or ""

    # -- reads ----------------------------------------------------------------------------------------------

    def columns(self, table: TableName) -> dict[str, ColumnFacts] | None:
        """Every column of the table, or None when the table is unknown."""
        key = self._key(table)
        if self.offline and key in self._overlay:
            return self._overlay[key]
        found = self._read_columns(table)
        if self.offline:
            self._overlay[key] = dict(found) if found is not None else None
        return found

    def column(self, table: TableName, column: str) -> ColumnFacts | None:
        """One column, or None when unknown."""
        found = self.columns(table) or {}
        return found.get(column) or found.get(column.lower())

    def not_null_proven(self, table: TableName, column: str) -> bool:
        """PostgreSQL: a validated CHECK constraint says `column IS NOT NULL`, so SET NOT NULL skips its scan."""
        if self.dialect != st.POSTGRESQL or self._connection is None:
            return False
        definitions = self._query("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = "
                                  "to_regclass(:name) AND contype = 'c' AND convalidated",
                                  {"name": self._qualified(table)})
        # Only PostgreSQL gets here, and its reader is loaded already by the review of its statements.
        from bot.migrate.review.pg_reader import proves_not_null

        return any(proves_not_null(str(row[0]), column) for row in definitions or [])

    def volatile(self, function: str) -> bool:
        """PostgreSQL asks pg_proc; elsewhere (or when unreadable) the well-known volatile functions count."""
        if self.dialect == st.POSTGRESQL and self._connection is not None:
            rows = self._query("SELECT provolatile FROM pg_proc WHERE proname = :name", {"name": function})
            if rows:
                return any(str(row[0]) == "v" for row in rows)
        return function.lower() in VOLATILE_FUNCTIONS

    # -- offline: the rendered statements' changes ------------------------------------------------------------

    def apply(self, action: Action) -> None:
        """Offline: remember what a rendered statement changed (online the database itself remembers)."""
        if not self.offline or action.table is None:
            return
        key = self._key(action.table)
        if action.kind == st.CREATE_TABLE:
            self._overlay[key] = {spec.name: _facts(spec) for spec in action.columns if spec.type is not None}
            return
        if action.kind == st.DROP_TABLE:
            self._overlay[key] = None
            return
        if action.kind == st.RENAME_TABLE and action.new_table is not None:
            self._overlay[self._key(action.new_table)] = self.columns(action.table)
            self._overlay[key] = None
            return
        columns = self.columns(action.table)
        if columns is None or not action.column:
            return
        current = columns.get(action.column)
        if action.kind == st.ADD_COLUMN and action.spec is not None and action.spec.type is not None:
            columns[action.column] = _facts(action.spec)
        elif action.kind == st.DROP_COLUMN:
            columns.pop(action.column, None)
        elif action.kind == st.RENAME_COLUMN and current is not None and action.new_name:
            columns[action.new_name] = columns.pop(action.column)
        elif action.kind == st.ALTER_TYPE and current is not None and action.spec and action.spec.type:
            columns[action.column] = ColumnFacts(action.spec.type, current.nullable)
        elif action.kind == st.MODIFY_COLUMN and action.spec is not None and action.spec.type is not None:
            columns.pop(action.column, None)
            columns[action.new_name or action.column] = _facts(action.spec)
        elif action.kind in (st.SET_NOT_NULL, st.DROP_NOT_NULL) and current is not None:
            columns[action.column] = ColumnFacts(current.type, action.kind == st.DROP_NOT_NULL, current.octet_length)

    # -- helpers --------------------------------------------------------------------------------------------

    def _read_columns(self, table: TableName) -> dict[str, ColumnFacts] | None:
        """The table's columns from the database's own catalog; None when it has no such table."""
        if self._connection is None:
            return None
        if self.dialect == st.POSTGRESQL:
            rows = self._query("SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, NULL "
                               "FROM pg_attribute a WHERE a.attrelid = to_regclass(:name) AND a.attnum > 0 "
                               "AND NOT a.attisdropped ORDER BY a.attnum", {"name": self._qualified(table)})
        elif self.dialect == st.MYSQL:
            rows = self._query("SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', CHARACTER_OCTET_LENGTH "
                               "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) "
                               "AND TABLE_NAME = :table ORDER BY ORDINAL_POSITION",
                               {"schema": table.schema, "table": table.name})
        else:
            rows = self._query("SELECT name, type, \"notnull\" = 0 AND pk = 0, NULL FROM pragma_table_info(:table, "
                               ":schema)", {"table": table.name, "schema": table.schema or "main"})
        if not rows:
            return None
        found = {}
        for name, type_text, nullable, octets in rows:
            column_type = parsers.read_type(str(type_text), self.dialect)
            if column_type is not None:
                found[str(name)] = ColumnFacts(column_type, bool(nullable), int(octets) if octets else None)
        return found

    def _query(self, sql: str, parameters: dict[str, Any]) -> list[Any] | None:
        """A catalog query on the migration's connection; None when the database would not answer."""
        connection = self._connection
        if connection is None:
            return None
        # PostgreSQL: a savepoint keeps a failed read from aborting the step's transaction.
        guarded = self.dialect == st.POSTGRESQL and connection.in_transaction() and \
            connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT"
        try:
            with self._pause(), connection.begin_nested() if guarded else nullcontext():
                return list(connection.execute(sa.text(sql), parameters, execution_options=INTERNAL))
        except SQLAlchemyError:
            return None

    def _qualified(self, table: TableName) -> str:
        assert self._connection is not None
        quote = self._connection.dialect.identifier_preparer.quote
        return f"{quote(table.schema)}.{quote(table.name)}" if table.schema else quote(table.name)

    def _key(self, table: TableName) -> tuple[str, str]:
        return (table.schema or self.default_schema, table.name)


def _facts(spec: st.ColumnSpec) -> ColumnFacts:
    assert spec.type is not None
    return ColumnFacts(spec.type, not spec.not_null)
