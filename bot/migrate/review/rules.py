"""The review's rules: stable ids, what each catches on which database, why it matters, and the safe recipe.

The judges (bot.migrate.review.judges) raise findings of these rules. Each rule is documented in
docs/REVIEW.md under its id, and a revision acknowledges a finding by that id:
`reviewed = {"drop-column": "why it is safe"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def rule(rule_id: str) -> Rule:
    """The rule with this id."""
    return RULES[rule_id]
