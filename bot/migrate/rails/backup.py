"""Backups taken before a destructive command: written owner-only, verified, then pruned to BACKUP_KEEP.

SQLite is copied with the sqlite3 online backup API, PostgreSQL with `pg_dump -Fc`, MySQL/MariaDB
with `mariadb-dump` (or `mysqldump`). A backup that cannot be written or verified is a refusal: the
command that asked for it changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.engine import connect_options
from bot.data.urls import database_label, sync_url, where
from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate.rails.tools import (
    MYSQL_BACKENDS,
    find_tool,
    last_line,
    mysql_option_file,
    postgres_environment,
    run_tool,
)
from bot.settings.config import Config

log = get_logger("bot.backup")

EXTENSIONS = {"sqlite": "sqlite", "postgresql": "dump", "mysql": "sql", "mariadb": "sql"}
SPARE_BYTES = 16 * 1024 * 1024
MYSQL_DUMP_END = "-- Dump completed"
SIDE_SUFFIXES = ("-shm", "-wal", "-journal", ".partial", ".partial-shm", ".partial-wal", ".partial-journal")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Backup:
    """One verified backup file."""

    path: Path
    database: str
    revision: str
    size: int
    duration_ms: float


def take_backup(config: Config, revision: tuple[str, ...], *, reason: str) -> Backup:
    """Write, verify and prune: the backup a destructive command needs before it changes anything."""
    url = config.database_url
    backend = url.get_backend_name()
    directory = _prepare_directory(config.backup_dir)
    label = safe_label(database_label(url))
    path = _new_path(directory, label, safe_label("+".join(revision) or "base"), EXTENSIONS[backend])
    partial = path.with_name(path.name + ".partial")
    ensure_free_space(directory, estimate_size(url))
    started = time.perf_counter()
    log.info("backup starting", database=where(url), path=str(path), reason=reason)
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if backend == "sqlite":
                os.close(descriptor)
                descriptor = -1
                _copy_sqlite(Path(str(url.database)), partial)
            elif backend == "postgresql":
                _dump_postgres(url, descriptor)
            else:
                _dump_mysql(url, descriptor)
        finally:
            if descriptor >= 0:
                os.close(descriptor)
        try:
            verify_backup(partial, backend)
        except Refused as error:
            raise Refused(f"the backup {path.name} is unreadable, so nothing was changed", error.why or error.what,
                          "check the dump tool and the disk, then run the command again (or pass --no-backup "
                          "to go on without a backup)") from None
        os.chmod(partial, 0o600)
        partial.rename(path)
    except OSError as error:
        raise Refused(f"the backup could not be written to {directory}", error.strerror or str(error),
                      "fix BACKUP_DIR (it must be writable), or pass --no-backup to go on without one") from None
    finally:
        remove_with_side_files(partial)
    size = path.stat().st_size
    duration = (time.perf_counter() - started) * 1000
    log.info("backup written", path=str(path), size_bytes=size, duration_ms=round(duration, 1),
             revision="+".join(revision) or None)
    prune_backups(directory, label, config.backup_keep, keep_also={path})
    return Backup(path, label, "+".join(revision) or "base", size, duration)


def safe_label(text: str) -> str:
    """A file-name-safe word: anything but letters, digits, '_' and '.' becomes '_'."""
    return _UNSAFE.sub("_", text).strip("_.") or "database"


def _prepare_directory(directory: Path) -> Path:
    """Create BACKUP_DIR owner-only if missing; refuse when it cannot hold a file."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise Refused(f"BACKUP_DIR {directory} cannot be created", error.strerror or str(error),
                      "point BACKUP_DIR at a writable folder, or pass --no-backup to go on without one") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise Refused(f"BACKUP_DIR {directory} is not writable", "the backup cannot be written there",
                      "fix its permissions or point BACKUP_DIR elsewhere, or pass --no-backup to go on without one")
    return directory


def _new_path(directory: Path, label: str, revision: str, extension: str) -> Path:
    """database-revision-UTCtime.ext, with a counter if two backups share a second."""
    stamp = datetime.now(UTC).strftime(_STAMP)
    path = directory / f"{label}-{revision}-{stamp}.{extension}"
    counter = 2
    while path.exists() or path.with_name(path.name + ".partial").exists():
        path = directory / f"{label}-{revision}-{stamp}-{counter}.{extension}"
        counter += 1
    return path


def estimate_size(url: URL) -> int:
    """How many bytes the backup may take at most: the database's own size."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        files = [Path(str(url.database) + suffix) for suffix in ("", "-wal")]
        return sum(file.stat().st_size for file in files if file.exists())
    sync, connect_args = connect_options(sync_url(url))
    query = ("SELECT pg_database_size(current_database())" if backend == "postgresql" else
             "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
             "WHERE table_schema = DATABASE()")
    engine = sa.create_engine(sync, connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(query)).scalar() or 0)
    except sa.exc.SQLAlchemyError as error:
        raise Refused("the database's size could not be read before the backup",
                      str(error.orig if hasattr(error, "orig") else error).splitlines()[0],
                      "check that the database is reachable") from None
    finally:
        engine.dispose()


def ensure_free_space(directory: Path, needed: int) -> None:
    """Refuse before writing when the disk cannot hold the backup plus a margin."""
    free = shutil.disk_usage(directory).free
    if free < needed + SPARE_BYTES:
        raise Refused(f"not enough free space in {directory} for a backup",
                      f"{free // 1048576} MiB free, about {(needed + SPARE_BYTES) // 1048576} MiB needed",
                      "free some space or point BACKUP_DIR at a larger disk, or pass --no-backup")


def _copy_sqlite(source: Path, target: Path) -> None:
    """The online backup API: a consistent copy even while the bot writes."""
    if not source.exists():
        raise Refused(f"the SQLite database {source} does not exist", "there is nothing to back up",
                      "check DATABASE_URL")
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
            # The copy inherits the live file's WAL mode; a backup must be one self-contained file.
            writer.execute("PRAGMA journal_mode=DELETE")
        finally:
            writer.close()
    except sqlite3.Error as error:
        raise Refused(f"the SQLite backup of {source} failed", str(error), "check the file and the disk") from None
    finally:
        reader.close()


def _dump_postgres(url: URL, descriptor: int) -> None:
    """pg_dump in its custom format (compressed, restorable table by table with pg_restore)."""
    tool = find_tool("pg_dump", needed_for="the backup before this command")
    run_tool([tool, "--format=custom", "--no-password"], env=postgres_environment(url), stdout=descriptor,
             what="pg_dump")


def _dump_mysql(url: URL, descriptor: int) -> None:
    """mariadb-dump/mysqldump in one consistent snapshot, with routines and triggers."""
    tool = find_tool("mysql_dump", needed_for="the backup before this command")
    with mysql_option_file(url) as options:
        run_tool([tool, f"--defaults-extra-file={options}", "--single-transaction", "--quick", "--routines",
                  "--triggers", "--hex-blob", "--no-tablespaces", "--default-character-set=utf8mb4",
                  str(url.database)], stdout=descriptor, what=Path(tool).name)


def backup_kind(path: Path) -> str:
    """Which backend wrote a backup file, told from its first bytes: sqlite, postgresql or mysql."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise Refused(f"the backup {path} cannot be read", error.strerror or str(error),
                      "check the path and its permissions") from None
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"PGDMP"):
        return "postgresql"
    if b"-- MariaDB dump" in head or b"-- MySQL dump" in head:
        return "mysql"
    return "unknown"


def verify_backup(path: Path, backend: str) -> None:
    """Check a backup with the tool that will read it back, before anything changes."""
    if not path.is_file() or path.stat().st_size == 0:
        raise Refused(f"the backup {path} is empty", "the dump tool wrote nothing", "check its output above")
    kind = backup_kind(path)
    expected = "mysql" if backend in MYSQL_BACKENDS else backend
    if kind != expected:
        raise Refused(f"the backup {path} is not a {expected} backup", f"its contents look like {kind}",
                      "check the file")
    if kind == "sqlite":
        try:
            connection = open_backup(path)
            try:
                result = connection.execute("PRAGMA integrity_check").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise Refused(f"the backup {path} is not a readable SQLite database", str(error),
                          "take a new backup") from None
        if not result or result[0] != "ok":
            raise Refused(f"the backup {path} failed SQLite's integrity check", str(result and result[0]),
                          "take a new backup")
    elif kind == "postgresql":
        tool = find_tool("pg_restore", needed_for="checking the backup")
        listing = run_tool([tool, "--list", str(path)], what="pg_restore --list")
        if "; Archive created at" not in listing:
            raise Refused(f"the backup {path} has no readable table of contents", "pg_restore --list found none",
                          "take a new backup")
    else:
        if not _last_line_of(path).startswith(MYSQL_DUMP_END):
            raise Refused(f"the backup {path} is truncated", f"it does not end with '{MYSQL_DUMP_END}'",
                          "take a new backup")


def open_backup(path: Path) -> sqlite3.Connection:
    """A SQLite backup opened read-only and immutable: reading it leaves no -shm/-wal beside it."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)


def side_files(path: Path) -> list[Path]:
    """The files SQLite (or an interrupted backup) may leave beside a backup: -shm, -wal, -journal, .partial*."""
    return [path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES]


def remove_with_side_files(path: Path) -> None:
    """Delete a file and whatever SQLite left beside it."""
    for file in (path, *side_files(path)):
        file.unlink(missing_ok=True)


def _tidy(path: Path) -> None:
    """Remove the leftovers beside a kept backup, except a write-ahead log that still holds pages."""
    for file in side_files(path):
        if file.is_file() and not (file.name.endswith(("-wal", "-journal")) and file.stat().st_size > 0
                                   and not file.name.endswith((".partial-wal", ".partial-journal"))):
            file.unlink(missing_ok=True)


def _last_line_of(path: Path) -> str:
    """The file's last non-empty line, read from its end."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 4096))
        return last_line(handle.read().decode("utf-8", "replace"))


def backups_of(directory: Path, label: str) -> list[Path]:
    """This database's backups in a folder, oldest first."""
    pattern = re.compile(rf"^{re.escape(label)}-[A-Za-z0-9_.+]+-\d{{8}}T\d{{6}}Z(-\d+)?\.(sqlite|dump|sql)$")
    if not directory.is_dir():
        return []
    found = [path for path in directory.iterdir() if path.is_file() and pattern.match(path.name)]
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name))


def prune_backups(directory: Path, label: str, keep: int, *, keep_also: set[Path] | None = None) -> list[Path]:
    """Delete this database's oldest backups beyond `keep` (0 keeps every one)."""
    if keep <= 0:
        return []
    protected = {path.resolve() for path in keep_also or set()}
    candidates = backups_of(directory, label)
    removed = []
    for path in candidates[:-keep] if len(candidates) > keep else []:
        if path.resolve() in protected:
            continue
        remove_with_side_files(path)
        removed.append(path)
    for path in candidates:
        if path not in removed:
            _tidy(path)
    if removed:
        log.info("old backups removed", count=len(removed), kept=keep, paths=[str(path) for path in removed])
    return removed
