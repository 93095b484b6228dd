"""Operator tasks: `invoke --list` shows them, `invoke --help TASK` explains each flag.

Each task is a thin wrapper over bot.commands.cli; imports happen inside the task so that listing
tasks stays fast and only `start` ever imports aiogram.
"""

from __future__ import annotations

import sys

from invoke import Context

from bot.commands.flags import task

# Invoke turns bytecode writing off to keep tasks.pyc out of the tree; without the cache every call would
# recompile the bot's modules and the revision files, so give the interpreter's own setting back.
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)


X_HELP = "key=value handed to revisions as context.get_x_argument(), like `alembic -x` (repeatable)."


@task(iterable=["x"], help={"to": "Revision to upgrade to (default: head).",
                            "sql": "Print the SQL that would run (Alembic offline mode) on stdout; change nothing.",
                            "allow-destructive": "Apply revisions whose review findings nobody acknowledged (one "
                                                 "deploy).",
                            "no-backup": "Skip the backup BACKUP_BEFORE_MIGRATE=true asks for, knowingly.",
                            "x": X_HELP})
def migrate(c: Context, to: str = "head", sql: bool = False, allow_destructive: bool = False,
            no_backup: bool = False, x: list[str] | None = None) -> None:
    """Upgrade the database schema to head (or --to REV) under the migration lock."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.migrate(to=to, sql=sql, allow_destructive=allow_destructive, no_backup=no_backup, x=x or [])


@task(iterable=["x"], help={"steps": "How many revisions to undo (default: 1).",
                            "to": "Undo down to this revision instead (it stays applied).",
                            "yes": "Confirm without a prompt (needed in production without a terminal).",
                            "sql": "Print the SQL that would run (Alembic offline mode) on stdout; change nothing.",
                            "no-backup": "Go on without the backup taken before every rollback, knowingly.",
                            "x": X_HELP})
def rollback(c: Context, steps: str | None = None, to: str | None = None, yes: bool = False, sql: bool = False,
             no_backup: bool = False, x: list[str] | None = None) -> None:
    """Undo the last revision (or --steps N, or down --to REV), after a verified backup."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.rollback(steps=steps, to=to, yes=yes, sql=sql, no_backup=no_backup, x=x or [])


@task(name="rollback-base", help={"yes": "Confirm without a prompt (required without a terminal).",
                                  "sql": "Print the SQL that would run on stdout; change nothing.",
                                  "no-backup": "Go on without the backup taken first, knowingly."})
def rollback_base(c: Context, yes: bool = False, sql: bool = False, no_backup: bool = False) -> None:
    """Undo every revision: drops every table the revisions created (after a verified backup)."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.rollback_base(yes=yes, sql=sql, no_backup=no_backup)


@task(help={"path": "The backup file to restore (from BACKUP_DIR).",
            "yes": "Confirm without a prompt (required without a terminal).",
            "no-backup": "Skip the backup of the current state taken before the restore, knowingly."})
def restore(c: Context, path: str, yes: bool = False, no_backup: bool = False) -> None:
    """Restore a backup under the migration lock; the journal keeps its current rows."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.restore(path=path, yes=yes, no_backup=no_backup)


@task
def check(c: Context) -> None:
    """Compare the models with the live schema; exit 7 listing the differences (for CI)."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.check()


@task(help={"limit": "Show only the N newest revisions (default: all).",
            "json": "Print one JSON document on stdout (shape: docs/JOURNAL.md)."})
def history(c: Context, limit: str | None = None, json: bool = False) -> None:
    """List every revision, newest first, with when, by whom, from where and how long it was applied."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.history(limit=limit, as_json=json)


@task(help={"json": "Print one JSON document on stdout (shape: docs/JOURNAL.md).",
            "check": "Exit 7 when anything is pending, half-applied or unknown (for CI and deploy gates)."})
def status(c: Context, json: bool = False, check: bool = False) -> None:
    """Show the current revision, the head, the pending revisions and any half-applied one."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.status(as_json=json, check=check)


@task(help={"to": "The revision the schema now matches (after a manual repair).",
            "yes": "Confirm without a prompt (required without a terminal)."})
def stamp(c: Context, to: str = "", yes: bool = False) -> None:
    """Set the database's revision without running anything: the way out of a half-applied revision."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.stamp(to=to, yes=yes)


@task(name="accept-edit", help={"revision": "The applied revision whose file was edited (see `invoke status`).",
                                "reason": "Why the edit is fine (journaled), e.g. 'comment fixed' or 'fix for new "
                                          "databases'.",
                                "yes": "Confirm without a prompt (required without a terminal)."})
def accept_edit(c: Context, revision: str = "", reason: str = "", yes: bool = False) -> None:
    """Accept an applied revision's edited file as what ran (journaled; nothing runs)."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.accept_edit(revision=revision, reason=reason, yes=yes)


@task(help={"message": "What the revision does (names the file).",
            "autogenerate": "Compare the models with the database and write the difference."})
def revision(c: Context, message: str = "", autogenerate: bool = False) -> None:
    """Create a new revision file in alembic/versions."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.revision(message=message, autogenerate=autogenerate)


@task(iterable=["x"], help={"allow-destructive": "Apply revisions whose review findings nobody acknowledged (one "
                                                 "deploy).",
                            "x": X_HELP})
def start(c: Context, allow_destructive: bool = False, x: list[str] | None = None) -> None:
    """Load .env, migrate (production) or check the schema (development), then run the bot."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.start(allow_destructive=allow_destructive, x=x or [])


@task(name="review", help={"json": "Print one JSON document on stdout (shape: docs/REVIEW.md).",
                           "from": "Review the revisions after this one instead of the database's (base: all); "
                                   "no database needed."})
def review(c: Context, json: bool = False, from_: str | None = None) -> None:
    """Check the pending revisions against the review's rules without applying them; exit 7 on a finding."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.review(as_json=json, start=from_)


@task(name="squash", iterable=["server", "leave_out"],
      help={"to": "The revision the baseline stands for (default: head).",
            "check": "Re-verify the committed baseline against the history; exit 7 on a difference (for CI).",
            "retire": "Delete the revision files the committed baseline covers; a stand-in revision replaces them.",
            "server": "A database server URL to make and verify the baseline on as well (repeatable; SQLite and "
                      "DATABASE_URL's server are always used).",
            "leave-out": "An object the baseline cannot carry, left out knowingly, e.g. 'trigger t on users' "
                         "(repeatable)."})
def squash(c: Context, to: str | None = None, check: bool = False, retire: bool = False,
           server: list[str] | None = None, leave_out: list[str] | None = None) -> None:
    """Squash the history up to a revision into a verified baseline that fresh databases take in one step."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.squash(to=to, check=check, retire=retire, servers=server or [], leave_out=leave_out or [])


@task(help={"json": "Print one JSON document on stdout instead of the table."})
def doctor(c: Context, json: bool = False) -> None:
    """Show the effective configuration (secrets masked) and whether the database and Bot API answer."""
    from bot.commands import cli  # lazy: `invoke --list` never loads the toolkit

    cli.doctor(as_json=json)
