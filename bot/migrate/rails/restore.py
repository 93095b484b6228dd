"""`invoke restore PATH`: put a backup back under the migration lock, keeping the journal's current rows.

The backup is checked before anything changes, the operator confirms (the same rule as rollback-base:
always, unless --yes), a safety backup of the current state is taken, then the backend's own tool
restores it. The toolkit's audit tables keep the rows they have now, not the backup's, and the
restore itself is journaled.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, delete, func, inspect, select, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

from bot.data.engine import connect_options
from bot.data.urls import sync_url, where
from bot.data.waiting import is_lock_wait
from bot.errors import ConfigError, MigrationFailed, Refused
from bot.logs import get_logger
from bot.migrate import journal
from bot.migrate.graph import TOOLKIT_TABLES, current_heads, known, scripts_of
from bot.migrate.journal import settle
from bot.migrate.journal.origin import Origin
from bot.migrate.plan import Confirm
from bot.migrate.rails.backup import backup_kind, open_backup, take_backup, verify_backup
from bot.migrate.rails.tools import MYSQL_BACKENDS, find_tool, mysql_option_file, postgres_environment, run_tool
from bot.migrate.session import locked
from bot.settings.config import Config
from bot.signals import StopSignal, run_guarded

log = get_logger("bot.restore")

RESTORE = "restore"
# Audit tables keep their current rows across a restore; alembic_version comes from the backup.
KEPT_TABLES = tuple(sorted(TOOLKIT_TABLES - {"alembic_version"}))
# Where a MySQL/MariaDB dump writes alembic_version rows: the start of such a statement.
_WRITES_VERSION = re.compile(r"^(INSERT|REPLACE)\s+(IGNORE\s+)?INTO\s+`?alembic_version`?[\s(]", re.IGNORECASE)


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did."""

    path: Path
    before: tuple[str, ...]
    after: tuple[str, ...]
    safety_backup: Path | None
    duration_ms: float


def restore(config: Config, path: Path, *, confirm: Confirm | None = None, backup_first: bool = True) -> RestoreReport:
    """Check the backup, then restore it under the lock, after the operator confirmed (unless confirm is None)."""
    path = _existing(path)
    backend = config.database_url.get_backend_name()
    kind = backup_kind(path)
    expected = "mysql" if backend in MYSQL_BACKENDS else backend
    if kind != expected:
        raise ConfigError(f"{path} is not a {expected} backup",
                          f"it looks like {'a ' + kind + ' backup' if kind != 'unknown' else 'something else'}, "
                          f"and DATABASE_URL is {backend}", "pick a backup of this database")
    verify_backup(path, backend)
    revision = backup_revision(path, kind, config.database_url)
    scripts = scripts_of(config)
    unknown = [rev for rev in revision if not known(scripts, rev)]
    if unknown:
        raise Refused(f"the backup {path.name} is at revision {', '.join(unknown)}, which these scripts do not know",
                      "after the restore nothing could migrate or start", "restore it with the code of that release")
    return run_guarded(lambda stop: _restore_async(config, path, kind, revision, confirm, backup_first, stop))


def _existing(path: Path) -> Path:
    """The backup path, or a clear line when it is not a readable file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"the backup {path} does not exist", "there is no file at that path",
                          "pass the path of a file in BACKUP_DIR")
    if not path.is_file():
        raise ConfigError(f"the backup {path} is not a file", "restore reads one backup file",
                          "pass the path of a file in BACKUP_DIR")
    return path.resolve()


def backup_revision(path: Path, kind: str, url: URL) -> tuple[str, ...]:
    """The alembic revision(s) a backup holds, as the database itself reads them; () when it holds none (base).

    A dump's text layout changes between tool versions (mariadb-dump 10.11 puts `VALUES` and the rows on
    separate lines), so the rows are never picked out of it with a pattern: the server evaluates the dump's
    own alembic_version data into a temporary table of a scratch session, which changes nothing.
    """
    if kind == "sqlite":
        connection = open_backup(path)
        try:
            return tuple(row[0] for row in connection.execute("SELECT version_num FROM alembic_version"))
        except sqlite3.OperationalError:
            return ()
        finally:
            connection.close()
    if kind == "postgresql":
        copy_data = _postgres_version_data(path)
        return () if copy_data is None else _read_in_scratch(url, path, postgres_copy=copy_data)
    statements = _mysql_version_statements(path)
    return _read_in_scratch(url, path, mysql_statements=statements) if statements else ()


def _postgres_version_data(path: Path) -> str | None:
    """The COPY data pg_restore writes for the backup's alembic_version table (None when it has no such table)."""
    tool = find_tool("pg_restore", needed_for="reading the backup")
    script = run_tool([tool, "--data-only", "--table=alembic_version", "--file=-", str(path)], what="pg_restore")
    lines = iter(script.splitlines(keepends=True))
    for line in lines:
        if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
            # COPY's text format: one row per line up to the end-of-data marker (its own escapes keep rows whole).
            return "".join(itertools.takewhile(lambda row: row.rstrip("\r\n") != "\\.", lines))
    return None


def _mysql_version_statements(path: Path) -> list[str]:
    """The dump's statements that write alembic_version rows, whole, however many lines each spans.

    mysqldump and mariadb-dump begin every statement on a new line and end it with `;` at a line's end; a
    row value never holds a raw line break (it is written as `\\n`), so a statement ends at the first such line.
    """
    statements: list[str] = []
    current: list[str] = []
    with path.open("r", encoding="utf-8", errors="replace") as dump:
        for line in dump:
            if not current and not _WRITES_VERSION.match(line):
                continue
            current.append(line)
            if line.rstrip().endswith(";"):
                statements.append("".join(current).rstrip().removesuffix(";"))
                current = []
    if current:
        raise Refused(f"the backup {path.name} is truncated", "its alembic_version data has no end",
                      "take a new backup")
    return statements


def _read_in_scratch(url: URL, path: Path, *, postgres_copy: str | None = None,
                     mysql_statements: Sequence[str] = ()) -> tuple[str, ...]:
    """Let the server read the backup's alembic_version rows into a temporary table of a session of its own."""
    driver_url, connect_args = connect_options(sync_url(url))
    engine = create_sync_engine(driver_url, connect_args=connect_args, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            # The driver's own cursor: the dump's text goes to the server as it is, never through %-formatting.
            cursor: Any = connection.connection.cursor()
            if postgres_copy is not None:
                cursor.execute("CREATE TEMPORARY TABLE alembic_version (version_num text NOT NULL)")
                with cursor.copy("COPY pg_temp.alembic_version (version_num) FROM STDIN") as copy:
                    copy.write(postgres_copy)
                cursor.execute("SELECT version_num FROM pg_temp.alembic_version")
            else:
                # A temporary table hides the real one from this session: the dump's INSERTs land in it.
                cursor.execute("CREATE TEMPORARY TABLE `alembic_version` (version_num VARCHAR(255) NOT NULL)")
                for statement in mysql_statements:
                    cursor.execute(statement)
                cursor.execute("SELECT version_num FROM `alembic_version`")
            found = tuple(sorted(str(row[0]) for row in cursor.fetchall()))
            cursor.close()
            connection.rollback()
            return found
    except DBAPIError as error:
        reason = str(error.orig if error.orig is not None else error).strip().splitlines()[0]
        raise Refused(f"the revision held by the backup {path.name} could not be read", reason,
                      "check the backup (it may be damaged) and that DATABASE_URL's user may create temporary "
                      "tables") from None
    finally:
        engine.dispose()


def backup_tables(path: Path, kind: str) -> set[str] | None:
    """The tables a dump creates (None for SQLite, whose restore replaces the whole file)."""
    if kind == "postgresql":
        listing = run_tool([find_tool("pg_restore", needed_for="reading the backup"), "--list", str(path)],
                           what="pg_restore --list")
        return set(re.findall(r"^\d+; \d+ \d+ TABLE \S+ (\S+) ", listing, re.M))
    if kind == "mysql":
        return set(re.findall(r"^CREATE TABLE `([^`]+)`", path.read_text("utf-8", "replace"), re.M))
    return None


async def _restore_async(config: Config, path: Path, kind: str, revision: tuple[str, ...], confirm: Confirm | None,
                         backup_first: bool, stop: StopSignal) -> RestoreReport:
    """Lock, confirm, safety backup, restore, put the journal back, journal the restore."""
    url = config.database_url
    async with locked(config) as session:
        connection, before, who = session.connection, session.before, session.who
        await session.confirm(confirm, session.plan("restore", "+".join(revision) or "base", source=str(path)))
        started_at, started = journal.now(), time.perf_counter()
        existing = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await connection.run_sync(_tables_free, existing, config.ddl_lock_timeout)
        safety = None
        if backup_first:
            safety = take_backup(config, before, reason="restore").path
        else:
            log.warning("backup skipped", database=where(url), reason="--no-backup")
        kept = await connection.run_sync(_snapshot)
        await connection.rollback()
        log.info("restore starting", database=where(url), path=str(path), revision="+".join(revision) or None)
        with stop.step():
            try:
                await asyncio.to_thread(_run_restore, url, path, kind, safety, config.ddl_lock_timeout)
            except MigrationFailed as error:
                # MariaDB may have replaced the journal table before failing: give it its rows back, then say so.
                await connection.run_sync(_put_back, kept)
                await connection.run_sync(_journal_failure, config, who, path, safety, started_at, error)
                raise
            else:
                await connection.run_sync(_drop_orphans, kind, path, existing)
                await connection.run_sync(_put_back, kept)
        after = await connection.run_sync(current_heads)
        duration = (time.perf_counter() - started) * 1000
        await connection.run_sync(_journal, config, who, path, before, after, safety, started_at)
        log.info("restore complete", database=where(url), path=str(path), before=list(before),
                 revision=",".join(after) or None, duration_ms=round(duration, 1),
                 safety_backup=str(safety) if safety else None)
        stop.check()
        return RestoreReport(path, before, after, safety, duration)


def _tables_free(connection: Connection, tables: set[str], timeout: float) -> None:
    """Refuse, before anything changes, while another session holds a table the restore replaces."""
    dialect = connection.dialect.name
    if dialect == "sqlite" or not tables or timeout <= 0:
        return
    if connection.in_transaction():
        connection.commit()
    quoted = [connection.dialect.identifier_preparer.quote(name) for name in sorted(tables)]
    try:
        if dialect == "postgresql":
            with connection.begin():
                connection.execute(text(f"SET LOCAL lock_timeout = {int(timeout * 1000)}"))
                connection.execute(text(f"LOCK TABLE {', '.join(quoted)} IN ACCESS EXCLUSIVE MODE"))
        else:
            connection.execute(text(f"SET SESSION lock_wait_timeout = {max(1, round(timeout))}"))
            connection.execute(text("LOCK TABLES " + ", ".join(f"{name} WRITE" for name in quoted)))
            connection.execute(text("UNLOCK TABLES"))
            connection.commit()
    except OperationalError as error:
        if not is_lock_wait(error):
            raise
        connection.rollback()
        raise Refused("the tables are in use by another session",
                      f"it held a lock for longer than DDL_LOCK_TIMEOUT ({timeout:g}s), and a restore replaces them",
                      "stop the bot (every replica) and run restore again") from None


def _snapshot(connection: Connection) -> list[tuple[Table, list[dict[str, Any]]]]:
    """The audit tables as they are now: definition and rows."""
    names = set(inspect(connection).get_table_names())
    metadata = MetaData()
    kept = []
    for name in KEPT_TABLES:
        if name in names:
            table = Table(name, metadata, autoload_with=connection)
            kept.append((table, [dict(row._mapping) for row in connection.execute(select(table))]))
    connection.commit()
    return kept


def _run_restore(url: URL, path: Path, kind: str, safety: Path | None, lock_timeout: float) -> None:
    """The backend's own restore; PostgreSQL and SQLite restore all or nothing, MariaDB table by table."""
    fallback = f"the safety backup {safety} holds the state before" if safety else "no safety backup was taken"
    try:
        if kind == "sqlite":
            _restore_sqlite(path, Path(str(url.database)))
        elif kind == "postgresql":
            tool = find_tool("pg_restore", needed_for="restore")
            run_tool([tool, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
                      "--exit-on-error", f"--dbname={url.database}", str(path)], env=postgres_environment(url),
                     what="pg_restore")
        else:
            tool = find_tool("mysql_client", needed_for="restore")
            # The dump does not set lock_wait_timeout: bound it, so a table held by a bot session fails the restore.
            bounded = [f"--init-command=SET SESSION lock_wait_timeout={max(1, round(lock_timeout))}"] \
                if lock_timeout > 0 else []
            with mysql_option_file(url) as options, path.open("rb") as dump:
                run_tool([tool, f"--defaults-extra-file={options}", "--default-character-set=utf8mb4", *bounded,
                          str(url.database)], stdin=dump.fileno(), what=Path(tool).name)
    except Refused as error:
        state = ("nothing was changed (the restore ran in one transaction)" if kind in ("sqlite", "postgresql")
                 else "MariaDB/MySQL commits table by table, so the database may be partly restored")
        raise MigrationFailed(f"restore of {path.name} failed", f"{error.why or error.what}; {state}",
                              f"{fallback}; fix the cause and restore again") from None


def _restore_sqlite(source: Path, target: Path) -> None:
    """The online backup API, backup file → live file, in one step (one write transaction on the target)."""
    reader = open_backup(source)
    try:
        writer = sqlite3.connect(target, timeout=30)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    except sqlite3.Error as error:
        raise Refused("the SQLite restore failed", str(error), "") from None
    finally:
        reader.close()


def _drop_orphans(connection: Connection, kind: str, path: Path, existing: set[str]) -> None:
    """Drop tables the backup does not have, so the schema is the backup's."""
    in_backup = backup_tables(path, kind)
    if in_backup is not None:
        orphans = sorted(existing - in_backup - set(KEPT_TABLES))
        if connection.in_transaction():
            connection.commit()
        with connection.begin():
            if kind == "mysql":
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for name in orphans:
                quoted = connection.dialect.identifier_preparer.quote(name)
                cascade = " CASCADE" if kind == "postgresql" else ""
                connection.execute(text(f"DROP TABLE IF EXISTS {quoted}{cascade}"))
            if kind == "mysql":
                connection.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        if orphans:
            log.info("tables dropped after restore", tables=orphans, reason="not in the backup")


def _put_back(connection: Connection, kept: list[tuple[Table, list[dict[str, Any]]]]) -> None:
    """Give the audit tables back the rows they had before the restore."""
    if connection.in_transaction():
        connection.commit()
    with connection.begin():
        present = set(inspect(connection).get_table_names())
        for table, rows in kept:
            if table.name not in present:
                table.create(connection)
            connection.execute(delete(table))
            if rows:
                connection.execute(table.insert(), rows)
            _advance_sequence(connection, table)


def _advance_sequence(connection: Connection, table: Table) -> None:
    """PostgreSQL: move an id sequence past the rows put back, so the next insert gets a fresh id."""
    if connection.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        sequence = connection.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                      {"table": table.name, "column": column.name}).scalar()
        if sequence:
            highest = connection.execute(select(func.max(column))).scalar()
            connection.execute(text("SELECT setval(:sequence, :value, :called)"),
                               {"sequence": sequence, "value": highest or 1, "called": highest is not None})


def _journal_failure(connection: Connection, config: Config, who: Origin, path: Path,
                     safety: Path | None, started_at: Any, error: MigrationFailed) -> None:
    """Record a restore that failed, with what state it left."""
    journal.record_event(connection, RESTORE, who=who, description=f"restore from {path.name} failed",
                         started_at=started_at, success=False, error=error.line(), secrets=config.secrets(),
                         details={"path": str(path), "safety_backup": str(safety) if safety else None})


def _journal(connection: Connection, config: Config, who: Origin, path: Path, before: tuple[str, ...],
             after: tuple[str, ...], safety: Path | None, started_at: Any) -> None:
    """Record the restore, and let it resolve any half-applied entry (the backup replaced that state)."""
    entry = journal.record_event(
        connection, RESTORE, who=who, description=f"restore from {path.name}", started_at=started_at,
        revision="+".join(after) or None, secrets=config.secrets(),
        details={"path": str(path), "before": list(before), "after": list(after),
                 "safety_backup": str(safety) if safety else None})
    resolved = journal.committed(connection, lambda conn: settle.resolve(conn, entry))
    if resolved:
        log.info("journal entries resolved by restore", entries=resolved)
