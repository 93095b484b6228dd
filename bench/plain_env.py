"""Baseline env.py for "plain Alembic": the shape of Alembic's generic synchronous template, nothing of the toolkit.

bench/run.py copies this file next to an alembic.ini whose version_locations point at the toolkit
project's own revision files, so both sides read exactly the same scripts.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from logging.config import fileConfig
from typing import Any

from pglast import parser
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, engine_from_config, event, pool
from sqlalchemy.engine import Connection

from alembic import context

settings = context.config

# Like the template: logging comes from the ini's [loggers]/[handlers]/[formatters] sections.
if settings.config_file_name is not None:
    fileConfig(settings.config_file_name)


def emit_sql() -> None:
    """--sql: render the statements for the URL's dialect."""
    context.configure(url=settings.get_main_option("sqlalchemy.url"), target_metadata=None,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def apply_online() -> None:
    """Connect with a throwaway synchronous engine and run everything in one transaction (as the template)."""
    engine = engine_from_config(settings.get_section(settings.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    # The template's one transaction for everything; the benchmark's G4 reference row asks for one per step.
    per_step = settings.get_main_option("transaction_per_migration", "false") == "true"
    obligations = settings.get_main_option("journal_and_parse", "false") == "true"
    with engine.connect() as connection:
        hooks = least_journal_and_review(connection) if obligations else []
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=per_step,
                          on_version_apply=hooks)
        with context.begin_transaction():
            context.run_migrations()


def least_journal_and_review(connection: Connection) -> list[Callable[..., None]]:
    """G4's floor: the least any tool with a journal and a review adds to each step, written the obvious way.

    One journal row inserted inside each step's transaction (so it commits or rolls back with the step),
    and every statement read by PostgreSQL's own parser before it runs. No rules, no checksums, no lock.
    """
    journal = Table("floor_journal", MetaData(), Column("id", Integer, primary_key=True),
                    Column("revision", String(64)), Column("finished_at", DateTime), Column("details", Text))
    journal.create(connection)
    connection.commit()
    insert = journal.insert()

    @event.listens_for(connection, "before_cursor_execute")
    def read(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        parser.parse_sql_json(statement.replace("%(", "(").replace(")s", ")"))

    def record(*, ctx: Any, step: Any, **_kwargs: Any) -> None:
        ctx.connection.execute(insert, {"revision": ",".join(step.up_revision_ids), "details": "{}",
                                        "finished_at": datetime.now(UTC).replace(tzinfo=None)})

    return [record]


if context.is_offline_mode():
    emit_sql()
else:
    apply_online()
