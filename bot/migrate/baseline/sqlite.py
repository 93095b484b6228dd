"""SQLite's schema as it keeps it: the CREATE statements in sqlite_schema, the rows, the AUTOINCREMENT counters."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.migrate.baseline.parts import Captured, Part, Uncarried, bot_tables, insert_order, row_parts, views_in_order


def capture(connection: Connection) -> Captured:
    """Tables, indexes and views in the order SQLite made them, with their rows; triggers refused."""
    quote = connection.dialect.identifier_preparer.quote
    found = list(connection.execute(text(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY rowid")))
    tables = bot_tables(name for kind, name, _table, _sql in found if kind == "table")
    uncarried = [Uncarried("trigger", f"{name} on {table}",
                           f"SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND name = {_literal(name)}")
                 for kind, name, table, _sql in found if kind == "trigger"]
    parts = [Part("pragma", "foreign keys deferred", ("PRAGMA defer_foreign_keys = ON",), "")]
    drops: list[str] = []
    for kind, name, _table, sql in found:
        if kind == "table" and name in tables:
            parts.append(Part("table", name, (sql,), sql))
            drops.insert(0, f"DROP TABLE IF EXISTS {quote(name)}")
    parts += row_parts(connection, insert_order(connection, tables))
    if any(name == "sqlite_sequence" for _kind, name, _table, _sql in connection.execute(text(
            "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name = 'sqlite_sequence'"))):
        for name, value in connection.execute(text("SELECT name, seq FROM sqlite_sequence ORDER BY name")):
            if name in tables:
                parts.append(Part("autoincrement", name, (
                    f"DELETE FROM sqlite_sequence WHERE name = {_literal(name)}",
                    f"INSERT INTO sqlite_sequence (name, seq) VALUES ({_literal(name)}, {int(value)})"), str(value)))
    for kind, name, table, sql in found:
        if kind == "index" and sql is not None and table in tables:
            parts.append(Part("index", name, (sql,), sql))
    views = {name: sql for kind, name, _table, sql in found if kind == "view"}
    for name in views_in_order(views, "sqlite"):
        parts.append(Part("view", name, (views[name],), views[name]))
        drops.insert(0, f"DROP VIEW IF EXISTS {quote(name)}")
    return Captured("sqlite", tuple(parts), tuple(uncarried), tuple(drops))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
