"""Read a database into parts (the dialect's own reader), and compare two databases object by object.

The comparison has three layers: each part's definition as the catalog gives it, Alembic's autogenerate
comparison (the drift check's machinery) of one database's reflected tables against the other, and the
rows of every table.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

from bot.migrate.baseline import mysql, postgres, sqlite
from bot.migrate.baseline.parts import Captured, bot_tables, reflecting
from bot.migrate.baseline.store import dialect_key
from bot.migrate.graph import include_name
from bot.migrate.read.drift import describe

SHOWN = 160  # characters of a differing definition shown in a difference's line


def capture(connection: Connection) -> Captured:
    """The database's schema and rows as a baseline's parts, in the order they load."""
    dialect = dialect_key(connection.dialect)
    if dialect == "postgresql":
        return postgres.capture(connection)
    if dialect in ("mysql", "mariadb"):
        return mysql.capture(connection, dialect)
    return sqlite.capture(connection)


def differences(history: Connection, baseline: Connection, *, left_out: frozenset[str] = frozenset()) -> list[str]:
    """Every way the database built from the baseline differs from the one migrated through the history."""
    expected, found = capture(history), capture(baseline)
    lines = compare_parts(expected, found)
    lines += [f"uncarried {item.key}: in the history's database only" for item in expected.uncarried
              if item.key not in left_out and item.key not in {other.key for other in found.uncarried}]
    reflected = MetaData()
    with reflecting():
        reflected.reflect(history, only=bot_tables(_tables(history)))
        context = MigrationContext.configure(baseline, opts={"compare_type": True, "compare_server_default": True,
                                                             "include_name": include_name,
                                                             "target_metadata": reflected})
        lines += [f"autogenerate: {item.line()}" for diff in compare_metadata(context, reflected)
                  for item in describe(diff)]
    return lines


def compare_parts(expected: Captured, found: Captured) -> list[str]:
    """Parts missing on either side, and parts whose definitions differ."""
    want, have = expected.definitions(), found.definitions()
    lines = [f"{key}: in the history's database, not in the baseline's" for key in want if key not in have]
    lines += [f"{key}: in the baseline's database, not in the history's" for key in have if key not in want]
    lines += [f"{key}: differs: history {_short(want[key])!r}, baseline {_short(have[key])!r}"
              for key in want if key in have and want[key] != have[key]]
    return lines


def _tables(connection: Connection) -> list[str]:
    return list(inspect(connection).get_table_names())


def _short(definition: str) -> str:
    return definition if len(definition) <= SHOWN else definition[:SHOWN] + "…"
