"""Read-only commands never create a database: a SQLite URL that points at no file is reported, not made."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from bot.errors import DatabaseUnreachable


def sqlite_file_missing(url: URL) -> bool:
    """True for a SQLite URL whose file does not exist: an empty database that connecting would create."""
    return url.get_backend_name() == "sqlite" and not Path(str(url.database)).exists()


def require_existing_database(url: URL) -> None:
    """Exit 3 naming the path when a SQLite database file is missing (connecting would create it and its folder)."""
    if url.get_backend_name() != "sqlite":
        return
    path = Path(str(url.database))
    if path.is_file():
        return
    if path.exists():
        raise DatabaseUnreachable(f"the SQLite database {path} is not a file", "DATABASE_URL points at a folder",
                                  "check DATABASE_URL")
    raise DatabaseUnreachable(f"the SQLite database {path} does not exist",
                              "this command only reads, so it never creates one",
                              "check the path in DATABASE_URL, or run `invoke migrate` to create the database")
