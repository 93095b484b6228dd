"""MySQL's and MariaDB's schema as the server writes it (SHOW CREATE TABLE / VIEW), with the rows after.

Foreign keys are checked off while the baseline loads (one session, the baseline's own step), so tables
and rows load in any order; a view's DEFINER is left out, so it belongs to whoever applies the baseline.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.migrate.baseline.parts import Captured, Part, Uncarried, bot_tables, insert_order, row_parts, views_in_order

OWN = "= DATABASE()"


def capture(connection: Connection, dialect: str) -> Captured:
    """Every table, view and row of the current database, after refusing what a baseline cannot make."""
    quote = connection.dialect.identifier_preparer.quote

    def rows(sql: str) -> list[Any]:
        return list(connection.execute(text(sql)))

    uncarried = [Uncarried("trigger", f"{name} on {table}",
                           f"SELECT 1 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA {OWN} AND "
                           f"TRIGGER_NAME = '{_escaped(name)}'")
                 for name, table in rows("SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
                                         f"WHERE TRIGGER_SCHEMA {OWN} ORDER BY TRIGGER_NAME")]
    uncarried += [Uncarried(kind.lower(), name, f"SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA "
                            f"{OWN} AND ROUTINE_NAME = '{_escaped(name)}'")
                  for kind, name in rows("SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE "
                                         f"ROUTINE_SCHEMA {OWN} ORDER BY ROUTINE_NAME")]
    uncarried += [Uncarried("event", name, f"SELECT 1 FROM information_schema.EVENTS WHERE EVENT_SCHEMA {OWN} AND "
                            f"EVENT_NAME = '{_escaped(name)}'")
                  for (name,) in rows(f"SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA {OWN} "
                                      "ORDER BY EVENT_NAME")]
    kinds = {name: kind for name, kind in rows("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE "
                                                f"TABLE_SCHEMA {OWN}")}
    uncarried += [Uncarried("sequence", name, f"SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA {OWN} "
                            f"AND TABLE_NAME = '{_escaped(name)}'")
                  for name, kind in sorted(kinds.items()) if kind == "SEQUENCE"]
    tables = bot_tables(name for name, kind in kinds.items() if kind == "BASE TABLE")
    parts = [Part("session", "foreign key checks off", ("SET FOREIGN_KEY_CHECKS = 0",), "")]
    drops = ["SET FOREIGN_KEY_CHECKS = 0"]
    for name in tables:
        create = str(connection.execute(text(f"SHOW CREATE TABLE {quote(name)}")).one()[1])
        parts.append(Part("table", name, (create,), create))
        drops.append(f"DROP TABLE IF EXISTS {quote(name)}")
    parts += row_parts(connection, insert_order(connection, tables))
    views = {}
    details = {name: (algorithm, security, check)
               for name, algorithm, security, check in rows(
                   "SELECT TABLE_NAME, ALGORITHM, SECURITY_TYPE, CHECK_OPTION FROM information_schema.VIEWS "
                   f"WHERE TABLE_SCHEMA {OWN}")}
    for name in sorted(details):
        shown = str(connection.execute(text(f"SHOW CREATE VIEW {quote(name)}")).one()[1])
        views[name] = shown.split(f" VIEW {_backticked(name)} AS ", 1)[1]
    for name in views_in_order(views, dialect if dialect != "mariadb" else "mysql"):
        algorithm, security, check = details[name]
        statement = (f"CREATE ALGORITHM={algorithm} SQL SECURITY {security} VIEW {quote(name)} AS {views[name]}"
                     + (f" WITH {check} CHECK OPTION" if check and check != "NONE" else ""))
        parts.append(Part("view", name, (statement,), statement))
        drops.insert(1, f"DROP VIEW IF EXISTS {quote(name)}")
    parts.append(Part("session", "foreign key checks on", ("SET FOREIGN_KEY_CHECKS = 1",), ""))
    drops.append("SET FOREIGN_KEY_CHECKS = 1")
    return Captured(dialect, tuple(parts), tuple(uncarried), tuple(drops))


def _escaped(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "''")


def _backticked(name: str) -> str:
    """A name as SHOW CREATE writes it, always in backticks."""
    return "`" + name.replace("`", "``") + "`"
