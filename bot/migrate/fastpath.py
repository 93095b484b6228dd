"""Prove "the database is already at head" cheaply, so a no-op start or migrate never imports Alembic.

Alembic's own answer needs every revision file imported and the graph built (its cost grows with the
history) plus SQLAlchemy's asyncio layer. Here the graph's answer comes from the revision manifest
(bot.migrate.manifest), and the database side is two parameterless SELECTs through the synchronous
driver: alembic_version, and the journal's unfinished rows.

The answer is "at head" only when the manifest is provably fresh, the scripts have exactly one head, the
database's version rows are exactly that head, and the journal has nothing running or half-applied;
anything else (stale or unreadable manifest, unreachable database, missing tables) answers None and the
caller takes the full Alembic path, which decides and reports everything itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.logs import get_logger
from bot.migrate.journal_sql import fetch, latest_digest, unfinished
from bot.migrate.manifest import Manifest, build, declined, fresh_manifest, manifest_path, read_manifest, scripts_at
from bot.paths import ALEMBIC_INI

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from bot.settings.config import Config

log = get_logger("bot.fastpath")

# Manifests at_head has just checked against the files, so the bot's start reads the heads without a second scan.
_verified: dict[Path, Manifest] = {}


def at_head(config: Config, *, ini: Path | None = None) -> tuple[str, ...] | None:
    """The database's revision when it is provably at the scripts' single head; None whenever unsure.

    The database is read first: an empty one (or an unfinished journal entry) needs no graph to say
    "not sure". Only a database with revisions and a stale manifest pays for Alembic, once, to rebuild it.
    """
    ini = ini or config.alembic_ini
    _verified.pop(ini, None)  # an earlier proof in this process says nothing about the files now
    try:
        current, unfinished, recorded_digest = read_database(config.database_url)
    except Exception as error:  # noqa: BLE001 - any doubt about the database is the full path's to report
        declined("database not read", error=type(error).__name__)
        return None
    if not current:
        declined("database has no revision")
        return None
    if unfinished:
        declined("journal has unfinished entries", entries=len(unfinished))
        return None
    manifest = fresh_manifest(ini)
    if manifest is None:
        return None
    if len(manifest.heads) != 1:
        declined("several heads" if manifest.heads else "no revisions")
        return None
    if len(current) != len(set(current)) or set(current) != set(manifest.heads):
        declined("not at head", current=list(current), heads=list(manifest.heads))
        return None
    if not manifest.digest or recorded_digest != manifest.digest:
        declined("revision files not confirmed against the journal's checksums")
        return None
    _verified[ini] = manifest
    return current


def script_heads(ini: Path = ALEMBIC_INI) -> tuple[str, ...]:
    """The scripts' heads: as at_head just proved them in this process, else from a fresh manifest or Alembic."""
    manifest = _verified.get(ini) or fresh_manifest(ini)
    if manifest is not None:
        return manifest.heads
    return tuple(scripts_at(ini).get_heads())


def read_database(url: URL) -> tuple[tuple[str, ...], list[tuple[Any, ...]], str | None]:
    """alembic_version's rows, the journal's unfinished rows and its checksum digest, through the sync driver."""
    with _sync_connection(url) as connection:
        current = tuple(str(row[0]) for row in fetch(connection, "SELECT version_num FROM alembic_version"))
        return current, unfinished(connection), latest_digest(connection)


def _sync_connection(url: URL) -> Any:
    """A DB-API connection to the same database, opened the way the async engine would open it."""
    if url.get_backend_name() == "sqlite":
        import sqlite3

        database = Path(url.database or "").resolve()
        if not database.is_file():
            raise FileNotFoundError(str(database))
        # mode=rw never creates a file; timeout as the async engine's.
        return _closing(sqlite3.connect(f"{database.as_uri()}?mode=rw", uri=True, timeout=30))
    from bot.data.engine import connect_plan
    from bot.data.urls import sync_url

    planned = connect_plan(sync_url(url))
    if planned.url.get_backend_name() == "postgresql":
        return _closing(_psycopg_connect(planned.url, planned.connect_args))
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(planned.url, poolclass=NullPool)
    # The dialect's own connect, without the first-connect probing an engine's pool would add.
    arguments, options = engine.dialect.create_connect_args(planned.url)
    connection = engine.dialect.connect(*arguments, **{**options, **planned.connect_args})
    guarded = _closing(connection, engine.dispose)
    if planned.require_tls and not _encrypted(guarded):
        raise ConnectionError("the server did not encrypt the connection")  # the full path says it properly
    return guarded


def _psycopg_connect(url: URL, connect_args: dict[str, Any]) -> Any:
    """psycopg directly: libpq takes the URL's parts and its query options as they are (SQLAlchemy's
    PostgreSQL dialect would add ~40 ms of imports for nothing here)."""
    import psycopg

    options: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    for key, value in url.query.items():
        if not isinstance(value, str):
            raise ValueError(f"{key} is given several times")  # multi-host URLs: left to the full path
        options[key] = value
    return psycopg.connect(**{**options, **connect_args})


def _encrypted(guarded: _closing) -> bool:
    """Whether a MySQL session runs over TLS; closes the connection when it does not (or cannot say)."""
    try:
        cipher = fetch(guarded.connection, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    except Exception:
        guarded.__exit__()
        raise
    if cipher and cipher[0][1]:
        return True
    guarded.__exit__()
    return False


class _closing:
    """Close a DB-API connection (and dispose its engine) when the block ends."""

    def __init__(self, connection: Any, dispose: Any = None) -> None:
        self.connection = connection
        self.dispose = dispose

    def __enter__(self) -> Any:
        return self.connection

    def __exit__(self, *_exc: object) -> None:
        try:
            self.connection.close()
        finally:
            if self.dispose is not None:
                self.dispose()


def main() -> None:
    """`python -m bot.migrate.fastpath`: build and store the manifest at image build time (read-only deploys)."""
    from bot.logs import configure_logging

    configure_logging("WARNING", "json")  # an image build log wants the path or the error, not Alembic's chatter
    manifest = build()
    if manifest is None or read_manifest(manifest_path()) != manifest:
        raise SystemExit(f"revision manifest not built at {manifest_path()}: see the log line above, "
                         "or run `invoke history` to see what Alembic says about the revision files")
    print(manifest_path())


if __name__ == "__main__":
    main()
