"""Which parser reads a dialect's SQL: pglast for PostgreSQL, sqlglot for MySQL/MariaDB and SQLite."""

from __future__ import annotations

from bot.migrate.review.statements import POSTGRESQL, ColumnType, ParsedStatements


def read_sql(sql: str, dialect: str) -> ParsedStatements:
    """The actions of every statement in `sql` (comments and several statements per string included)."""
    # Each parser is slow to import: load only the one this database needs, and only when a review runs.
    if dialect == POSTGRESQL:
        from bot.migrate.review import pg_reader  # pglast: PostgreSQL only

        return pg_reader.read_statements(sql)
    from bot.migrate.review import glot_reader  # sqlglot: MySQL/MariaDB and SQLite only

    return glot_reader.read_statements(sql, dialect)


def read_type(text: str, dialect: str) -> ColumnType | None:
    """A type as written in DDL (e.g. a reflected column's), read by the dialect's parser."""
    if dialect == POSTGRESQL:
        from bot.migrate.review import pg_reader  # as in read_sql

        return pg_reader.read_type(text)
    from bot.migrate.review import glot_reader  # as in read_sql

    return glot_reader.read_type(text, dialect)
