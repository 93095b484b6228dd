"""The rails a schema change passes under the migration lock, after planning and before its first step.

Guards run on the migration's own (sync-facing) connection, so what they journal never waits on a
lock the migration itself holds (SQLite); any guard may refuse, and then nothing has been changed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.data.waiting import LOCK_WAIT_CODES, error_codes
from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate import journal
from bot.migrate.journal.origin import this_process
from bot.migrate.rails.backup import take_backup
from bot.settings.config import Config

if TYPE_CHECKING:
    from bot.migrate.plan import Plan

log = get_logger("bot.safeguards")

Guard = Callable[[Connection, "Plan"], None]
REVIEW = "review"  # journal kind of the review's refusals
BACKUP = "backup"


def upgrade_guards(config: Config) -> tuple[Guard, ...]:
    """Production upgrades back up first when BACKUP_BEFORE_MIGRATE=true (the review runs with the steps)."""
    if not config.is_production or not config.backup_before_migrate:
        return ()
    return (backup_guard(config),)


def downgrade_guards(config: Config, *, backup: bool) -> tuple[Guard, ...]:
    """Rollbacks: a verified backup first, unless the operator passed --no-backup."""
    return (backup_guard(config) if backup else skipped_backup(config),)


def skipped_backup(config: Config) -> Guard:
    """--no-backup: go on without one, but say so in the log and the journal."""

    def skip(connection: Connection, plan: Plan) -> None:
        log.warning("backup skipped", database=config.database_url.database, reason="--no-backup")
        record(connection, config, BACKUP, f"backup before {plan.direction} skipped (--no-backup)",
               started=journal.now(), success=True, details={"skipped": True})

    return skip


def backup_guard(config: Config) -> Guard:
    """Write and verify a backup of the database as it is now; a failure refuses the command."""

    def back_up(connection: Connection, plan: Plan) -> None:
        started = journal.now()
        try:
            backup = take_backup(config, plan.current, reason=plan.direction)
        except Refused as error:
            record(connection, config, BACKUP, f"backup before {plan.direction} failed", started=started,
                   success=False, error=error.line())
            raise
        record(connection, config, BACKUP, f"backup before {plan.direction}", started=started, success=True,
               details={"path": str(backup.path), "size_bytes": backup.size}, revision=backup.revision)

    return back_up


def record(connection: Connection, config: Config, kind: str, description: str, *, started: datetime,
           success: bool, details: dict[str, object] | None = None, error: str | None = None,
           revision: str | None = None) -> None:
    """Journal a review, backup or restore on the caller's connection."""
    journal.record_event(connection, kind, who=this_process(config.env), description=description,
                         started_at=started, success=success, error=error, details=details,
                         revision=revision, secrets=config.secrets())


def bound_ddl_locks(connection: Connection, config: Config) -> None:
    """Session limits so a step stuck behind another query's lock fails (exit 4) instead of queueing every query."""
    dialect = connection.dialect
    statements: list[str] = []
    if dialect.name == "postgresql":
        statements.append(f"SET lock_timeout = {int(config.ddl_lock_timeout * 1000)}")
        statements.append(f"SET statement_timeout = {int(config.ddl_statement_timeout * 1000)}")
    elif dialect.name in ("mysql", "mariadb"):
        if config.ddl_lock_timeout > 0:
            statements.append(f"SET SESSION lock_wait_timeout = {max(1, round(config.ddl_lock_timeout))}")
        if getattr(dialect, "is_mariadb", False):
            statements.append(f"SET SESSION max_statement_time = {config.ddl_statement_timeout:g}")
    if not statements:
        return
    if connection.in_transaction():
        connection.commit()
    for statement in statements:
        connection.execute(text(statement))
    # Committed, so the rollback Alembic's runner starts with cannot undo the settings.
    connection.commit()
    log.debug("ddl limits set", lock_timeout_s=config.ddl_lock_timeout,
              statement_timeout_s=config.ddl_statement_timeout)


# PostgreSQL SQLSTATE and MySQL/MariaDB error numbers of DDL_STATEMENT_TIMEOUT (the lock wait's are in waiting).
_STATEMENT_LIMITS: set[object] = {"57014", 1969, 3024}


def ddl_limit_hint(error: BaseException) -> str | None:
    """What to do when a step hit DDL_LOCK_TIMEOUT or DDL_STATEMENT_TIMEOUT (None for any other error)."""
    codes = error_codes(error)
    if codes & LOCK_WAIT_CODES:
        return ("another session held a lock on the table longer than DDL_LOCK_TIMEOUT (retried DDL_LOCK_RETRIES "
                "times): run migrate again when it is idle (or find it in pg_stat_activity / SHOW PROCESSLIST), or "
                "raise DDL_LOCK_TIMEOUT")
    if codes & _STATEMENT_LIMITS:
        return "a statement ran longer than DDL_STATEMENT_TIMEOUT: raise it for this migration, or split the revision"
    return None
