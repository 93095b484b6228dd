"""Baseline env.py for "plain Alembic": the shape of Alembic's generic synchronous template, nothing of the toolkit.

bench/run.py copies this file next to an alembic.ini whose version_locations point at the toolkit
project's own revision files, so both sides read exactly the same scripts.
"""

from logging.config import fileConfig

from sqlalchemy import engine_from_config, pool

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
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=per_step)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    emit_sql()
else:
    apply_online()
