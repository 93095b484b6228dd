"""The review's rules: stable ids, what each catches on which database, why it matters, and the safe recipe.

`judge` turns one statement's action (bot.migrate.review.statements) into findings, given what the schema
holds right now (`Situation`). Each rule is documented in docs/REVIEW.md under its id, and a
revision acknowledges a finding by that id: `reviewed = {"drop-column": "why it is safe"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.migrate.review import statements as st
from bot.migrate.review.statements import Action, ColumnType, TableName

DANGER = "danger"  # refused in production unless acknowledged
ADVICE = "advice"  # reported, never refused


@dataclass(frozen=True)
class Rule:
    """One check: its id, level, one-line title, why it matters, the safe way, and squawk's equivalents."""

    id: str
    level: str
    title: str
    why: str
    fix: str
    squawk: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A rule that fired on one statement of one revision."""

    rule: str
    level: str
    target: str
    why: str
    fix: str
    statement: str
    revision: str | None = None

    def line(self) -> str:
        """rule on target (revision): why."""
        where = f" in revision {self.revision}" if self.revision else ""
        return f"{self.rule} on {self.target}{where}: {self.why}"


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


R = Rule
RULES: dict[str, Rule] = {rule.id: rule for rule in (
    R("drop-table", DANGER, "drops a table",
      "every row of the table is lost, and replicas still running the previous release fail on it",
      "first ship code that no longer uses the table, back it up, then drop it in a later release",
      ("ban-drop-table",)),
    R("drop-column", DANGER, "drops a column",
      "the column's data is lost, and replicas still running the previous release fail when they read or write it",
      "ship code that ignores the column first (SQLAlchemy: remove it from the model), then drop it in a later "
      "release", ("ban-drop-column",)),
    R("drop-schema", DANGER, "drops a schema or database",
      "every table in it, and every row, is lost", "never from a migration: do it by hand after a backup",
      ("ban-drop-database", "ban-drop-schema")),
    R("rename-table", DANGER, "renames a table (or moves it to another schema)",
      "replicas still running the previous release lose the table the moment the rename commits",
      "expand/contract: create the new table, write to both, backfill, switch reads, then drop the old one",
      ("renaming-table",)),
    R("rename-column", DANGER, "renames a column",
      "replicas still running the previous release lose the column the moment the rename commits",
      "expand/contract: add the new column, write to both, backfill, switch reads, then drop the old one",
      ("renaming-column",)),
    R("change-column-type", DANGER, "changes a column's type",
      "PostgreSQL rewrites the table under an ACCESS EXCLUSIVE lock (reads and writes wait), MySQL/MariaDB copy "
      "it; values may be truncated or rejected, and old code may not read the new type",
      "add a new column of the new type, backfill it in batches, switch the code, drop the old column; widening "
      "a VARCHAR (and the other known-safe changes in docs/REVIEW.md) is allowed as is", ("changing-column-type",)),
    R("add-not-null-column", DANGER, "adds a NOT NULL column without a default to an existing table",
      "PostgreSQL and SQLite refuse it on a table with rows; MySQL/MariaDB fill in 0 or '' silently, and old "
      "code inserting rows without the column fails",
      "add it nullable (or with a server_default), backfill, then make it NOT NULL in a later revision",
      ("adding-required-field",)),
    R("volatile-default", DANGER, "adds a column whose default is volatile (random(), gen_random_uuid(), ...)",
      "a volatile default is evaluated per row: PostgreSQL rewrites the whole table under an ACCESS EXCLUSIVE "
      "lock, MySQL/MariaDB copy it",
      "add the column without a default, set the default afterwards (new rows only), backfill old rows in batches",
      ("adding-field-with-default",)),
    R("add-identity-column", DANGER, "adds a serial, identity or AUTO_INCREMENT column to an existing table",
      "every existing row gets a value: the table is rewritten (PostgreSQL) or copied (MySQL/MariaDB) under a lock",
      "create the new table with the column from the start, or add it nullable and fill it in batches from a "
      "sequence", ("adding-serial-primary-key-field", "adding-field-with-default")),
    R("add-stored-generated-column", DANGER, "adds a stored generated column to an existing table",
      "the value is computed and written for every row: the table is rewritten under a lock",
      "use a virtual generated column (MySQL/MariaDB), or a plain column filled by a backfill and a trigger"),
    R("set-not-null", DANGER, "makes an existing column NOT NULL",
      "PostgreSQL scans the whole table under an ACCESS EXCLUSIVE lock, MySQL/MariaDB copy the table; it fails if "
      "any row holds NULL",
      "PostgreSQL 12+: add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later revision, then SET "
      "NOT NULL (no scan) and drop the check", ("adding-not-nullable-field",)),
    R("drop-not-null", ADVICE, "drops NOT NULL from a column",
      "code of the previous release may assume the column is never NULL",
      "make sure every reader handles NULL before deploying this", ("ban-drop-not-null",)),
    R("create-index-blocking", DANGER, "builds an index without CONCURRENTLY on an existing PostgreSQL table",
      "writes to the table wait until the whole index is built",
      "op.create_index(..., postgresql_concurrently=True) inside `with op.get_context().autocommit_block():`",
      ("require-concurrent-index-creation",)),
    R("drop-index-blocking", DANGER, "drops an index without CONCURRENTLY (PostgreSQL)",
      "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait behind it",
      "op.drop_index(..., postgresql_concurrently=True) inside `with op.get_context().autocommit_block():`",
      ("require-concurrent-index-deletion",)),
    R("reindex-blocking", DANGER, "rebuilds an index without CONCURRENTLY (PostgreSQL)",
      "REINDEX blocks writes to the table (and reads through the index) until it finishes",
      "REINDEX ... CONCURRENTLY inside `with op.get_context().autocommit_block():`", ("require-concurrent-reindex",)),
    R("concurrently-in-transaction", DANGER, "runs CONCURRENTLY inside a transaction block",
      "PostgreSQL refuses CREATE/DROP INDEX CONCURRENTLY inside a transaction, and every step runs in one",
      "wrap the operation in `with op.get_context().autocommit_block():`",
      ("ban-concurrent-index-creation-in-transaction",)),
    R("add-foreign-key", DANGER, "adds a foreign key that is validated at once",
      "PostgreSQL checks every row while blocking writes to both tables; MySQL/MariaDB copy the table",
      "PostgreSQL: postgresql_not_valid=True (ADD ... NOT VALID) here, VALIDATE CONSTRAINT in a later revision; "
      "MySQL/MariaDB: add it while the table is small, or during a quiet window",
      ("adding-foreign-key-constraint", "constraint-missing-not-valid")),
    R("add-check-constraint", DANGER, "adds a CHECK constraint that is validated at once",
      "PostgreSQL scans every row under an ACCESS EXCLUSIVE lock; MySQL/MariaDB copy the table",
      "PostgreSQL: add it NOT VALID (postgresql_not_valid=True), VALIDATE CONSTRAINT in a later revision",
      ("constraint-missing-not-valid",)),
    R("add-unique-constraint", DANGER, "adds a UNIQUE constraint to an existing PostgreSQL table",
      "it builds a unique index while blocking writes to the table",
      "CREATE UNIQUE INDEX CONCURRENTLY (autocommit block), then ADD CONSTRAINT ... UNIQUE USING INDEX",
      ("disallowed-unique-constraint", "constraint-missing-not-valid")),
    R("change-primary-key", DANGER, "adds or drops a primary key on an existing table",
      "PostgreSQL builds the index under an ACCESS EXCLUSIVE lock; MySQL/MariaDB rebuild the whole table",
      "PostgreSQL: CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX; MySQL/MariaDB: a quiet "
      "window, or an online schema change tool"),
    R("add-exclusion-constraint", DANGER, "adds an exclusion constraint to an existing table",
      "PostgreSQL builds its index and checks every row while blocking reads and writes",
      "there is no online way: add it while the table is small or during a quiet window"),
    R("truncate", DANGER, "empties a table with TRUNCATE",
      "every row is lost (CASCADE also empties every table that references it)",
      "delete what you must with a WHERE clause, or drop the table in a release that no longer uses it",
      ("ban-truncate-cascade",)),
    R("delete-without-where", DANGER, "deletes every row of a table (DELETE without WHERE, CTEs included)",
      "every row is lost", "add the WHERE clause that names what must go"),
    R("update-without-where", DANGER, "updates every row of a table (UPDATE without WHERE, CTEs included)",
      "every row is rewritten and locked until the step commits, and the old values are gone",
      "backfill in batches (WHERE id BETWEEN ...), outside the revision that changes the schema"),
    R("batch-rebuild", DANGER, "rebuilds a table through a copy (batch_alter_table) outside SQLite",
      "the table is copied, dropped and renamed under a lock: comments, grants, triggers and dependent views are "
      "lost, and every write waits",
      "use plain op.* calls (they are ALTER statements on PostgreSQL and MySQL/MariaDB); keep batch mode for SQLite"),
    R("transaction-control", DANGER, "runs BEGIN, COMMIT, ROLLBACK or SAVEPOINT itself",
      "each step runs in its own transaction; ending it early commits half a revision, so a failure afterwards "
      "leaves it half-applied", "let the toolkit manage the transaction; use op.get_context().autocommit_block() "
      "for statements that must run outside one", ("transaction-nesting", "ban-uncommitted-transaction")),
    R("domain-constraint", DANGER, "adds a constraint to an existing domain without NOT VALID (PostgreSQL)",
      "every column of that domain is checked, row by row, under lock", "ALTER DOMAIN ... ADD CONSTRAINT ... NOT "
      "VALID, then VALIDATE CONSTRAINT later", ("ban-alter-domain-with-add-constraint",)),
    R("domain-check", ADVICE, "creates a domain with a CHECK constraint (PostgreSQL)",
      "changing that check later validates every column of the domain under lock",
      "prefer CHECK constraints on the tables", ("ban-create-domain-with-constraint",)),
    R("identifier-too-long", DANGER, "uses a name longer than the database keeps",
      "PostgreSQL silently cuts names to 63 bytes (MySQL/MariaDB refuse more than 64 characters): two names may "
      "collide, and a later DROP or ALTER by the full name misses", "choose a shorter name",
      ("identifier-too-long",)),
    R("uncheckable-sql", DANGER, "runs SQL the review cannot read",
      "a statement the parser cannot read, or procedural code (DO blocks, CALL), may do anything",
      "split it into plain statements, or acknowledge it after reading it yourself", ("syntax-error",)),
    R("prefer-bigint", ADVICE, "uses a 16- or 32-bit integer column (PostgreSQL)",
      "ids and counters outgrow 2^31; widening later rewrites the table", "use BigInteger",
      ("prefer-bigint-over-int", "prefer-bigint-over-smallint")),
    R("prefer-identity", ADVICE, "uses serial (PostgreSQL)",
      "serial columns have odd ownership and permission rules", "use sa.Identity() (GENERATED ... AS IDENTITY)",
      ("prefer-identity",)),
    R("prefer-text", ADVICE, "uses VARCHAR(n) (PostgreSQL)",
      "changing the limit later needs an ACCESS EXCLUSIVE lock; TEXT with a CHECK on its length can change without",
      "use sa.Text with a CHECK constraint on length()", ("prefer-text-field",)),
    R("prefer-timestamptz", ADVICE, "uses TIMESTAMP without time zone (PostgreSQL)",
      "the values' time zone is lost; comparisons across zones go wrong", "use sa.DateTime(timezone=True)",
      ("prefer-timestamp-tz",)),
    R("char-column", ADVICE, "uses CHAR(n) (PostgreSQL)", "CHAR pads with spaces and is never faster than TEXT",
      "use sa.Text or sa.String", ("ban-char-field",)),
    R("prefer-jsonb", ADVICE, "uses JSON rather than JSONB (PostgreSQL)",
      "JSON has no equality operator, so DISTINCT and GROUP BY fail on it, and it cannot be indexed",
      "use sqlalchemy.dialects.postgresql.JSONB"),
)}

# Functions a PostgreSQL default may call without rewriting the table, when the database cannot be asked.
STABLE_FUNCTIONS = frozenset({"now", "current_timestamp", "current_date", "localtimestamp", "statement_timestamp",
                              "transaction_timestamp", "timezone", "lower", "upper", "coalesce", "to_jsonb",
                              "jsonb_build_object", "json_build_object", "array"})
VOLATILE_FUNCTIONS = frozenset({"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
                                "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval", "uuid", "rand",
                                "uuid_short", "sysdate"})
TABLE_REBUILD_PREFIX = "_alembic_tmp_"  # Alembic's batch mode copies a table into this name, then renames it back


def rule(rule_id: str) -> Rule:
    """The rule with this id."""
    return RULES[rule_id]


def judge(action: Action, situation: Situation) -> list[Finding]:
    """The findings one action raises on this database, in this run."""
    judged = _JUDGES.get(action.kind)
    found = judged(action, situation) if judged is not None else []
    if action.long_names or _too_long(action, situation.dialect):
        names = action.long_names or _too_long(action, situation.dialect)
        found.append(_finding("identifier-too-long", ", ".join(names), action))
    if situation.dialect == st.POSTGRESQL:
        found += _advice(action)
    return found


def _finding(rule_id: str, target: str, action: Action, *, why: str | None = None,
             level: str | None = None) -> Finding:
    found = RULES[rule_id]
    return Finding(rule_id, level or found.level, target, why or found.why, found.fix, action.statement)


def _column(action: Action) -> str:
    return f"{action.table}.{action.column}" if action.table else str(action.column)


def _drop_table(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or situation.rebuilding(action.table):
        return []
    return [_finding("drop-table", str(action.table), action)]


def _rename_table(action: Action, situation: Situation) -> list[Finding]:
    if action.table is not None and action.table.name.startswith(TABLE_REBUILD_PREFIX):
        return []  # batch mode renaming its copy back: judged when the copy was created and filled
    if not situation.existing(action.table):
        return []
    return [_finding("rename-table", f"{action.table} to {action.new_table}", action)]


def _add_column(action: Action, situation: Situation) -> list[Finding]:
    spec = action.spec
    if spec is None or not situation.existing(action.table):
        return []
    target = _column(action)
    found = []
    if spec.identity:
        found.append(_finding("add-identity-column", target, action))
    elif spec.generated_stored:
        found.append(_finding("add-stored-generated-column", target, action))
    elif spec.not_null and not spec.has_default and not spec.primary_key:
        found.append(_finding("add-not-null-column", target, action))
    if spec.has_default and situation.dialect != st.SQLITE:
        volatile = [name for name in spec.default_functions if situation.volatile(name)]
        if volatile:
            found.append(_finding("volatile-default", target, action,
                                  why=f"its default calls {', '.join(volatile)}; " + RULES["volatile-default"].why))
    if spec.references is not None and situation.dialect != st.SQLITE:
        found.append(_finding("add-foreign-key", f"{target} -> {spec.references}", action))
    if spec.check and situation.dialect != st.SQLITE:
        found.append(_finding("add-check-constraint", target, action))
    if (spec.unique or spec.primary_key) and situation.dialect == st.POSTGRESQL:
        found.append(_finding("add-unique-constraint" if spec.unique else "change-primary-key", target, action))
    return found


def _drop_column(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [_finding("drop-column", _column(action), action)]


def _rename_column(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [_finding("rename-column", f"{_column(action)} to {action.new_name}", action)]


def _alter_type(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or action.spec is None or action.table is None or not action.column:
        return []
    new = action.spec.type
    old = situation.column(action.table, action.column)
    target = f"{_column(action)} to {new}"
    if action.using:
        return [_finding("change-column-type", target, action,
                         why="USING rewrites every row under an ACCESS EXCLUSIVE lock")]
    if old is None or new is None:
        return [_finding("change-column-type", target, action, why="the column's current type could not be read, "
                         "so the change cannot be shown safe; " + RULES["change-column-type"].why)]
    safe = safe_type_change(situation.dialect, old, new, situation.server_version)
    if safe:
        return [_finding("change-column-type", f"{_column(action)} from {old.type} to {new}", action,
                         why=f"known safe: {safe}", level=ADVICE)]
    return [_finding("change-column-type", f"{_column(action)} from {old.type} to {new}", action)]


def _modify_column(action: Action, situation: Situation) -> list[Finding]:
    """MySQL/MariaDB MODIFY/CHANGE: the column is redefined whole; compare it with the live one."""
    if not situation.existing(action.table) or action.spec is None or action.table is None or not action.column:
        return []
    found = []
    if action.new_name:
        found.append(_finding("rename-column", f"{_column(action)} to {action.new_name}", action))
    old = situation.column(action.table, action.column)
    new = action.spec
    if old is None or new.type is None:
        found.append(_finding("change-column-type", _column(action), action,
                              why="the column's current definition could not be read; MODIFY may copy the table"))
        return found
    if old.nullable and new.not_null:
        found.append(_finding("set-not-null", _column(action), action))
    elif not old.nullable and not new.not_null:
        found.append(_finding("drop-not-null", _column(action), action))
    if old.type != new.type:
        target = f"{_column(action)} from {old.type} to {new.type}"
        safe = safe_type_change(situation.dialect, old, new.type, situation.server_version)
        found.append(_finding("change-column-type", target, action, why=f"known safe: {safe}", level=ADVICE)
                     if safe else _finding("change-column-type", target, action))
    return found


def _set_not_null(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or action.table is None or not action.column:
        return []
    if situation.dialect == st.POSTGRESQL and situation.server_version >= (12,) and \
            situation.not_null_proven(action.table, action.column):
        return []
    return [_finding("set-not-null", _column(action), action)]


def _drop_not_null(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [_finding("drop-not-null", _column(action), action)]


def _add_constraint(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or situation.dialect == st.SQLITE:
        return []
    target = f"{action.name or action.constraint} on {action.table}"
    postgres = situation.dialect == st.POSTGRESQL
    if action.constraint == st.FOREIGN_KEY and not (postgres and action.not_valid):
        return [_finding("add-foreign-key", target, action)]
    if action.constraint == st.CHECK and not (postgres and action.not_valid):
        return [_finding("add-check-constraint", target, action)]
    if action.constraint == st.UNIQUE and postgres and not action.using_index:
        return [_finding("add-unique-constraint", target, action)]
    if action.constraint == st.PRIMARY_KEY and not (postgres and action.using_index):
        return [_finding("change-primary-key", target, action)]
    if action.constraint == st.EXCLUSION:
        return [_finding("add-exclusion-constraint", target, action)]
    return []


def _drop_primary_key(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [_finding("change-primary-key", f"primary key of {action.table}", action)]


def _create_index(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL:
        return []
    target = f"{action.name or 'an index'} on {action.table}"
    if action.concurrent:
        return [_finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    if not situation.existing(action.table):
        return []
    return [_finding("create-index-blocking", target, action)]


def _drop_index(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL or situation.new_index(action.name):
        return []
    target = str(action.name)
    if action.concurrent:
        return [_finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    return [_finding("drop-index-blocking", target, action)]


def _reindex(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL:
        return []
    target = str(action.table or action.name)
    if action.concurrent:
        return [_finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    return [_finding("reindex-blocking", target, action)]


def _truncate(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) and not action.cascade:
        return []
    return [_finding("truncate", f"{action.table}{' (CASCADE)' if action.cascade else ''}", action)]


def _delete(action: Action, situation: Situation) -> list[Finding]:
    if action.has_where or not situation.existing(action.table):
        return []
    return [_finding("delete-without-where", str(action.table), action)]


def _update(action: Action, situation: Situation) -> list[Finding]:
    if action.has_where or not situation.existing(action.table):
        return []
    return [_finding("update-without-where", str(action.table), action)]


def _create_table(action: Action, situation: Situation) -> list[Finding]:
    table = action.table
    if table is None or not table.name.startswith(TABLE_REBUILD_PREFIX) or situation.dialect == st.SQLITE:
        return []
    original = TableName(table.schema, table.name.removeprefix(TABLE_REBUILD_PREFIX))
    if not situation.existing(original):
        return []
    return [_finding("batch-rebuild", str(original), action)]


def _insert(action: Action, situation: Situation) -> list[Finding]:
    """Batch mode filling its copy of a table: columns left behind are dropped, renamed ones renamed."""
    table = action.table
    if table is None or not table.name.startswith(TABLE_REBUILD_PREFIX) or not action.copies:
        return []
    original = TableName(table.schema, table.name.removeprefix(TABLE_REBUILD_PREFIX))
    live = situation.columns(original) if situation.existing(original) else None
    if not live:
        return []
    fold = str.lower if situation.dialect == st.SQLITE else str
    by_name = {fold(name): (name, facts) for name, facts in live.items()}
    copied = {fold(source) for _target, source in action.copies if source}
    found = [_finding("drop-column", f"{original}.{name}", action)
             for key, (name, _facts) in by_name.items() if key not in copied]
    rebuilt = situation.columns(table) or {}
    for target, source in action.copies:
        if source is None or fold(source) not in by_name:
            continue
        name, old = by_name[fold(source)]
        if fold(target) != fold(source):
            found.append(_finding("rename-column", f"{original}.{name} to {target}", action))
        new = rebuilt.get(target)
        if new is not None and new.type != old.type:
            safe = safe_type_change(situation.dialect, old, new.type, situation.server_version)
            changed = f"{original}.{name} from {old.type} to {new.type}"
            found.append(_finding("change-column-type", changed, action, why=f"known safe: {safe}", level=ADVICE)
                         if safe else _finding("change-column-type", changed, action))
    return found


def _drop_schema(action: Action, _situation: Situation) -> list[Finding]:
    return [_finding("drop-schema", f"{'database' if action.kind == st.DROP_DATABASE else 'schema'} {action.name}",
                     action)]


def _transaction(action: Action, _situation: Situation) -> list[Finding]:
    return [_finding("transaction-control", action.detail or "transaction", action)]


def _domain(action: Action, _situation: Situation) -> list[Finding]:
    if action.kind == st.CREATE_DOMAIN:
        return [_finding("domain-check", str(action.name), action)]
    return [] if action.not_valid else [_finding("domain-constraint", str(action.name), action)]


def _unreadable(action: Action, _situation: Situation) -> list[Finding]:
    detail = action.detail or "the parser could not read it"
    return [_finding("uncheckable-sql", action.statement or "statement", action,
                     why=f"{detail}: " + RULES["uncheckable-sql"].why)]


_JUDGES: dict[str, Callable[[Action, Situation], list[Finding]]] = {
    st.DROP_TABLE: _drop_table, st.RENAME_TABLE: _rename_table, st.ADD_COLUMN: _add_column,
    st.DROP_COLUMN: _drop_column, st.RENAME_COLUMN: _rename_column, st.ALTER_TYPE: _alter_type,
    st.MODIFY_COLUMN: _modify_column, st.SET_NOT_NULL: _set_not_null, st.DROP_NOT_NULL: _drop_not_null,
    st.ADD_CONSTRAINT: _add_constraint, st.DROP_PRIMARY_KEY: _drop_primary_key, st.CREATE_INDEX: _create_index,
    st.DROP_INDEX: _drop_index, st.REINDEX: _reindex, st.TRUNCATE: _truncate, st.DELETE: _delete,
    st.UPDATE: _update, st.CREATE_TABLE: _create_table, st.DROP_SCHEMA: _drop_schema, st.DROP_DATABASE: _drop_schema,
    st.INSERT: _insert, st.TRANSACTION: _transaction, st.DOMAIN_CONSTRAINT: _domain, st.CREATE_DOMAIN: _domain,
    st.OPAQUE: _unreadable, st.UNREADABLE: _unreadable,
}


def safe_type_change(dialect: str, old: ColumnFacts, new: ColumnType, server_version: tuple[int, ...]) -> str | None:
    """Why a type change needs neither a rewrite nor a copy on this database, or None when it does."""
    before = old.type
    if before.array != new.array:
        return None
    if dialect == st.POSTGRESQL:
        if before.name == "varchar" and new.name in ("varchar", "text"):
            if not new.params or new.name == "text":
                return "dropping a VARCHAR's limit is metadata-only on PostgreSQL"
            if before.params and new.params[0] >= before.params[0]:
                return "widening a VARCHAR is metadata-only on PostgreSQL"
        if before.name == "text" and new.name == "varchar" and not new.params:
            return "TEXT to unlimited VARCHAR is metadata-only on PostgreSQL"
        if before.name == "numeric" and new.name == "numeric":
            if not new.params:
                return "dropping a NUMERIC's precision is metadata-only on PostgreSQL"
            if len(before.params) == 2 and len(new.params) == 2 and new.params[1] == before.params[1] \
                    and new.params[0] >= before.params[0]:
                return "raising a NUMERIC's precision at the same scale is metadata-only on PostgreSQL"
        if before.name == "cidr" and new.name == "inet":
            return "CIDR to INET is metadata-only on PostgreSQL"
        if before.name == new.name and before.params == new.params:
            return "the type does not change"
        return None
    if dialect == st.MYSQL:
        if before.name == new.name == "varchar" and before.params and new.params and new.params[0] >= before.params[0]:
            per_char = (old.octet_length // before.params[0]) if old.octet_length and before.params[0] else 4
            if (before.params[0] * per_char < 256) == (new.params[0] * per_char < 256):
                return "widening a VARCHAR within the same length-prefix size is done in place on MySQL/MariaDB"
        if before == new:
            return "the type does not change"
        return None
    if _sqlite_affinity(before) == _sqlite_affinity(new):
        return "SQLite stores both types with the same affinity"
    return None


def _sqlite_affinity(column_type: ColumnType) -> str:
    """SQLite's type affinity rules (section 3.1 of its datatype documentation), by the type's name."""
    name = column_type.name.upper()
    if "INT" in name or column_type.name in ("smallint", "bigint", "integer", "tinyint", "serial", "bigserial"):
        return "INTEGER"
    if any(word in name for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in name or column_type.name == "bytes" or not name:
        return "BLOB"
    if any(word in name for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


_NAME_LIMITS = {st.MYSQL: 64}


def _too_long(action: Action, dialect: str) -> tuple[str, ...]:
    """MySQL/MariaDB names over 64 characters (PostgreSQL's are found by the parser, which cuts them)."""
    limit = _NAME_LIMITS.get(dialect)
    if limit is None:
        return ()
    names = [action.table.name if action.table else None, action.column, action.new_name, action.name,
             *(spec.name for spec in action.columns)]
    return tuple(sorted({name for name in names if name and len(name) > limit}))


def _advice(action: Action) -> list[Finding]:
    """PostgreSQL style advice on the types a statement gives its columns (never refused)."""
    specs = list(action.columns)
    if action.kind in (st.ADD_COLUMN, st.ALTER_TYPE) and action.spec is not None:
        specs.append(action.spec)
    found = []
    for spec in specs:
        if spec.type is None:
            continue
        target = f"{action.table}.{spec.name}" if action.table else spec.name
        name = spec.type.name
        if name in ("integer", "smallint") and not spec.identity:
            found.append(_finding("prefer-bigint", target, action))
        elif name in st.SERIAL_TYPES:
            found.append(_finding("prefer-identity", target, action))
            if name != "bigserial":
                found.append(_finding("prefer-bigint", target, action))
        elif name == "varchar" and spec.type.params:
            found.append(_finding("prefer-text", target, action))
        elif name == "timestamp":
            found.append(_finding("prefer-timestamptz", target, action))
        elif name == "char":
            found.append(_finding("char-column", target, action))
        elif name == "json":
            found.append(_finding("prefer-jsonb", target, action))
    return found
