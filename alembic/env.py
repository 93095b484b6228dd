"""Alembic environment: async, URL from the project's configuration, never Alembic's fileConfig.

The toolkit (bot.migrate.api) passes an open connection in config.attributes; the plain
`alembic` command gets none, so this file loads .env, sets up logging and connects by itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Connection, Engine

from alembic import context
from bot.commands.boundary import prepare
from bot.data.engine import create_engine
from bot.migrate.graph import context_options
from bot.settings.config import Config

alembic_cfg = context.config


def toolkit_config() -> Config:
    """The toolkit's validated Config, loaded here only when the plain alembic command runs us."""
    config = alembic_cfg.attributes.get("toolkit_config")
    if config is None:
        config = prepare()  # the same .env, logging and secret redaction as every toolkit command
    return config


def run_offline(config: Config) -> None:
    """Render SQL for the configured dialect instead of running it."""
    url = config.database_url
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
                      **context_options(url.get_backend_name(), online=False),
                      **alembic_cfg.attributes.get("extra_context_options", {}))
    with context.begin_transaction():
        context.run_migrations()


def run_on_connection(connection: Connection) -> None:
    """Run the migrations on one open (sync-facing) connection."""
    extra: dict[str, Any] = alembic_cfg.attributes.get("extra_context_options", {})
    context.configure(connection=connection, **context_options(connection.dialect.name, online=True), **extra)
    with context.begin_transaction():
        context.run_migrations()


async def run_online(config: Config) -> None:
    """Connect with the project's async engine and run the migrations through it."""
    engine = create_engine(config.database_url, for_migrations=True)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_on_connection)
    finally:
        await engine.dispose()


def main() -> None:
    """Pick the path: offline SQL, the toolkit's connection, or our own connection."""
    config = toolkit_config()
    if context.is_offline_mode():
        run_offline(config)
        return
    connection = alembic_cfg.attributes.get("connection")
    if isinstance(connection, Engine):
        # pytest-alembic hands over an Engine rather than a Connection: run on one connection of it.
        with connection.connect() as opened:
            run_on_connection(opened)
    elif connection is not None:
        run_on_connection(connection)
    else:
        asyncio.run(run_online(config))


main()
