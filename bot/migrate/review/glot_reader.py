"""MySQL/MariaDB and SQLite statements read by sqlglot, a SQL parser that knows both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

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

DIALECTS = {st.MYSQL: "mysql", st.SQLITE: "sqlite"}


def read_statements(sql: str, dialect: str) -> ParsedStatements:
    """sqlglot's tree for MySQL/MariaDB or SQLite, statement by statement."""
    result = ParsedStatements()
    read = DIALECTS[dialect]
    try:
        trees = sqlglot.parse(sql, read=read)
    except (ParseError, TokenError) as error:
        result.statements.append((sql, [Action(st.UNREADABLE, detail=str(error).splitlines()[0],
                                               statement=excerpt(sql))]))
        return result
    for tree in trees:
        if tree is None:
            continue
        text = tree.sql(dialect=read)
        actions = [replace(action, statement=excerpt(text)) for action in _statement(tree, dialect)]
        result.statements.append((text, actions))
    return result


def _statement(tree: exp.Expr, dialect: str) -> list[Action]:
    nested = [_dml(node, dialect) for node in tree.find_all(exp.Delete, exp.Update)]
    if isinstance(tree, (exp.Delete, exp.Update)):
        return nested  # find_all yields the statement itself first
    return _top(tree, dialect) + nested


def _top(tree: exp.Expr, dialect: str) -> list[Action]:
    if isinstance(tree, exp.Create):
        kind = str(tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            target = tree.this
            table = target.this if isinstance(target, exp.Schema) else target
            columns = tuple(_column(item) for item in (target.expressions if isinstance(target, exp.Schema)
                                                            else []) if isinstance(item, exp.ColumnDef))
            return [Action(st.CREATE_TABLE, _table(table, dialect), columns=columns)]
        if kind == "INDEX":
            index = tree.this
            return [Action(st.CREATE_INDEX, _table(index.args.get("table"), dialect), name=_name(index.this),
                           unique=bool(tree.args.get("unique")))]
        return [Action(st.OTHER, detail=f"create {kind.lower()}")]
    if isinstance(tree, exp.Drop):
        kind = str(tree.args.get("kind") or "").upper()
        tables = tree.args.get("tables") or ([tree.this] if tree.this is not None else [])
        cascade = bool(tree.args.get("cascade"))
        if kind == "TABLE":
            return [Action(st.DROP_TABLE, _table(table, dialect), cascade=cascade) for table in tables]
        if kind == "INDEX":
            on = tree.args.get("cluster")
            return [Action(st.DROP_INDEX, _table(on.this, dialect) if on is not None else None,
                           name=_name(tables[0]) if tables else None)]
        if kind in ("DATABASE", "SCHEMA"):
            return [Action(st.DROP_DATABASE if kind == "DATABASE" else st.DROP_SCHEMA,
                           name=_name(tables[0]) if tables else None)]
        return [Action(st.OTHER, detail=f"drop {kind.lower()}")]
    if isinstance(tree, exp.Alter) and str(tree.args.get("kind") or "").upper() == "TABLE":
        table = _table(tree.this, dialect)
        return [_alter(table, action, dialect) for action in tree.args.get("actions") or []]
    if isinstance(tree, exp.TruncateTable):
        return [Action(st.TRUNCATE, _table(table, dialect)) for table in tree.expressions]
    if isinstance(tree, (exp.Transaction, exp.Commit, exp.Rollback)):
        return [Action(st.TRANSACTION, detail=type(tree).__name__.upper())]
    if isinstance(tree, exp.Insert):
        return [_insert(tree, dialect)]
    if isinstance(tree, exp.Command):
        return [_command(tree, dialect)]
    return [Action(st.OTHER, detail=type(tree).__name__)]


def _alter(table: TableName, action: exp.Expression, dialect: str) -> Action:
    """One action of an ALTER TABLE."""
    if isinstance(action, exp.ColumnDef):
        spec = _column(action)
        return Action(st.ADD_COLUMN, table, column=spec.name, spec=spec)
    if isinstance(action, exp.Drop):
        kind = str(action.args.get("kind") or "").upper()
        names = action.args.get("tables") or ([action.this] if action.this is not None else [])
        name = _name(names[0]) if names else None
        if kind == "COLUMN" or (not kind and name):
            return Action(st.DROP_COLUMN, table, column=name)
        if kind == "INDEX":
            return Action(st.DROP_INDEX, table, name=name)
        return Action(st.OTHER, table, detail=f"drop {kind.lower()}")
    if isinstance(action, exp.DropPrimaryKey):
        return Action(st.DROP_PRIMARY_KEY, table)
    if isinstance(action, exp.ModifyColumn):
        spec = _column(action.this)
        renamed = action.args.get("rename_from")
        old = _name(renamed) if renamed is not None else spec.name
        return Action(st.MODIFY_COLUMN, table, column=old, spec=spec,
                      new_name=spec.name if renamed is not None and spec.name != old else None)
    if isinstance(action, exp.RenameColumn):
        return Action(st.RENAME_COLUMN, table, column=_name(action.this), new_name=_name(action.args.get("to")))
    if isinstance(action, exp.AlterRename):
        return Action(st.RENAME_TABLE, table, new_table=_table(action.this, dialect))
    if isinstance(action, exp.AddConstraint):
        return _constraint(table, action)
    if isinstance(action, exp.AlterColumn):
        column = _name(action.this)
        if action.args.get("dtype") is not None:
            return Action(st.ALTER_TYPE, table, column=column,
                          spec=ColumnSpec(column or "", _type(action.args["dtype"])),
                          using=action.args.get("using") is not None)
        if action.args.get("allow_null") is False:
            return Action(st.SET_NOT_NULL, table, column=column)
        if action.args.get("allow_null") is True or action.args.get("drop") and action.args.get("allow_null"):
            return Action(st.DROP_NOT_NULL, table, column=column)
        if action.args.get("default") is not None:
            return Action(st.SET_DEFAULT, table, column=column)
        return Action(st.OTHER, table, detail="alter column")
    return Action(st.OTHER, table, detail=type(action).__name__)


def _constraint(table: TableName, action: exp.AddConstraint) -> Action:
    inner = next(iter(action.expressions), None)
    name = _name(action.this) if action.this is not None else None
    if isinstance(inner, exp.Constraint):  # ADD CONSTRAINT name ...: the name wraps the constraint itself
        name, inner = _name(inner.this), next(iter(inner.expressions), None)
    if isinstance(inner, exp.ForeignKey):
        reference = inner.args.get("reference")
        target = reference.this.this if reference is not None and isinstance(reference.this, exp.Schema) else None
        return Action(st.ADD_CONSTRAINT, table, constraint=st.FOREIGN_KEY, name=name,
                      references=_table(target, st.MYSQL) if target is not None else None)
    if isinstance(inner, exp.CheckColumnConstraint) or isinstance(inner, exp.Check):
        return Action(st.ADD_CONSTRAINT, table, constraint=st.CHECK, name=name)
    if isinstance(inner, exp.PrimaryKey):
        return Action(st.ADD_CONSTRAINT, table, constraint=st.PRIMARY_KEY, name=name)
    if isinstance(inner, exp.UniqueColumnConstraint):
        return Action(st.ADD_CONSTRAINT, table, constraint=st.UNIQUE, name=name)
    if isinstance(inner, exp.IndexColumnConstraint):
        kind = str(inner.args.get("kind") or "").upper()
        return Action(st.CREATE_INDEX, table, name=_name(inner.this) if inner.this is not None else name,
                      unique=kind == "UNIQUE")
    return Action(st.OTHER, table, detail=f"add {type(inner).__name__}")


def _column(column: exp.Expression) -> ColumnSpec:
    """A ColumnDef: type, NOT NULL, default, AUTO_INCREMENT, generated, inline keys."""
    if not isinstance(column, exp.ColumnDef):
        return ColumnSpec(_name(column) or "")
    values: dict[str, Any] = {}
    for constraint in column.args.get("constraints") or []:
        kind = constraint.args.get("kind") if isinstance(constraint, exp.ColumnConstraint) else constraint
        if isinstance(kind, exp.NotNullColumnConstraint):
            values["not_null"] = not kind.args.get("allow_null")
        elif isinstance(kind, exp.DefaultColumnConstraint):
            values["has_default"] = True
            values["default_functions"] = tuple(_functions(kind.this))
        elif isinstance(kind, (exp.AutoIncrementColumnConstraint, exp.GeneratedAsIdentityColumnConstraint)):
            values["identity"] = True
        elif isinstance(kind, exp.ComputedColumnConstraint):
            values["generated_stored"] = bool(kind.args.get("persisted"))
        elif isinstance(kind, exp.PrimaryKeyColumnConstraint):
            values["primary_key"] = values["not_null"] = True
        elif isinstance(kind, exp.UniqueColumnConstraint):
            values["unique"] = True
        elif isinstance(kind, exp.Reference):
            target = kind.this.this if isinstance(kind.this, exp.Schema) else kind.this
            values["references"] = _table(target, st.MYSQL) if target is not None else None
        elif isinstance(kind, exp.CheckColumnConstraint):
            values["check"] = True
    return ColumnSpec(_name(column.this) or "", _type(column.args.get("kind")), **values)


def _type(kind: exp.Expression | None) -> ColumnType | None:
    if not isinstance(kind, exp.DataType):
        return None
    word = kind.this.value.lower() if hasattr(kind.this, "value") else str(kind.this).lower()
    params = []
    for item in kind.expressions:
        value = item.this if isinstance(item, exp.DataTypeParam) else item
        if isinstance(value, exp.Literal) and not value.is_string:
            params.append(int(value.this))
    return column_type(word, tuple(params), word == "array")


def _functions(node: exp.Expression | None) -> Iterator[str]:
    if node is None:
        return
    for call in node.find_all(exp.Func):
        if isinstance(call, exp.Anonymous):
            yield str(call.this).lower()
        elif not isinstance(call, (exp.Cast, exp.Literal)):
            yield call.sql_name().lower()


def _dml(node: exp.Expression, dialect: str) -> Action:
    table = node.this
    return Action(st.DELETE if isinstance(node, exp.Delete) else st.UPDATE,
                  _table(table, dialect) if isinstance(table, exp.Table) else None,
                  has_where=node.args.get("where") is not None)


def _insert(tree: exp.Insert, dialect: str) -> Action:
    """INSERT, and for INSERT ... SELECT which target column comes from which source column."""
    target = tree.this
    table_node = target.this if isinstance(target, exp.Schema) else target
    table = _table(table_node, dialect)
    select = tree.expression
    if not isinstance(target, exp.Schema) or not isinstance(select, exp.Select):
        return Action(st.INSERT, table)
    sources = select.args.get("from") or select.args.get("from_")
    source_table = sources.this if sources is not None else None
    copies = []
    for target_column, expression in zip(target.expressions, select.expressions, strict=False):
        inner = expression.this if isinstance(expression, exp.Alias) else expression
        inner = inner.this if isinstance(inner, exp.Cast) else inner
        copies.append((_name(target_column) or "", inner.name if isinstance(inner, exp.Column) else None))
    return Action(st.INSERT, table, copies=tuple(copies),
                  source=_table(source_table, dialect) if isinstance(source_table, exp.Table) else None)


def _command(tree: exp.Command, dialect: str) -> Action:
    """Statements sqlglot keeps as raw text; MySQL's RENAME TABLE a TO b is read from its tokens."""
    word = str(tree.this).upper()
    rest = tree.expression.this if isinstance(tree.expression, exp.Literal) else str(tree.expression or "")
    if word == "RENAME" and dialect == st.MYSQL:
        tokens = [token.text for token in sqlglot.tokenize(str(rest), read="mysql")]
        if len(tokens) >= 4 and tokens[0].upper() == "TABLE" and tokens[2].upper() == "TO":
            return Action(st.RENAME_TABLE, TableName(None, tokens[1].strip("`")),
                          new_table=TableName(None, tokens[3].strip("`")))
    if word in ("SET", "SHOW", "USE", "ANALYZE", "OPTIMIZE", "FLUSH", "PRAGMA", "LOCK TABLES", "UNLOCK"):
        return Action(st.OTHER, detail=word.lower())
    return Action(st.UNREADABLE, detail=f"{word} {str(rest)[:40]}".strip())


def _table(node: exp.Expression | None, dialect: str) -> TableName:
    if not isinstance(node, exp.Table):
        return TableName(None, _name(node) or "")
    schema = node.args.get("db")
    name = _name(node.this) or ""
    schema_name = _name(schema) if schema is not None else None
    if dialect == st.SQLITE:  # SQLite compares table names without case
        return TableName(schema_name.lower() if schema_name else None, name.lower())
    return TableName(schema_name, name)


def _name(node: Any) -> str | None:
    if node is None:
        return None
    if isinstance(node, exp.Identifier):
        return str(node.this)
    if isinstance(node, exp.Expression):
        return node.name or None
    return str(node)


def read_type(text: str, dialect: str) -> ColumnType | None:
    """A type as sqlglot reads it in this dialect."""
    try:
        return _type(exp.DataType.build(text, dialect=DIALECTS[dialect]))
    except (ParseError, TokenError, ValueError):
        return None
