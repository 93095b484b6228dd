"""PostgreSQL's schema read from its catalogs, written back as the statements that make it again.

The catalog's own deparsers (format_type, pg_get_expr, pg_get_constraintdef, pg_get_indexdef,
pg_get_viewdef) give each definition exactly as the server understands it; pglast drops the schema name
pg_get_indexdef always writes, so the baseline loads into whatever schema the database uses.
"""

from __future__ import annotations

from typing import Any

import pglast
import pglast.ast
from pglast.stream import RawStream
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.migrate.baseline.parts import Captured, Part, Uncarried, bot_tables, insert_order, row_parts, views_in_order

# Extensions a baseline re-creates by name; their objects (functions, types, operators) come with them.
KNOWN_EXTENSIONS = frozenset({"citext", "pgcrypto", "uuid-ossp", "pg_trgm", "hstore", "btree_gin", "btree_gist",
                              "unaccent", "fuzzystrmatch", "intarray", "ltree", "cube", "earthdistance"})
NOT_FROM_EXTENSION = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
SEQUENCE_OPTIONS = ("SELECT s.seqtypid::regtype::text, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, "
                    "s.seqcycle, q.last_value FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid "
                    "JOIN pg_sequences q ON q.schemaname = :schema AND q.sequencename = c.relname "
                    "WHERE s.seqrelid = CAST(:oid AS oid)")


def capture(connection: Connection) -> Captured:
    """Every object of the current schema, in an order that loads (types, sequences, tables, rows, keys, views)."""
    schema = str(connection.scalar(text("SELECT current_schema()")))
    quote = connection.dialect.identifier_preparer.quote
    reader = _Reader(connection, schema, quote)
    return reader.capture()


class _Reader:
    """One read of one schema; each method adds the parts of one kind."""

    def __init__(self, connection: Connection, schema: str, quote: Any) -> None:
        self.connection, self.schema, self.quote = connection, schema, quote
        self.parts: list[Part] = []
        self.late: list[Part] = []  # identity, sequence values and keys: after the rows
        self.uncarried: list[Uncarried] = []
        self.drops: list[str] = []

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return list(self.connection.execute(text(sql), {"schema": self.schema, **params}))

    def capture(self) -> Captured:
        self.refuse_what_cannot_be_carried()
        self.extensions()
        self.enums()
        tables = self.table_oids()
        owned = self.sequences()
        for oid, name in tables:
            self.table(oid, name)
        self.parts += row_parts(self.connection, insert_order(self.connection, [name for _oid, name in tables]))
        self.parts += self.late
        for sequence, table, column in owned:
            self.parts.append(Part("sequence owner", sequence, (
                f"ALTER SEQUENCE {self.quote(sequence)} OWNED BY {self.quote(table)}.{self.quote(column)}",),
                f"{table}.{column}"))
        for foreign in (False, True):  # every key a foreign key may reference exists before the foreign keys
            for oid, name in tables:
                self.constraints(oid, name, foreign=foreign)
        for oid, name in tables:
            self.indexes(oid, name)
        self.views()
        return Captured("postgresql", tuple(self.parts), tuple(self.uncarried), tuple(reversed(self.drops)))

    def refuse_what_cannot_be_carried(self) -> None:
        """Triggers, functions, rules, policies, other schemas, materialized views, partitions: named, not made."""
        own = "n.nspname = :schema"
        relation_kind = ("CASE c.relkind WHEN 'm' THEN 'materialized view' WHEN 'p' THEN 'partitioned table' "
                         "WHEN 'f' THEN 'foreign table' ELSE 'composite type' END")
        # (kind, shown name, name the probe looks for), and the probe: one row while the object exists.
        queries = (
            ("SELECT 'trigger', t.tgname || ' on ' || c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON "
             f"c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {own} AND NOT t.tgisinternal",
             "SELECT 1 FROM pg_trigger WHERE tgname = '{name}' AND NOT tgisinternal"),
            ("SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END, "
             "p.proname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
             f"WHERE {own} AND {NOT_FROM_EXTENSION.format(oid='p.oid')}",
             "SELECT 1 FROM pg_proc WHERE proname = '{name}'"),
            ("SELECT 'rule', r.rulename || ' on ' || c.relname, r.rulename FROM pg_rewrite r JOIN pg_class c ON "
             f"c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {own} AND "
             "r.rulename <> '_RETURN'", "SELECT 1 FROM pg_rewrite WHERE rulename = '{name}'"),
            ("SELECT 'policy', p.polname || ' on ' || c.relname, p.polname FROM pg_policy p JOIN pg_class c ON "
             f"c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {own}",
             "SELECT 1 FROM pg_policy WHERE polname = '{name}'"),
            ("SELECT 'schema', n.nspname, n.nspname FROM pg_namespace n WHERE n.nspname <> :schema AND "
             "n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname NOT LIKE 'pg\\_%' "
             f"AND {NOT_FROM_EXTENSION.format(oid='n.oid')}", "SELECT 1 FROM pg_namespace WHERE nspname = '{name}'"),
            (f"SELECT {relation_kind}, c.relname, c.relname FROM pg_class c JOIN pg_namespace n ON "
             f"n.oid = c.relnamespace WHERE {own} AND c.relkind IN ('m', 'p', 'f', 'c') AND "
             f"{NOT_FROM_EXTENSION.format(oid='c.oid')}", "SELECT 1 FROM pg_class WHERE relname = '{name}'"),
            ("SELECT 'table inheritance', c.relname, c.relname FROM pg_inherits i JOIN pg_class c ON "
             f"c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {own}",
             "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relname = '{name}'"),
            ("SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'range type' END, t.typname, t.typname FROM pg_type t "
             f"JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {own} AND t.typtype IN ('d', 'r') AND "
             f"{NOT_FROM_EXTENSION.format(oid='t.oid')}", "SELECT 1 FROM pg_type WHERE typname = '{name}'"),
            ("SELECT 'extension', extname, extname FROM pg_extension WHERE extname <> 'plpgsql' AND "
             f"extname NOT IN ({', '.join(literal(name) for name in sorted(KNOWN_EXTENSIONS))})",
             "SELECT 1 FROM pg_extension WHERE extname = '{name}'"),
        )
        for query, probe in queries:
            for kind, shown, name in self.rows(query):
                self.uncarried.append(Uncarried(kind, shown, probe.format(name=str(name).replace("'", "''"))))

    def extensions(self) -> None:
        for (name,) in self.rows("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY extname"):
            if name in KNOWN_EXTENSIONS:
                self.parts.append(Part("extension", name, (f"CREATE EXTENSION IF NOT EXISTS {self.quote(name)}",),
                                       name))

    def enums(self) -> None:
        query = ("SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t "
                 "JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid "
                 f"WHERE n.nspname = :schema AND {NOT_FROM_EXTENSION.format(oid='t.oid')} "
                 "GROUP BY t.oid, t.typname ORDER BY t.oid")
        for name, labels in self.rows(query):
            values = ", ".join(literal(label) for label in labels)
            self.parts.append(Part("enum", name, (f"CREATE TYPE {self.quote(name)} AS ENUM ({values})",), values))
            self.drops.append(f"DROP TYPE IF EXISTS {self.quote(name)} CASCADE")

    def table_oids(self) -> list[tuple[int, str]]:
        query = ("SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = :schema AND c.relkind = 'r' ORDER BY c.oid")
        found = {name: oid for oid, name in self.rows(query)}
        return [(found[name], name) for name in bot_tables(found)]

    def sequences(self) -> list[tuple[str, str, str]]:
        """Free-standing and serial sequences (identity ones come with their column); returns serial owners."""
        query = ("SELECT c.oid, c.relname, owner.relname, a.attname, d.deptype FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_depend d ON d.objid = c.oid AND "
                 "d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') "
                 "LEFT JOIN pg_class owner ON owner.oid = d.refobjid LEFT JOIN pg_attribute a ON "
                 "a.attrelid = d.refobjid AND a.attnum = d.refobjsubid WHERE n.nspname = :schema AND c.relkind = 'S' "
                 f"AND {NOT_FROM_EXTENSION.format(oid='c.oid')} ORDER BY c.oid")
        owned = []
        for oid, name, table, column, deptype in self.rows(query):
            if deptype == "i" or (table is not None and not bot_tables([table])):
                continue  # an identity column's (made with its column), or the toolkit's journal's
            options, last = self.sequence_options(oid)
            self.parts.append(Part("sequence", name, (f"CREATE SEQUENCE {self.quote(name)} {options}",), options))
            self.late.append(Part("sequence value", name, (self.setval(name, last),) if last is not None else (),
                                  str(last)))
            self.drops.append(f"DROP SEQUENCE IF EXISTS {self.quote(name)} CASCADE")
            if table is not None:
                owned.append((name, table, column))
        return owned

    def sequence_options(self, oid: int) -> tuple[str, int | None]:
        kind, start, increment, low, high, cache, cycle, last = self.rows(SEQUENCE_OPTIONS, oid=oid)[0]
        return (f"AS {kind} START WITH {start} INCREMENT BY {increment} MINVALUE {low} MAXVALUE {high} "
                f"CACHE {cache} {'CYCLE' if cycle else 'NO CYCLE'}"), last

    def setval(self, sequence: str, last: int) -> str:
        return f"SELECT setval({literal(self.quote(sequence))}, {last}, true)"

    def table(self, oid: int, name: str) -> None:
        query = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, "
                 "d.adrelid), a.attidentity, a.attgenerated, CASE WHEN a.attcollation <> t.typcollation THEN "
                 "co.collname END, col_description(a.attrelid, a.attnum) FROM pg_attribute a JOIN pg_type t ON "
                 "t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                 "LEFT JOIN pg_collation co ON co.oid = a.attcollation WHERE a.attrelid = CAST(:oid AS oid) AND "
                 "a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")
        columns, comments = [], []
        table = self.quote(name)
        for column, kind, not_null, default, identity, generated, collation, comment in self.rows(query, oid=oid):
            line = f"{self.quote(column)} {kind}"
            if collation:
                line += f" COLLATE {self.quote(collation)}"
            if generated == "s":
                line += f" GENERATED ALWAYS AS ({default}) STORED"
            elif default is not None:
                line += f" DEFAULT {default}"
            if not_null:
                line += " NOT NULL"
            columns.append(line)
            if identity:
                self.identity(name, column, identity)
            if comment is not None:
                comments.append(f"COMMENT ON COLUMN {table}.{self.quote(column)} IS {literal(comment)}")
        described = self.connection.scalar(text("SELECT obj_description(CAST(:oid AS oid), 'pg_class')"), {"oid": oid})
        if described is not None:
            comments.append(f"COMMENT ON TABLE {table} IS {literal(described)}")
        create = f"CREATE TABLE {table} ({', '.join(columns)})"
        self.parts.append(Part("table", name, (create, *comments), "\n".join((create, *comments))))
        self.drops.append(f"DROP TABLE IF EXISTS {table} CASCADE")

    def identity(self, table: str, column: str, identity: str) -> None:
        """An identity column gets its identity after the rows, with its sequence's options and value."""
        sequence = self.connection.scalar(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                          {"table": self.quote(table), "column": column})
        oid = self.connection.scalar(text("SELECT CAST(CAST(:name AS regclass) AS oid)"), {"name": sequence})
        options, last = self.sequence_options(int(oid))
        plain_name = str(self.connection.scalar(text("SELECT relname FROM pg_class WHERE oid = CAST(:oid AS oid)"),
                                                {"oid": oid}))
        how = "ALWAYS" if identity == "a" else "BY DEFAULT"
        statements = [f"ALTER TABLE {self.quote(table)} ALTER COLUMN {self.quote(column)} ADD GENERATED {how} AS "
                      f"IDENTITY (SEQUENCE NAME {self.quote(plain_name)} {options.removeprefix('AS integer ')})"]
        if last is not None:
            statements.append(self.setval(plain_name, last))
        self.late.append(Part("identity", f"{table}.{column}", tuple(statements), f"{how} {options} {last}"))

    def constraints(self, oid: int, name: str, *, foreign: bool) -> None:
        kinds = "('f')" if foreign else "('p', 'u', 'x', 'c')"
        query = ("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = CAST(:oid AS oid) "
                 f"AND contype IN {kinds} ORDER BY contype, conname")
        for constraint, definition in self.rows(query, oid=oid):
            self.parts.append(Part("constraint", f"{name}.{constraint}", (
                f"ALTER TABLE {self.quote(name)} ADD CONSTRAINT {self.quote(constraint)} {definition}",), definition))

    def indexes(self, oid: int, name: str) -> None:
        query = ("SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON "
                 "c.oid = i.indexrelid WHERE i.indrelid = CAST(:oid AS oid) AND NOT EXISTS (SELECT 1 FROM "
                 "pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) ORDER BY c.relname")
        for index, definition in self.rows(query, oid=oid):
            statement = without_schema(definition)
            self.parts.append(Part("index", index, (statement,), statement))

    def views(self) -> None:
        query = ("SELECT c.relname, pg_get_viewdef(c.oid, true), c.reloptions FROM pg_class c JOIN pg_namespace n "
                 "ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'v' AND "
                 f"{NOT_FROM_EXTENSION.format(oid='c.oid')} ORDER BY c.oid")
        found = {name: (definition.strip().rstrip(";"), options) for name, definition, options in self.rows(query)}
        for name in views_in_order({name: value[0] for name, value in found.items()}, "postgres"):
            definition, options = found[name]
            with_options = f" WITH ({', '.join(options)})" if options else ""
            statement = f"CREATE VIEW {self.quote(name)}{with_options} AS {definition}"
            self.parts.append(Part("view", name, (statement,), statement))
            self.drops.append(f"DROP VIEW IF EXISTS {self.quote(name)} CASCADE")


def literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, the default since 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def without_schema(index_definition: str) -> str:
    """pg_get_indexdef's statement without the schema it always names, deparsed by pglast."""
    statement = pglast.parse_sql(index_definition)[0].stmt
    assert isinstance(statement, pglast.ast.IndexStmt) and statement.relation is not None, index_definition
    statement.relation.schemaname = None
    return str(RawStream()(statement))
