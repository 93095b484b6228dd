"""What each task does, inside the error boundary; tasks.py only forwards flags here."""

from __future__ import annotations

from bot.config import Config
from bot.confirm import confirmation
from bot.database import migrations
from bot.entry import run
from bot.reports import format_history, format_status


def migrate(to: str = "head") -> None:
    """Upgrade under the migration lock."""
    run(lambda config: migrations.upgrade(config, to=to))


def rollback(steps: int | None = None, to: str | None = None, yes: bool = False) -> None:
    """Downgrade N steps or to a revision; production asks first."""

    def command(config: Config) -> None:
        migrations.rollback(config, steps=1 if steps is None and to is None else steps, to=to,
                            confirm=confirmation(yes, required=config.is_production))

    run(command)


def rollback_base(yes: bool = False) -> None:
    """Undo every revision; always asks first."""
    run(lambda config: migrations.rollback_to_base(config, confirm=confirmation(yes)))


def history() -> None:
    """Print every revision, newest first."""
    run(lambda config: print(format_history(migrations.history(config))))


def status() -> None:
    """Print the current revision, head and pending list."""
    run(lambda config: print(format_status(migrations.status(config))))


def revision(message: str, autogenerate: bool = False) -> None:
    """Write a new revision file and print its path."""
    run(lambda config: print(migrations.create_revision(message, autogenerate, config)))


def start() -> None:
    """The startup sequence: migrate when production says so, refuse a stale schema, run the bot."""
    from bot.startup import start as start_bot

    run(start_bot, log_summary=True)
