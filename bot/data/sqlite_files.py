"""Where a SQLite database lives: its folder made, and a clear error when this process cannot write there.

SQLite writes the database file and, beside it, its -wal/-shm (or -journal) files. A data volume owned by
another user (a root-owned bind mount, OpenShift's random uid) otherwise surfaces as the driver's "unable to
open database file", which reads like a wrong DATABASE_URL.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bot.errors import DatabaseUnreachable

FIX = ("make it writable for this user (chown it, or give group 0 rwx for an arbitrary uid in group 0), mount "
       "a writable volume there, or point DATABASE_URL at a writable place")


def prepare_sqlite_location(database: Path) -> None:
    """Create the database's folder if needed; raise DatabaseUnreachable naming the path and its permissions."""
    folder = database.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        existing = next((parent for parent in folder.parents if os.path.exists(parent)), folder)
        raise DatabaseUnreachable(f"cannot create the SQLite database folder {folder}",
                                  f"{error.strerror or error}; {describe_access(existing)}", FIX) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        why = f"SQLite writes the database and its -wal/-shm files there; {describe_access(folder)}"
        raise DatabaseUnreachable(f"the SQLite database folder {folder} is not writable by this process", why, FIX)
    if os.path.exists(database) and not os.access(database, os.R_OK | os.W_OK):
        raise DatabaseUnreachable(f"the SQLite database file {database} is not writable by this process",
                                  describe_access(database), FIX)


def describe_access(path: Path) -> str:
    """Who this process is and what the path allows, e.g. `uid 1000 gid 0; /app/data is 0:0 drwxr-xr-x`."""
    who = f"this process runs as uid {os.getuid()} gid {os.getgid()}"
    try:
        info = path.stat()
    except OSError as error:
        return f"{who}; {path} cannot be examined ({error.strerror or error})"
    where = f"{path} is owned by {info.st_uid}:{info.st_gid} with mode {stat.filemode(info.st_mode)}"
    if _read_only_mount(path):
        where += " on a read-only file system"
    return f"{who}; {where}"


def _read_only_mount(path: Path) -> bool:
    """Whether the file system holding `path` is mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
