"""Operator tasks: `invoke --list` shows them, `invoke --help TASK` explains each flag.

Each task is a thin wrapper over bot.commands; imports happen inside the task so that listing
tasks stays fast and only `start` ever imports aiogram.
"""

from __future__ import annotations

from invoke import Context, task


@task(help={"to": "Revision to upgrade to (default: head)."})
def migrate(c: Context, to: str = "head") -> None:
    """Upgrade the database schema to head (or --to REV) under the migration lock."""
    from bot import commands

    commands.migrate(to=to)


@task(help={"steps": "How many revisions to undo (default: 1).",
            "to": "Undo down to this revision instead (it stays applied).",
            "yes": "Confirm without a prompt (needed in production without a terminal)."})
def rollback(c: Context, steps: int | None = None, to: str | None = None, yes: bool = False) -> None:
    """Undo the last revision (or --steps N, or down --to REV)."""
    from bot import commands

    commands.rollback(steps=steps, to=to, yes=yes)


@task(name="rollback-base", help={"yes": "Confirm without a prompt (required without a terminal)."})
def rollback_base(c: Context, yes: bool = False) -> None:
    """Undo every revision: drops every table the revisions created."""
    from bot import commands

    commands.rollback_base(yes=yes)


@task
def history(c: Context) -> None:
    """List every revision, newest first, marking the current and pending ones."""
    from bot import commands

    commands.history()


@task
def status(c: Context) -> None:
    """Show the current revision, the head and the pending revisions."""
    from bot import commands

    commands.status()


@task(help={"message": "What the revision does (names the file).",
            "autogenerate": "Compare the models with the database and write the difference."})
def revision(c: Context, message: str = "", autogenerate: bool = False) -> None:
    """Create a new revision file in alembic/versions."""
    from bot import commands

    commands.revision(message=message, autogenerate=autogenerate)


@task
def start(c: Context) -> None:
    """Load .env, migrate (production) or check the schema (development), then run the bot."""
    from bot import commands

    commands.start()
