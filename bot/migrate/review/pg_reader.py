"""PostgreSQL statements read by pglast, which wraps PostgreSQL's own parser (libpg_query).

The JSON form of the parse tree is walked directly: it is what the server itself would see, and
building pglast's Python node objects would cost more than the parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pglast import parser

from bot.migrate.review import statements as st
from bot.migrate.review.statements import (
    Action,
    ColumnSpec,
    ColumnType,
    ParsedStatements,
    TableName,
    column_type,
    excerpt,
)


def read_statements(sql: str) -> ParsedStatements:
    """pglast's JSON parse tree, statement by statement (the JSON form avoids building Python node objects)."""
    result = ParsedStatements()
    try:
        text = parser.parse_sql_json(sql)
    except parser.ParseError as error:
        result.statements.append((sql, [Action(st.UNREADABLE, detail=str(error), statement=excerpt(sql))]))
        return result
    tree = json.loads(text)
    # Most DDL has neither: the tree walks that look for them are skipped when the parse tree cannot hold one.
    may_nest_dml = '"DeleteStmt"' in text or '"UpdateStmt"' in text
    may_cut_names = _may_hold_cut_names(text)
    encoded = sql.encode("utf-8")
    for raw in tree.get("stmts", []):
        start = raw.get("stmt_location", 0)
        length = raw.get("stmt_len")
        piece = encoded[start:start + length if length else None].decode("utf-8", "replace").strip()
        node = raw.get("stmt", {})
        actions = [replace(action, statement=excerpt(piece)) for action in _statement(node, may_nest_dml)]
        long_names = _long_names(node, piece) if may_cut_names else ()
        if long_names:
            actions = [replace(action, long_names=long_names) for action in actions]
        result.statements.append((piece, actions))
    return result


def _statement(node: dict[str, Any], may_nest_dml: bool) -> list[Action]:
    """The actions of one PostgreSQL statement node."""
    (kind, body), = node.items()
    # DELETE and UPDATE may hide anywhere, e.g. in a CTE: WITH gone AS (DELETE FROM users RETURNING id) SELECT ...
    nested = list(_dml(node)) if may_nest_dml else []
    if kind in ("DeleteStmt", "UpdateStmt"):
        return nested  # the statement itself comes first among them
    return _top(kind, body) + nested


def _top(kind: str, body: dict[str, Any]) -> list[Action]:
    if kind == "CreateStmt":
        return [Action(st.CREATE_TABLE, _table(body["relation"]), columns=_columns(body.get("tableElts", [])))]
    if kind == "CreateTableAsStmt":
        into = body.get("into", {}).get("IntoClause", {}).get("rel")
        return [Action(st.CREATE_TABLE, _table(into))] if into else [Action(st.OTHER)]
    if kind == "DropStmt":
        return _drop(body)
    if kind == "DropdbStmt":
        return [Action(st.DROP_DATABASE, name=body.get("dbname"))]
    if kind == "RenameStmt":
        return _rename(body)
    if kind == "AlterObjectSchemaStmt" and body.get("objectType") == "OBJECT_TABLE":
        table = _table(body["relation"])
        return [Action(st.RENAME_TABLE, table, new_table=TableName(body.get("newschema"), table.name))]
    if kind == "AlterTableStmt" and body.get("objtype", "OBJECT_TABLE") == "OBJECT_TABLE":
        table = _table(body["relation"])
        return [_alter(table, command["AlterTableCmd"]) for command in body.get("cmds", [])]
    if kind == "IndexStmt":
        return [Action(st.CREATE_INDEX, _table(body["relation"]), name=body.get("idxname"),
                       concurrent=bool(body.get("concurrent")), unique=bool(body.get("unique")))]
    if kind == "ReindexStmt":
        concurrent = any(_defname(item) == "concurrently" for item in body.get("params", []))
        relation = body.get("relation")
        return [Action(st.REINDEX, _table(relation) if relation else None, name=body.get("name"),
                       concurrent=concurrent)]
    if kind == "TruncateStmt":
        cascade = body.get("behavior") == "DROP_CASCADE"
        return [Action(st.TRUNCATE, _table(item["RangeVar"]), cascade=cascade) for item in body.get("relations", [])]
    if kind == "TransactionStmt":
        return [Action(st.TRANSACTION, detail=str(body.get("kind", "")).removeprefix("TRANS_STMT_"))]
    if kind in ("DoStmt", "CallStmt"):
        return [Action(st.OPAQUE, detail="DO block" if kind == "DoStmt" else "CALL")]
    if kind == "AlterDomainStmt" and body.get("subtype") == "C":
        constraint = body.get("def", {}).get("Constraint", {})
        return [Action(st.DOMAIN_CONSTRAINT, name=_dotted(body.get("typeName", [])),
                       not_valid=bool(constraint.get("skip_validation")))]
    if kind == "CreateDomainStmt" and any(_contype(item) == "CONSTR_CHECK" for item in body.get("constraints", [])):
        return [Action(st.CREATE_DOMAIN, name=_dotted(body.get("domainname", [])))]
    if kind == "InsertStmt":
        return [Action(st.INSERT, _table(body["relation"]))]
    return [Action(st.OTHER, detail=kind)]


def _drop(body: dict[str, Any]) -> list[Action]:
    kind = body.get("removeType")
    cascade = body.get("behavior") == "DROP_CASCADE"
    names = [_object_name(item) for item in body.get("objects", [])]
    if kind == "OBJECT_TABLE":
        return [Action(st.DROP_TABLE, _qualified(name), cascade=cascade) for name in names]
    if kind == "OBJECT_INDEX":
        return [Action(st.DROP_INDEX, name=str(_qualified(name)), concurrent=bool(body.get("concurrent")))
                for name in names]
    if kind == "OBJECT_SCHEMA":
        return [Action(st.DROP_SCHEMA, name=".".join(name), cascade=cascade) for name in names]
    return [Action(st.OTHER, detail=f"drop {str(kind).removeprefix('OBJECT_').lower()}")]


def _rename(body: dict[str, Any]) -> list[Action]:
    kind = body.get("renameType")
    relation = body.get("relation")
    if kind == "OBJECT_TABLE" and relation:
        table = _table(relation)
        return [Action(st.RENAME_TABLE, table, new_table=TableName(table.schema, body["newname"]))]
    if kind == "OBJECT_COLUMN" and relation and body.get("relationType") == "OBJECT_TABLE":
        return [Action(st.RENAME_COLUMN, _table(relation), column=body.get("subname"), new_name=body.get("newname"))]
    return [Action(st.OTHER, detail=f"rename {str(kind).removeprefix('OBJECT_').lower()}")]


def _alter(table: TableName, command: dict[str, Any]) -> Action:
    """One ALTER TABLE subcommand."""
    subtype = command.get("subtype")
    name = command.get("name")
    definition = command.get("def", {})
    if subtype == "AT_AddColumn":
        return Action(st.ADD_COLUMN, table, spec=_column(definition["ColumnDef"]),
                      column=definition["ColumnDef"].get("colname"))
    if subtype == "AT_DropColumn":
        return Action(st.DROP_COLUMN, table, column=name, cascade=command.get("behavior") == "DROP_CASCADE")
    if subtype == "AT_AlterColumnType":
        column = definition.get("ColumnDef", {})
        return Action(st.ALTER_TYPE, table, column=name, spec=ColumnSpec(name or "", _type(column.get("typeName"))),
                      using="raw_default" in column)
    if subtype == "AT_SetNotNull":
        return Action(st.SET_NOT_NULL, table, column=name)
    if subtype == "AT_DropNotNull":
        return Action(st.DROP_NOT_NULL, table, column=name)
    if subtype == "AT_ColumnDefault" and definition:
        return Action(st.SET_DEFAULT, table, column=name)
    if subtype == "AT_AddConstraint":
        return _constraint(table, definition.get("Constraint", {}))
    return Action(st.OTHER, table, detail=str(subtype))


_CONSTRAINTS = {"CONSTR_FOREIGN": st.FOREIGN_KEY, "CONSTR_CHECK": st.CHECK, "CONSTR_UNIQUE": st.UNIQUE,
                   "CONSTR_PRIMARY": st.PRIMARY_KEY, "CONSTR_EXCLUSION": st.EXCLUSION}


def _constraint(table: TableName, constraint: dict[str, Any]) -> Action:
    kind = _CONSTRAINTS.get(constraint.get("contype", ""))
    if kind is None:
        return Action(st.OTHER, table, detail=str(constraint.get("contype")))
    referenced = constraint.get("pktable")
    return Action(st.ADD_CONSTRAINT, table, constraint=kind, name=constraint.get("conname"),
                  not_valid=bool(constraint.get("skip_validation")), using_index="indexname" in constraint,
                  references=_table(referenced) if referenced else None)


def _columns(elements: list[dict[str, Any]]) -> tuple[ColumnSpec, ...]:
    return tuple(_column(element["ColumnDef"]) for element in elements if "ColumnDef" in element)


def _column(column: dict[str, Any]) -> ColumnSpec:
    """A ColumnDef node: type, NOT NULL, default, identity, generated, inline constraints."""
    column_type = _type(column.get("typeName"))
    spec = ColumnSpec(column.get("colname", ""), column_type,
                      identity=column_type is not None and column_type.name in st.SERIAL_TYPES)
    values: dict[str, Any] = {}
    for item in column.get("constraints", []):
        constraint = item.get("Constraint", {})
        kind = constraint.get("contype")
        if kind == "CONSTR_NOTNULL":
            values["not_null"] = True
        elif kind == "CONSTR_DEFAULT":
            values["has_default"] = True
            values["default_functions"] = tuple(_functions(constraint.get("raw_expr", {})))
        elif kind == "CONSTR_IDENTITY":
            values["identity"] = True
        elif kind == "CONSTR_GENERATED":
            values["generated_stored"] = True
        elif kind == "CONSTR_PRIMARY":
            values["primary_key"] = values["not_null"] = True
        elif kind == "CONSTR_UNIQUE":
            values["unique"] = True
        elif kind == "CONSTR_FOREIGN":
            values["references"] = _table(constraint["pktable"]) if "pktable" in constraint else None
        elif kind == "CONSTR_CHECK":
            values["check"] = True
    return replace(spec, **values)


def _type(type_name: dict[str, Any] | None) -> ColumnType | None:
    if not type_name:
        return None
    names = [part["String"]["sval"] for part in type_name.get("names", []) if "String" in part]
    word = names[-1].lower() if names else ""
    params = tuple(int(value) for value in (_int(item) for item in type_name.get("typmods", [])) if value is not None)
    return column_type(word, params, bool(type_name.get("arrayBounds")))


def _int(node: dict[str, Any]) -> int | None:
    constant = node.get("A_Const", {})
    if "ival" in constant:
        return int(constant["ival"].get("ival", 0))
    return None


def _functions(node: Any) -> Iterator[str]:
    """The names of the functions an expression calls (schema-qualified names by their last part)."""
    if isinstance(node, dict):
        call = node.get("FuncCall")
        if call is not None:
            names = [part["String"]["sval"] for part in call.get("funcname", []) if "String" in part]
            if names:
                yield names[-1].lower()
        for value in node.values():
            yield from _functions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _functions(value)


def _dml(node: Any) -> Iterator[Action]:
    """Every DELETE and UPDATE in a tree (the statement itself first, then those nested in CTEs)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("DeleteStmt", "UpdateStmt") and isinstance(value, dict) and "relation" in value:
                yield Action(st.DELETE if key == "DeleteStmt" else st.UPDATE, _table(value["relation"]),
                             has_where="whereClause" in value or "usingClause" in value or "fromClause" in value)
            yield from _dml(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dml(value)


def _table(relation: dict[str, Any]) -> TableName:
    return TableName(relation.get("schemaname"), relation.get("relname", ""))


def _object_name(item: dict[str, Any]) -> list[str]:
    if "List" in item:
        return [part["String"]["sval"] for part in item["List"].get("items", []) if "String" in part]
    if "String" in item:
        return [item["String"]["sval"]]
    return []


def _qualified(parts: list[str]) -> TableName:
    return TableName(parts[-2] if len(parts) > 1 else None, parts[-1] if parts else "")


def _dotted(parts: list[dict[str, Any]]) -> str:
    return ".".join(part["String"]["sval"] for part in parts if "String" in part)


def _defname(item: dict[str, Any]) -> str | None:
    return item.get("DefElem", {}).get("defname")


def _contype(item: dict[str, Any]) -> str | None:
    return item.get("Constraint", {}).get("contype")


NAME_LIMIT = 63  # NAMEDATALEN - 1: longer identifiers are cut to this length by the server's own scanner
SHORTEST_CUT = NAME_LIMIT - 3  # the cut never splits a character, and a UTF-8 character has at most 4 bytes


def _may_hold_cut_names(tree_json: str) -> bool:
    """Whether a parse tree's JSON has a string of SHORTEST_CUT bytes or more: a cut identifier is one.

    A JSON escape is never shorter in bytes than the character it stands for, and an escaped quote is
    counted as two bytes of the string it sits in, so no string that long can be missed.
    """
    pieces = tree_json.encode("utf-8").replace(b'\\"', b"xx").split(b'"')
    return max(map(len, pieces), default=0) >= SHORTEST_CUT


def _long_names(node: Any, text: str) -> tuple[str, ...]:
    """Identifiers the parser cut to 63 bytes (fewer when a multi-byte character did not fit): the statement's
    text goes on with an identifier character that would not have fitted."""
    found = []
    for name in set(_names(node)):
        size = len(name.encode("utf-8"))
        if not SHORTEST_CUT <= size <= NAME_LIMIT:
            continue
        at = text.lower().find(name.lower())
        follow = text[at + len(name):at + len(name) + 1] if at >= 0 else ""
        if follow and (follow.isalnum() or follow in "_$") and size + len(follow.encode("utf-8")) > NAME_LIMIT:
            found.append(name)
    return tuple(sorted(found))


def _names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("relname", "colname", "idxname", "conname", "newname", "subname") and isinstance(value, str):
                yield value
            else:
                yield from _names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names(value)


def read_type(text: str) -> ColumnType | None:
    """A type as PostgreSQL's parser reads it inside a cast."""
    try:
        tree = json.loads(parser.parse_sql_json(f"SELECT CAST(NULL AS {text})"))
        target = tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]["val"]
    except (parser.ParseError, KeyError, IndexError):
        return None
    return _type(target.get("TypeCast", {}).get("typeName"))


def proves_not_null(definition: str, column: str) -> bool:
    """Whether a CHECK constraint's definition (`CHECK ((col IS NOT NULL))`, alone or AND-ed) proves the column."""
    if not definition.upper().startswith("CHECK"):
        return False
    try:
        tree = json.loads(parser.parse_sql_json(f"SELECT 1 WHERE {definition[5:].strip()}"))
    except parser.ParseError:
        return False
    where = tree["stmts"][0]["stmt"]["SelectStmt"].get("whereClause", {})
    both = where.get("BoolExpr", {})
    clauses = both.get("args", []) if both.get("boolop") == "AND_EXPR" else [where]
    for clause in clauses:
        test = clause.get("NullTest", {})
        fields = test.get("arg", {}).get("ColumnRef", {}).get("fields", [])
        names = [part["String"]["sval"] for part in fields if "String" in part]
        if test.get("nulltesttype") == "IS_NOT_NULL" and names and names[-1] == column:
            return True
    return False
