"""Read SQL statements into the actions they perform, with a real parser for each dialect.

PostgreSQL is read by pglast, which wraps PostgreSQL's own parser (libpg_query): whatever the server
accepts is read exactly as the server reads it. MySQL/MariaDB and SQLite are read by sqlglot
(bot.migrate.review.pg_reader and bot.migrate.review.glot_reader). Either
way the result is a list of `Action`s (drop this column, build that index, delete every row of that
table, ...) that the review judges; a statement the parser cannot read becomes an UNREADABLE action,
so it is never silently waved through.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# What a statement does, as far as the review cares.
CREATE_TABLE = "create table"
DROP_TABLE = "drop table"
RENAME_TABLE = "rename table"
ADD_COLUMN = "add column"
DROP_COLUMN = "drop column"
RENAME_COLUMN = "rename column"
ALTER_TYPE = "alter type"  # PostgreSQL ALTER COLUMN ... TYPE
MODIFY_COLUMN = "modify column"  # MySQL MODIFY/CHANGE: the whole column definition restated
SET_NOT_NULL = "set not null"
DROP_NOT_NULL = "drop not null"
SET_DEFAULT = "set default"
ADD_CONSTRAINT = "add constraint"
CREATE_INDEX = "create index"
DROP_INDEX = "drop index"
REINDEX = "reindex"
DROP_PRIMARY_KEY = "drop primary key"
TRUNCATE = "truncate"
DELETE = "delete"
UPDATE = "update"
INSERT = "insert"
DROP_SCHEMA = "drop schema"
DROP_DATABASE = "drop database"
TRANSACTION = "transaction"
DOMAIN_CONSTRAINT = "domain constraint"
CREATE_DOMAIN = "create domain"
OPAQUE = "opaque"  # procedural code (DO blocks, CALL): what it runs cannot be read
UNREADABLE = "unreadable"
OTHER = "other"
# OTHER statements (by the parser's name for them) that only read, or set a session variable.
READ_STATEMENTS = frozenset({"SelectStmt", "VariableSetStmt", "VariableShowStmt", "ExplainStmt", "Select", "Set",
                             "Show", "Pragma", "Describe", "Union", "show", "set", "pragma"})

# Constraint kinds of ADD_CONSTRAINT.
FOREIGN_KEY = "foreign key"
CHECK = "check"
UNIQUE = "unique"
PRIMARY_KEY = "primary key"
EXCLUSION = "exclusion"

POSTGRESQL = "postgresql"
MYSQL = "mysql"
SQLITE = "sqlite"

# PostgreSQL's catalog names and the usual spellings of every dialect, folded to one word per type.
_TYPE_WORDS = {
    "int2": "smallint", "smallint": "smallint", "int4": "integer", "int": "integer", "integer": "integer",
    "mediumint": "integer", "tinyint": "tinyint", "int8": "bigint", "bigint": "bigint",
    "serial": "serial", "serial4": "serial", "bigserial": "bigserial", "serial8": "bigserial",
    "smallserial": "smallserial", "serial2": "smallserial",
    "varchar": "varchar", "character varying": "varchar", "nvarchar": "varchar",
    "bpchar": "char", "char": "char", "character": "char", "nchar": "char",
    "text": "text", "tinytext": "text", "mediumtext": "text", "longtext": "text",
    "numeric": "numeric", "decimal": "numeric",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "datetime": "timestamp",
    "json": "json", "jsonb": "jsonb", "bool": "boolean", "boolean": "boolean",
    "float4": "real", "real": "real", "float8": "double", "double": "double", "double precision": "double",
    "float": "double", "bytea": "bytes", "blob": "bytes", "varbinary": "varbinary", "binary": "binary",
    "cidr": "cidr", "inet": "inet", "uuid": "uuid", "date": "date", "time": "time", "timetz": "timetz",
    "interval": "interval", "varbit": "varbit", "bit": "bit", "citext": "citext",
}
SERIAL_TYPES = frozenset({"serial", "bigserial", "smallserial"})
# MySQL's INT(11) is a display width, not a size: integer types compare without parameters.
_UNSIZED = frozenset({"smallint", "integer", "tinyint", "bigint", *SERIAL_TYPES})


@dataclass(frozen=True)
class TableName:
    """A table as a statement names it; `schema` is None when the statement leaves it to the search path."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class ColumnType:
    """A column type folded to one word per family (`integer`, `varchar`, ...) with its parameters."""

    name: str
    params: tuple[int, ...] = ()
    array: bool = False

    def __str__(self) -> str:
        inner = f"({','.join(str(value) for value in self.params)})" if self.params else ""
        return f"{self.name}{inner}{'[]' if self.array else ''}"


@dataclass(frozen=True)
class ColumnSpec:
    """What a statement says about one column it creates or redefines."""

    name: str
    type: ColumnType | None = None
    not_null: bool = False
    has_default: bool = False
    default_functions: tuple[str, ...] = ()  # functions the default expression calls, lowercase
    identity: bool = False  # serial, GENERATED ... AS IDENTITY, AUTO_INCREMENT
    generated_stored: bool = False
    primary_key: bool = False
    unique: bool = False
    references: TableName | None = None
    check: bool = False


@dataclass(frozen=True)
class Action:
    """One thing a statement does to one object."""

    kind: str
    table: TableName | None = None
    column: str | None = None
    spec: ColumnSpec | None = None
    new_name: str | None = None
    new_table: TableName | None = None
    columns: tuple[ColumnSpec, ...] = ()
    constraint: str | None = None
    name: str | None = None
    not_valid: bool = False
    using_index: bool = False
    concurrent: bool = False
    unique: bool = False
    has_where: bool = True
    using: bool = False
    cascade: bool = False
    references: TableName | None = None
    # INSERT ... SELECT: (target column, source column of `source` or None for an expression)
    copies: tuple[tuple[str, str | None], ...] = ()
    source: TableName | None = None
    long_names: tuple[str, ...] = ()
    detail: str = ""
    statement: str = ""


@dataclass
class ParsedStatements:
    """The actions of a SQL text, statement by statement."""

    statements: list[tuple[str, list[Action]]] = field(default_factory=list)

    def actions(self) -> Iterator[Action]:
        """Every action, in order."""
        for _text, actions in self.statements:
            yield from actions


def column_type(word: str, params: tuple[int, ...] = (), array: bool = False) -> ColumnType:
    """A type word of any dialect folded to one word per family; integer types carry no size."""
    name = _TYPE_WORDS.get(word.lower(), word.lower())
    return ColumnType(name, () if name in _UNSIZED else params, array)


def family(dialect_name: str) -> str:
    """postgresql, mysql (MySQL and MariaDB) or sqlite, from a SQLAlchemy dialect name."""
    return MYSQL if dialect_name in ("mysql", "mariadb") else dialect_name


def excerpt(text: str, limit: int = 160) -> str:
    """A statement on one line, shortened for a log line or an error."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"
