"""What a judge may ask about the database and the run so far, and how it words a finding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.migrate.review.rules import RULES, Finding
from bot.migrate.review.statements import Action, ColumnType, TableName


@dataclass(frozen=True)
class ColumnFacts:
    """What the live schema says about a column before the statement runs."""

    type: ColumnType
    nullable: bool
    octet_length: int | None = None  # MySQL/MariaDB: bytes a full VARCHAR value takes in its character set


class Situation(Protocol):
    """What the judge may ask about the database and the run so far."""

    @property
    def dialect(self) -> str:
        """The dialect family (statements.POSTGRESQL, MYSQL or SQLITE)."""

    @property
    def server_version(self) -> tuple[int, ...]:
        """The server's version, as numbers."""

    def existing(self, table: TableName | None) -> bool:
        """The table was there before this run (not created by an earlier statement of it)."""

    def new_index(self, name: str | None) -> bool:
        """The index was created earlier in this run."""

    def rebuilding(self, table: TableName | None) -> bool:
        """Batch mode has copied this table and filled the copy: dropping the original is part of the rebuild."""

    def in_transaction(self) -> bool:
        """The statement runs inside a transaction block (PostgreSQL: CONCURRENTLY is then impossible)."""

    def column(self, table: TableName, column: str) -> ColumnFacts | None:
        """The column as the live schema has it, or None when unknown."""

    def columns(self, table: TableName) -> dict[str, ColumnFacts] | None:
        """Every column of the table as the live schema has it, or None when unknown."""

    def not_null_proven(self, table: TableName, column: str) -> bool:
        """PostgreSQL: a validated CHECK (column IS NOT NULL) exists, so SET NOT NULL needs no scan."""

    def volatile(self, function: str) -> bool:
        """The function's result changes per row (PostgreSQL: pg_proc.provolatile = 'v')."""


# Functions a PostgreSQL default may call without rewriting the table, when the database cannot be asked.
STABLE_FUNCTIONS = frozenset({"now", "current_timestamp", "current_date", "localtimestamp", "statement_timestamp",
                              "transaction_timestamp", "timezone", "lower", "upper", "coalesce", "to_jsonb",
                              "jsonb_build_object", "json_build_object", "array"})


VOLATILE_FUNCTIONS = frozenset({"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
                                "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval", "uuid", "rand",
                                "uuid_short", "sysdate"})


TABLE_REBUILD_PREFIX = "_alembic_tmp_"  # Alembic's batch mode copies a table into this name, then renames it back


def finding(rule_id: str, target: str, action: Action, *, why: str | None = None,
            level: str | None = None) -> Finding:
    """A finding of this rule on a target, in the rule's own words unless `why` or `level` say otherwise."""
    found = RULES[rule_id]
    return Finding(rule_id, level or found.level, target, why or found.why, found.fix, action.statement)


def column_target(action: Action) -> str:
    """table.column, as findings name a column."""
    return f"{action.table}.{action.column}" if action.table else str(action.column)
