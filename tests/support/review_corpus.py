"""Revision bodies the production review must let through, and ones it must refuse, with the verdict per database.

Each case becomes the next revision on top of the shipped ones. `expect` maps a backend to
APPLIES, a rule id (refused by that rule, nothing changed), FAILS (a failed migration, exit 4), or
None (the case does not apply to that database).
"""

from __future__ import annotations

from dataclasses import dataclass

APPLIES = "applies"
FAILS = "fails"
BACKENDS = ("sqlite", "postgresql", "mariadb")


@dataclass(frozen=True)
class Case:
    """One revision body and what each database must make of it."""

    name: str
    upgrade: str
    expect: dict[str, str | None]
    header: str = ""


def everywhere(verdict: str) -> dict[str, str | None]:
    """The same verdict on every database."""
    return {backend: verdict for backend in BACKENDS}


def only(backend: str, verdict: str, others: str | None = None) -> dict[str, str | None]:
    """A verdict on one database, another (or not applicable) on the rest."""
    return {name: verdict if name == backend else others for name in BACKENDS}


LEGITIMATE = [
    Case("read rows with fetchall", 'rows = op.get_bind().execute(sa.text("SELECT id FROM users")).fetchall()\n'
         "assert rows == []", everywhere(APPLIES)),
    Case("read a scalar", 'count = op.get_bind().execute(sa.text("SELECT count(*) FROM users")).scalar()\n'
         "assert count == 0", everywhere(APPLIES)),
    Case("use rowcount", 'result = op.get_bind().execute(sa.text("UPDATE users SET message_count = 1 WHERE id = -1"))\n'
         "assert result.rowcount == 0", everywhere(APPLIES)),
    Case("inspect the bind", 'names = [column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")]\n'
         'assert "username" in names', everywhere(APPLIES)),
    Case("ORM session on the bind", "from sqlalchemy.orm import Session\n\n"
         "with Session(bind=op.get_bind()) as session:\n"
         '    session.execute(sa.text("UPDATE users SET message_count = 0 WHERE id = 7"))\n'
         "    session.flush()", everywhere(APPLIES)),
    Case("op.run_async", "async def count(connection):\n"
         '    return (await connection.execute(sa.text("SELECT count(*) FROM users"))).scalar()\n\n'
         "assert op.run_async(count) == 0", everywhere(APPLIES)),
    Case("context.config", 'assert context.config.get_main_option("script_location")', everywhere(APPLIES)),
    Case("target_metadata in the context's options", 'assert op.get_context().opts["target_metadata"] is not None',
         everywhere(APPLIES)),
    Case("Alembic's offline idiom", "if not context.is_offline_mode():\n"
         '    op.execute("UPDATE users SET message_count = 0 WHERE id = -1")', everywhere(APPLIES)),
    Case("foreign key NOT VALID (PostgreSQL's safe recipe)",
         'op.add_column("users", sa.Column("referrer_id", sa.BigInteger(), nullable=True))\n'
         'op.create_foreign_key("fk_users_referrer", "users", "users", ["referrer_id"], ["id"], '
         "postgresql_not_valid=True)",
         {"sqlite": None, "postgresql": APPLIES, "mariadb": "add-foreign-key"}),
    Case("targeted DELETE", 'op.execute("DELETE FROM users WHERE id = 12345")', everywhere(APPLIES)),
    Case("targeted DELETE after a comment",
         'op.execute("-- clean up one test account\\nDELETE FROM users WHERE id = 1")',
         everywhere(APPLIES)),
    Case("widen a VARCHAR", 'with op.batch_alter_table("users") as batch:\n'
         '    batch.alter_column("username", type_=sa.String(128), existing_type=sa.String(64))', everywhere(APPLIES)),
    Case("add a nullable column", 'op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))',
         everywhere(APPLIES)),
    Case("add a NOT NULL column with a server default",
         'op.add_column("users", sa.Column("score", sa.Integer(), nullable=False, server_default="0"))',
         everywhere(APPLIES)),
    Case("a new table with its index, foreign key and unique constraint",
         'op.create_table("orders", sa.Column("id", sa.BigInteger(), primary_key=True),\n'
         '                sa.Column("user_id", sa.BigInteger(), nullable=False),\n'
         '                sa.Column("code", sa.String(16), nullable=False))\n'
         'op.create_index("ix_orders_user_id", "orders", ["user_id"])\n'
         'op.create_unique_constraint("uq_orders_code", "orders", ["code"])\n'
         'op.create_foreign_key("fk_orders_user_id_users", "orders", "users", ["user_id"], ["id"])',
         {"sqlite": None, "postgresql": APPLIES, "mariadb": APPLIES}),
    Case("drop an index created in the same revision",
         'op.create_table("codes", sa.Column("id", sa.BigInteger(), primary_key=True),\n'
         '                sa.Column("code", sa.String(8)))\n'
         'op.create_index("ix_codes_code", "codes", ["code"])\n'
         'op.drop_index("ix_codes_code", table_name="codes")', everywhere(APPLIES)),
    Case("index CONCURRENTLY inside autocommit_block", "with op.get_context().autocommit_block():\n"
         '    op.create_index("ix_users_username", "users", ["username"], postgresql_concurrently=True)',
         everywhere(APPLIES)),
    Case("a non-volatile default", 'op.add_column("users", sa.Column("joined_at", sa.DateTime(timezone=True), '
         "server_default=sa.func.now()))", {"sqlite": None, "postgresql": APPLIES, "mariadb": APPLIES}),
    Case("backfill with a WHERE", 'op.execute("UPDATE users SET message_count = 0 WHERE message_count IS NULL")',
         everywhere(APPLIES)),
    Case("SET NOT NULL behind a validated check (PostgreSQL 12+)",
         'op.execute("ALTER TABLE users ADD CONSTRAINT ck_users_username_nn CHECK (username IS NOT NULL) NOT VALID")\n'
         'op.execute("ALTER TABLE users VALIDATE CONSTRAINT ck_users_username_nn")\n'
         'op.alter_column("users", "username", nullable=False, existing_type=sa.String(64))',
         only("postgresql", APPLIES)),
    Case("several harmless statements in one string",
         'op.execute("UPDATE users SET message_count = 1 WHERE id = 1; "\n'
         '           "UPDATE users SET message_count = 2 WHERE id = 2")',
         only("postgresql", APPLIES)),
    Case("bulk insert into a new table",
         'table = op.create_table("tags", sa.Column("id", sa.Integer(), primary_key=True), '
         'sa.Column("name", sa.String(20)))\n'
         'op.bulk_insert(table, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])', everywhere(APPLIES)),
    Case("drop a table created in the same revision",
         'op.create_table("scratch", sa.Column("id", sa.Integer(), primary_key=True))\n'
         'op.execute("DELETE FROM scratch")\nop.drop_table("scratch")', everywhere(APPLIES)),
    Case("a column dropped with its acknowledgement", 'op.drop_column("users", "language_code")',
         everywhere(APPLIES), header='reviewed = {"drop-column": "language_code unused since 1.4"}'),
    Case("a whole revision vouched for", 'op.drop_column("users", "language_code")\nop.execute("DELETE FROM users")',
         everywhere(APPLIES), header='reviewed_destructive = "emptied on purpose, backup taken in the release job"'),
]

DANGEROUS = [
    Case("DROP TABLE after a leading comment", 'op.execute("-- note\\nDROP TABLE legacy")', everywhere("drop-table")),
    Case("DROP TABLE hidden after a harmless statement",
         'op.execute("UPDATE users SET message_count = 0 WHERE id = 1; DROP TABLE users")', everywhere("drop-table")),
    Case("ALTER TABLE IF EXISTS ... DROP COLUMN", 'op.execute("ALTER TABLE IF EXISTS users DROP COLUMN username")',
         {"sqlite": None, "postgresql": "drop-column", "mariadb": "drop-column"}),
    Case("ALTER TABLE ONLY ... DROP COLUMN", 'op.execute("ALTER TABLE ONLY users DROP COLUMN username")',
         only("postgresql", "drop-column")),
    Case("ADD COLUMN and DROP COLUMN in one ALTER",
         'op.execute("ALTER TABLE users ADD COLUMN x INTEGER, DROP COLUMN username")',
         {"sqlite": None, "postgresql": "drop-column", "mariadb": "drop-column"}),
    Case("raw RENAME COLUMN", 'op.execute("ALTER TABLE users RENAME COLUMN username TO handle")',
         everywhere("rename-column")),
    Case("raw RENAME TO", 'op.execute("ALTER TABLE users RENAME TO people")', everywhere("rename-table")),
    Case("MySQL's RENAME TABLE", 'op.execute("RENAME TABLE users TO people")', only("mariadb", "rename-table")),
    Case("ALTER COLUMN ... TYPE ... USING",
         'op.execute("ALTER TABLE users ALTER COLUMN username TYPE varchar(32) USING substr(username, 1, 32)")',
         only("postgresql", "change-column-type")),
    Case("raw SET NOT NULL", 'op.execute("ALTER TABLE users ALTER COLUMN username SET NOT NULL")',
         only("postgresql", "set-not-null")),
    Case("MODIFY ... NOT NULL", 'op.execute("ALTER TABLE users MODIFY username VARCHAR(64) NOT NULL")',
         only("mariadb", "set-not-null")),
    Case("raw CREATE INDEX", 'op.execute("CREATE INDEX ix_users_username ON users (username)")',
         {"sqlite": APPLIES, "postgresql": "create-index-blocking", "mariadb": APPLIES}),
    Case("raw ADD CONSTRAINT ... FOREIGN KEY",
         'op.execute("ALTER TABLE users ADD CONSTRAINT fk_u FOREIGN KEY (message_count) REFERENCES users (id)")',
         {"sqlite": None, "postgresql": "add-foreign-key", "mariadb": "add-foreign-key"}),
    Case("add_column with index=True", 'op.add_column("users", sa.Column("handle", sa.String(32), index=True))',
         {"sqlite": APPLIES, "postgresql": "create-index-blocking", "mariadb": APPLIES}),
    Case("add_column with unique=True", 'op.add_column("users", sa.Column("handle", sa.String(32), unique=True))',
         {"sqlite": None, "postgresql": "add-unique-constraint", "mariadb": APPLIES}),
    Case("add_column with a ForeignKey",
         'op.add_column("users", sa.Column("referrer_id", sa.BigInteger(), sa.ForeignKey("users.id")))',
         {"sqlite": None, "postgresql": "add-foreign-key", "mariadb": "add-foreign-key"}),
    Case("drop_index", 'op.drop_index("ix_users_nothing", table_name="users")',
         {"sqlite": FAILS, "postgresql": "drop-index-blocking", "mariadb": FAILS}),
    Case("create_check_constraint on an existing table",
         'op.create_check_constraint("ck_users_count", "users", "message_count >= 0")',
         {"sqlite": None, "postgresql": "add-check-constraint", "mariadb": "add-check-constraint"}),
    Case("NOT NULL with a volatile default",
         'op.add_column("users", sa.Column("token", sa.Float(), nullable=False, server_default=sa.text("random()")))',
         only("postgresql", "volatile-default")),
    Case("a volatile default (MySQL)",
         'op.add_column("users", sa.Column("token", sa.String(36), server_default=sa.text("(uuid())")))',
         only("mariadb", "volatile-default")),
    Case("an Identity() column", 'op.add_column("users", sa.Column("seq", sa.BigInteger(), sa.Identity()))',
         only("postgresql", "add-identity-column")),
    Case("DELETE in a CTE", 'op.execute("WITH gone AS (DELETE FROM users RETURNING id) SELECT count(*) FROM gone")',
         only("postgresql", "delete-without-where")),
    Case("UPDATE without WHERE", 'op.execute("UPDATE users SET username = NULL")', everywhere("update-without-where")),
    Case("DELETE without WHERE", 'op.execute("DELETE FROM users")', everywhere("delete-without-where")),
    Case("TRUNCATE", 'op.execute("TRUNCATE TABLE users")',
         {"sqlite": None, "postgresql": "truncate", "mariadb": "truncate"}),
    Case("code that branches on as_sql", "if not op.get_context().as_sql:\n"
         '    op.drop_column("users", "username")', everywhere("drop-column")),
    Case("code that branches on data it read",
         'if op.get_bind().execute(sa.text("SELECT count(*) FROM users")).scalar() == 0:\n'
         '    op.drop_table("users")', everywhere("drop-table")),
    Case("batch_alter_table(recreate='always') outside SQLite",
         'with op.batch_alter_table("users", recreate="always") as batch:\n'
         '    batch.alter_column("username", type_=sa.String(128), existing_type=sa.String(64))',
         {"sqlite": APPLIES, "postgresql": "batch-rebuild", "mariadb": "batch-rebuild"}),
    Case("a same-named table in another schema does not exempt public.users",
         'op.execute("CREATE SCHEMA other")\n'
         'op.create_table("users", sa.Column("id", sa.Integer(), primary_key=True), schema="other")\n'
         'op.drop_table("users")', only("postgresql", "drop-table")),
    Case("CONCURRENTLY outside autocommit_block",
         'op.create_index("ix_users_username", "users", ["username"], postgresql_concurrently=True)',
         {"sqlite": APPLIES, "postgresql": "concurrently-in-transaction", "mariadb": APPLIES}),
    Case("batch drop_column (a table rebuild on SQLite)", 'with op.batch_alter_table("users") as batch:\n'
         '    batch.drop_column("language_code")', everywhere("drop-column")),
    Case("rename through alter_column", 'with op.batch_alter_table("users") as batch:\n'
         '    batch.alter_column("username", new_column_name="handle", existing_type=sa.String(64))',
         everywhere("rename-column")),
    Case("retype an integer column", 'with op.batch_alter_table("users") as batch:\n'
         '    batch.alter_column("message_count", type_=sa.Numeric(10, 2), existing_type=sa.Integer())',
         everywhere("change-column-type")),
    Case("narrow a VARCHAR", 'with op.batch_alter_table("users") as batch:\n'
         '    batch.alter_column("first_name", type_=sa.String(20), existing_type=sa.String(255))',
         {"sqlite": APPLIES, "postgresql": "change-column-type", "mariadb": "change-column-type"}),
    Case("a refusal the revision swallows", "try:\n"
         '    op.drop_column("users", "username")\nexcept Exception:\n    pass', everywhere("drop-column")),
    Case("COMMIT inside a revision", 'op.execute("COMMIT")', everywhere("transaction-control")),
    Case("a DO block", 'op.execute("DO $$ BEGIN DELETE FROM users; END $$")', only("postgresql", "uncheckable-sql")),
    Case("SQL the parser cannot read", 'op.execute("ALTER TABLE users FROBNICATE")', everywhere("uncheckable-sql")),
    Case("DROP SCHEMA", 'op.execute("DROP SCHEMA legacy CASCADE")', {"sqlite": None, "postgresql": "drop-schema",
                                                                       "mariadb": "drop-schema"}),
    Case("an acknowledgement with a blank reason", 'op.drop_column("users", "language_code")',
         everywhere("drop-column"),
         header='reviewed = {"drop-column": "  "}'),
    Case("an acknowledgement of another rule", 'op.drop_column("users", "language_code")', everywhere("drop-column"),
         header='reviewed = {"drop-table": "not this one"}'),
]

FAILING = [
    Case("a revision that raises", 'raise RuntimeError("the data is not what this revision expects")',
         everywhere(FAILS)),
    Case("SQL that fails", 'op.execute("SELECT * FROM table_that_does_not_exist")', everywhere(FAILS)),
]

CASES = LEGITIMATE + DANGEROUS + FAILING
