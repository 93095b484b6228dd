"""The one synchronous engine on a test's database, and what tests read through it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.engine import connect_options
from bot.data.urls import sync_url
from bot.migrate.plan import RevisionInfo, Status
from bot.migrate.read.overview import read_overview
from bot.settings.config import Config


def sync_engine(url: URL) -> sa.Engine:
    """A plain synchronous engine on the test's database, for looking at the real schema."""
    driver_url, connect_args = connect_options(sync_url(url))
    return sa.create_engine(driver_url, connect_args=connect_args, poolclass=sa.pool.NullPool)


def query(url: URL, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the test's database, committing, and return its rows."""
    engine = sync_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema(url: URL) -> dict[str, list[str]]:
    """Every table of the database with its column names."""
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            return {table: sorted(column["name"] for column in inspector.get_columns(table))
                    for table in inspector.get_table_names()}
    finally:
        engine.dispose()


def versions(url: URL) -> list[str]:
    """The rows of alembic_version ([] when the table does not exist)."""
    if "alembic_version" not in schema(url):
        return []
    return sorted(row[0] for row in query(url, "SELECT version_num FROM alembic_version"))


def revision_of(url: URL) -> str | None:
    """The single revision alembic_version holds (None at base)."""
    found = versions(url)
    return found[0] if found else None


def database_state(config: Config) -> Status:
    """Where the database stands against the scripts, as `invoke status` reads it."""
    return read_overview(config).state


def revision_list(config: Config) -> list[RevisionInfo]:
    """Every revision, newest first, marked against the database, as `invoke history` reads it."""
    return [record.info for record in read_overview(config).revisions]
