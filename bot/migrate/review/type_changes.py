"""Which column type changes each database makes in place (metadata only), without a rewrite or a copy."""

from __future__ import annotations

from bot.migrate.review import statements as st
from bot.migrate.review.situation import ColumnFacts
from bot.migrate.review.statements import ColumnType


def safe_type_change(dialect: str, old: ColumnFacts, new: ColumnType, server_version: tuple[int, ...]) -> str | None:
    """Why a type change needs neither a rewrite nor a copy on this database, or None when it does."""
    before = old.type
    if before.array != new.array:
        return None
    if dialect == st.POSTGRESQL:
        if before.name == "varchar" and new.name in ("varchar", "text"):
            if not new.params or new.name == "text":
                return "dropping a VARCHAR's limit is metadata-only on PostgreSQL"
            if before.params and new.params[0] >= before.params[0]:
                return "widening a VARCHAR is metadata-only on PostgreSQL"
        if before.name == "text" and new.name == "varchar" and not new.params:
            return "TEXT to unlimited VARCHAR is metadata-only on PostgreSQL"
        if before.name == "numeric" and new.name == "numeric":
            if not new.params:
                return "dropping a NUMERIC's precision is metadata-only on PostgreSQL"
            if len(before.params) == 2 and len(new.params) == 2 and new.params[1] == before.params[1] \
                    and new.params[0] >= before.params[0]:
                return "raising a NUMERIC's precision at the same scale is metadata-only on PostgreSQL"
        if before.name == "cidr" and new.name == "inet":
            return "CIDR to INET is metadata-only on PostgreSQL"
        if before.name == new.name and before.params == new.params:
            return "the type does not change"
        return None
    if dialect == st.MYSQL:
        if before.name == new.name == "varchar" and before.params and new.params and new.params[0] >= before.params[0]:
            per_char = (old.octet_length // before.params[0]) if old.octet_length and before.params[0] else 4
            if (before.params[0] * per_char < 256) == (new.params[0] * per_char < 256):
                return "widening a VARCHAR within the same length-prefix size is done in place on MySQL/MariaDB"
        if before == new:
            return "the type does not change"
        return None
    if _sqlite_affinity(before) == _sqlite_affinity(new):
        return "SQLite stores both types with the same affinity"
    return None


def _sqlite_affinity(column_type: ColumnType) -> str:
    """SQLite's type affinity rules (section 3.1 of its datatype documentation), by the type's name."""
    name = column_type.name.upper()
    if "INT" in name or column_type.name in ("smallint", "bigint", "integer", "tinyint", "serial", "bigserial"):
        return "INTEGER"
    if any(word in name for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in name or column_type.name == "bytes" or not name:
        return "BLOB"
    if any(word in name for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"
