"""The review's judges: what each statement's action raises, given what the schema holds right now.

`judge` turns one statement's action (bot.migrate.review.statements) into findings of the rules in
bot.migrate.review.rules, asking the `Situation` (the live schema and the run so far) what it needs.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.migrate.review import statements as st
from bot.migrate.review.rules import ADVICE, RULES, Finding
from bot.migrate.review.situation import TABLE_REBUILD_PREFIX, Situation, column_target, finding
from bot.migrate.review.statements import Action, TableName
from bot.migrate.review.type_changes import safe_type_change


def judge(action: Action, situation: Situation) -> list[Finding]:
    """The findings one action raises on this database, in this run."""
    judged = _JUDGES.get(action.kind)
    found = judged(action, situation) if judged is not None else []
    if action.long_names or _too_long(action, situation.dialect):
        names = action.long_names or _too_long(action, situation.dialect)
        found.append(finding("identifier-too-long", ", ".join(names), action))
    if situation.dialect == st.POSTGRESQL:
        found += _advice(action)
    return found


def _drop_table(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or situation.rebuilding(action.table):
        return []
    return [finding("drop-table", str(action.table), action)]


def _rename_table(action: Action, situation: Situation) -> list[Finding]:
    if action.table is not None and action.table.name.startswith(TABLE_REBUILD_PREFIX):
        return []  # batch mode renaming its copy back: judged when the copy was created and filled
    if not situation.existing(action.table):
        return []
    return [finding("rename-table", f"{action.table} to {action.new_table}", action)]


def _add_column(action: Action, situation: Situation) -> list[Finding]:
    spec = action.spec
    if spec is None or not situation.existing(action.table):
        return []
    target = column_target(action)
    found = []
    if spec.identity:
        found.append(finding("add-identity-column", target, action))
    elif spec.generated_stored:
        found.append(finding("add-stored-generated-column", target, action))
    elif spec.not_null and not spec.has_default and not spec.primary_key:
        found.append(finding("add-not-null-column", target, action))
    if spec.has_default and situation.dialect != st.SQLITE:
        volatile = [name for name in spec.default_functions if situation.volatile(name)]
        if volatile:
            found.append(finding("volatile-default", target, action,
                                  why=f"its default calls {', '.join(volatile)}; " + RULES["volatile-default"].why))
    if spec.references is not None and situation.dialect != st.SQLITE:
        found.append(finding("add-foreign-key", f"{target} -> {spec.references}", action))
    if spec.check and situation.dialect != st.SQLITE:
        found.append(finding("add-check-constraint", target, action))
    if (spec.unique or spec.primary_key) and situation.dialect == st.POSTGRESQL:
        found.append(finding("add-unique-constraint" if spec.unique else "change-primary-key", target, action))
    return found


def _drop_column(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [finding("drop-column", column_target(action), action)]


def _rename_column(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [finding("rename-column", f"{column_target(action)} to {action.new_name}", action)]


def _alter_type(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or action.spec is None or action.table is None or not action.column:
        return []
    new = action.spec.type
    old = situation.column(action.table, action.column)
    target = f"{column_target(action)} to {new}"
    if action.using:
        return [finding("change-column-type", target, action,
                         why="USING rewrites every row under an ACCESS EXCLUSIVE lock")]
    if old is None or new is None:
        return [finding("change-column-type", target, action, why="the column's current type could not be read, "
                         "so the change cannot be shown safe; " + RULES["change-column-type"].why)]
    safe = safe_type_change(situation.dialect, old, new, situation.server_version)
    if safe:
        return [finding("change-column-type", f"{column_target(action)} from {old.type} to {new}", action,
                         why=f"known safe: {safe}", level=ADVICE)]
    return [finding("change-column-type", f"{column_target(action)} from {old.type} to {new}", action)]


def _modify_column(action: Action, situation: Situation) -> list[Finding]:
    """MySQL/MariaDB MODIFY/CHANGE: the column is redefined whole; compare it with the live one."""
    if not situation.existing(action.table) or action.spec is None or action.table is None or not action.column:
        return []
    found = []
    if action.new_name:
        found.append(finding("rename-column", f"{column_target(action)} to {action.new_name}", action))
    old = situation.column(action.table, action.column)
    new = action.spec
    if old is None or new.type is None:
        found.append(finding("change-column-type", column_target(action), action,
                              why="the column's current definition could not be read; MODIFY may copy the table"))
        return found
    if old.nullable and new.not_null:
        found.append(finding("set-not-null", column_target(action), action))
    elif not old.nullable and not new.not_null:
        found.append(finding("drop-not-null", column_target(action), action))
    if old.type != new.type:
        target = f"{column_target(action)} from {old.type} to {new.type}"
        safe = safe_type_change(situation.dialect, old, new.type, situation.server_version)
        found.append(finding("change-column-type", target, action, why=f"known safe: {safe}", level=ADVICE)
                     if safe else finding("change-column-type", target, action))
    return found


def _set_not_null(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or action.table is None or not action.column:
        return []
    if situation.dialect == st.POSTGRESQL and situation.server_version >= (12,) and \
            situation.not_null_proven(action.table, action.column):
        return []
    return [finding("set-not-null", column_target(action), action)]


def _drop_not_null(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [finding("drop-not-null", column_target(action), action)]


def _add_constraint(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) or situation.dialect == st.SQLITE:
        return []
    target = f"{action.name or action.constraint} on {action.table}"
    postgres = situation.dialect == st.POSTGRESQL
    if action.constraint == st.FOREIGN_KEY and not (postgres and action.not_valid):
        return [finding("add-foreign-key", target, action)]
    if action.constraint == st.CHECK and not (postgres and action.not_valid):
        return [finding("add-check-constraint", target, action)]
    if action.constraint == st.UNIQUE and postgres and not action.using_index:
        return [finding("add-unique-constraint", target, action)]
    if action.constraint == st.PRIMARY_KEY and not (postgres and action.using_index):
        return [finding("change-primary-key", target, action)]
    if action.constraint == st.EXCLUSION:
        return [finding("add-exclusion-constraint", target, action)]
    return []


def _drop_primary_key(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table):
        return []
    return [finding("change-primary-key", f"primary key of {action.table}", action)]


def _create_index(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL:
        return []
    target = f"{action.name or 'an index'} on {action.table}"
    if action.concurrent:
        return [finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    if not situation.existing(action.table):
        return []
    return [finding("create-index-blocking", target, action)]


def _drop_index(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL or situation.new_index(action.name):
        return []
    target = str(action.name)
    if action.concurrent:
        return [finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    return [finding("drop-index-blocking", target, action)]


def _reindex(action: Action, situation: Situation) -> list[Finding]:
    if situation.dialect != st.POSTGRESQL:
        return []
    target = str(action.table or action.name)
    if action.concurrent:
        return [finding("concurrently-in-transaction", target, action)] if situation.in_transaction() else []
    return [finding("reindex-blocking", target, action)]


def _truncate(action: Action, situation: Situation) -> list[Finding]:
    if not situation.existing(action.table) and not action.cascade:
        return []
    return [finding("truncate", f"{action.table}{' (CASCADE)' if action.cascade else ''}", action)]


def _delete(action: Action, situation: Situation) -> list[Finding]:
    if action.has_where or not situation.existing(action.table):
        return []
    return [finding("delete-without-where", str(action.table), action)]


def _update(action: Action, situation: Situation) -> list[Finding]:
    if action.has_where or not situation.existing(action.table):
        return []
    return [finding("update-without-where", str(action.table), action)]


def _create_table(action: Action, situation: Situation) -> list[Finding]:
    table = action.table
    if table is None or not table.name.startswith(TABLE_REBUILD_PREFIX) or situation.dialect == st.SQLITE:
        return []
    original = TableName(table.schema, table.name.removeprefix(TABLE_REBUILD_PREFIX))
    if not situation.existing(original):
        return []
    return [finding("batch-rebuild", str(original), action)]


def _insert(action: Action, situation: Situation) -> list[Finding]:
    """Batch mode filling its copy of a table: columns left behind are dropped, renamed ones renamed."""
    table = action.table
    if table is None or not table.name.startswith(TABLE_REBUILD_PREFIX) or not action.copies:
        return []
    original = TableName(table.schema, table.name.removeprefix(TABLE_REBUILD_PREFIX))
    live = situation.columns(original) if situation.existing(original) else None
    if not live:
        return []
    fold = str.lower if situation.dialect == st.SQLITE else str
    by_name = {fold(name): (name, facts) for name, facts in live.items()}
    copied = {fold(source) for _target, source in action.copies if source}
    found = [finding("drop-column", f"{original}.{name}", action)
             for key, (name, _facts) in by_name.items() if key not in copied]
    rebuilt = situation.columns(table) or {}
    for target, source in action.copies:
        if source is None or fold(source) not in by_name:
            continue
        name, old = by_name[fold(source)]
        if fold(target) != fold(source):
            found.append(finding("rename-column", f"{original}.{name} to {target}", action))
        new = rebuilt.get(target)
        if new is not None and new.type != old.type:
            safe = safe_type_change(situation.dialect, old, new.type, situation.server_version)
            changed = f"{original}.{name} from {old.type} to {new.type}"
            found.append(finding("change-column-type", changed, action, why=f"known safe: {safe}", level=ADVICE)
                         if safe else finding("change-column-type", changed, action))
    return found


def _drop_schema(action: Action, _situation: Situation) -> list[Finding]:
    return [finding("drop-schema", f"{'database' if action.kind == st.DROP_DATABASE else 'schema'} {action.name}",
                     action)]


def _transaction(action: Action, _situation: Situation) -> list[Finding]:
    return [finding("transaction-control", action.detail or "transaction", action)]


def _domain(action: Action, _situation: Situation) -> list[Finding]:
    if action.kind == st.CREATE_DOMAIN:
        return [finding("domain-check", str(action.name), action)]
    return [] if action.not_valid else [finding("domain-constraint", str(action.name), action)]


def _unreadable(action: Action, _situation: Situation) -> list[Finding]:
    detail = action.detail or "the parser could not read it"
    return [finding("uncheckable-sql", action.statement or "statement", action,
                     why=f"{detail}: " + RULES["uncheckable-sql"].why)]


_JUDGES: dict[str, Callable[[Action, Situation], list[Finding]]] = {
    st.DROP_TABLE: _drop_table, st.RENAME_TABLE: _rename_table, st.ADD_COLUMN: _add_column,
    st.DROP_COLUMN: _drop_column, st.RENAME_COLUMN: _rename_column, st.ALTER_TYPE: _alter_type,
    st.MODIFY_COLUMN: _modify_column, st.SET_NOT_NULL: _set_not_null, st.DROP_NOT_NULL: _drop_not_null,
    st.ADD_CONSTRAINT: _add_constraint, st.DROP_PRIMARY_KEY: _drop_primary_key, st.CREATE_INDEX: _create_index,
    st.DROP_INDEX: _drop_index, st.REINDEX: _reindex, st.TRUNCATE: _truncate, st.DELETE: _delete,
    st.UPDATE: _update, st.CREATE_TABLE: _create_table, st.DROP_SCHEMA: _drop_schema, st.DROP_DATABASE: _drop_schema,
    st.INSERT: _insert, st.TRANSACTION: _transaction, st.DOMAIN_CONSTRAINT: _domain, st.CREATE_DOMAIN: _domain,
    st.OPAQUE: _unreadable, st.UNREADABLE: _unreadable,
}


_NAME_LIMITS = {st.MYSQL: 64}


def _too_long(action: Action, dialect: str) -> tuple[str, ...]:
    """MySQL/MariaDB names over 64 characters (PostgreSQL's are found by the parser, which cuts them)."""
    limit = _NAME_LIMITS.get(dialect)
    if limit is None:
        return ()
    names = [action.table.name if action.table else None, action.column, action.new_name, action.name,
             *(spec.name for spec in action.columns)]
    return tuple(sorted({name for name in names if name and len(name) > limit}))


def _advice(action: Action) -> list[Finding]:
    """PostgreSQL style advice on the types a statement gives its columns (never refused)."""
    specs = list(action.columns)
    if action.kind in (st.ADD_COLUMN, st.ALTER_TYPE) and action.spec is not None:
        specs.append(action.spec)
    found = []
    for spec in specs:
        if spec.type is None:
            continue
        target = f"{action.table}.{spec.name}" if action.table else spec.name
        name = spec.type.name
        if name in ("integer", "smallint") and not spec.identity:
            found.append(finding("prefer-bigint", target, action))
        elif name in st.SERIAL_TYPES:
            found.append(finding("prefer-identity", target, action))
            if name != "bigserial":
                found.append(finding("prefer-bigint", target, action))
        elif name == "varchar" and spec.type.params:
            found.append(finding("prefer-text", target, action))
        elif name == "timestamp":
            found.append(finding("prefer-timestamptz", target, action))
        elif name == "char":
            found.append(finding("char-column", target, action))
        elif name == "json":
            found.append(finding("prefer-jsonb", target, action))
    return found
