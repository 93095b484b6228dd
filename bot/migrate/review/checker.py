"""The migration review: every statement a revision sends is judged by the rules before it runs.

A `Review` listens on the migration's own connection (`before_cursor_execute`), so whatever reaches the
database is checked, however it was issued: `op.*`, `op.execute`, `op.get_bind().execute`, an ORM
session on the bind, `op.run_async`, several statements in one string. Revision code runs once, for
real. A finding nobody acknowledged raises before its statement runs, so the step's transaction rolls
back; in production that is a refusal (exit 6), in development a warning. A revision acknowledges a
finding by rule id, or the whole revision at once:

    reviewed = {"drop-column": "users.language_code unused since 1.4"}
    reviewed_destructive = "why the whole revision is safe"

The same judging serves the offline review (bot.migrate.review.offline) over SQL rendered by `--sql`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import UpdateBase

from bot.data.engine import INTERNAL
from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate.review import judges, parsers, rules
from bot.migrate.review import statements as st
from bot.migrate.review.catalog import Catalog
from bot.migrate.review.rules import ADVICE, Finding
from bot.migrate.review.situation import TABLE_REBUILD_PREFIX, ColumnFacts
from bot.migrate.review.statements import Action, ParsedStatements, TableName

log = get_logger("bot.review")

ACKNOWLEDGED_RULES = "reviewed"  # module-level dict in a revision: rule id -> why it is safe here
WHOLE_REVISION = "reviewed_destructive"  # module-level str: the whole revision is vouched for

REFUSED = "refused"
ACKNOWLEDGED = "acknowledged"
ALLOWED = "allowed by operator"
REPORTED = "reported"
ADVISED = "advice"

# What a Review does with a finding nobody acknowledged.
ENFORCE = "enforce"  # production: refuse before the statement runs
ALLOW = "allow"  # production with --allow-destructive: let it through, loudly
REPORT = "report"  # development: a warning
COLLECT = "collect"  # offline: only gather verdicts for a report

_PYFORMAT = re.compile(r"%\((\w+)\)s|%s|%%")  # the DBAPI's placeholder grammar (pyformat/format), not SQL


@dataclass(frozen=True)
class Verdict:
    """What became of one finding: refused, acknowledged (and why), allowed by the operator, or only reported."""

    finding: Finding
    verdict: str
    reason: str | None = None

    def as_json(self) -> dict[str, object]:
        """The verdict as the journal and `invoke review --json` keep it."""
        return {"rule": self.finding.rule, "level": self.finding.level, "target": self.finding.target,
                "verdict": self.verdict, "reason": self.reason, "why": self.finding.why,
                "statement": self.finding.statement}


class ReviewRefused(Refused):
    """A statement broke a rule nobody acknowledged; raised before the statement ran."""

    def __init__(self, finding: Finding, revision: str, message: str) -> None:
        self.finding = finding
        self.revision = revision
        self.message = message
        super().__init__(f"revision {revision} ({message}) was refused by the review: {finding.rule} on "
                         f"{finding.target}", finding.why, acknowledgement_fix(finding),
                         revision=revision, rule=finding.rule)


def acknowledgement_fix(finding: Finding) -> str:
    """The safe recipe, then how to vouch for the statement once someone has reviewed it."""
    return (f"{finding.fix}; once reviewed, acknowledge it in the revision file with reviewed = "
            f"{{\"{finding.rule}\": \"why it is safe\"}} (docs/REVIEW.md), or pass --allow-destructive for this deploy")


@dataclass
class Acknowledgements:
    """What one revision vouches for: rules by id, or everything."""

    rules: dict[str, str] = field(default_factory=dict)
    whole: str | None = None
    unknown: tuple[str, ...] = ()

    @classmethod
    def of(cls, module: ModuleType | None) -> Acknowledgements:
        """Read `reviewed` and `reviewed_destructive` from a revision module; blank reasons vouch for nothing."""
        marker = getattr(module, WHOLE_REVISION, None)
        whole = marker.strip() if isinstance(marker, str) and marker.strip() else None
        given = getattr(module, ACKNOWLEDGED_RULES, None)
        reasons = {str(key): str(value).strip() for key, value in given.items()} if isinstance(given, Mapping) else {}
        known = {key: value for key, value in reasons.items() if key in rules.RULES and value}
        return cls(known, whole, tuple(sorted(key for key in reasons if key not in rules.RULES)))

    def reason(self, rule_id: str) -> str | None:
        """Why this rule's findings are fine in this revision, if the revision says so."""
        return self.rules.get(rule_id) or self.whole


class Review:
    """The checks of one command: judges statements in order, remembering what the run created."""

    def __init__(self, dialect_name: str, catalog: Catalog, mode: str, *, exempt_new_tables: bool = True) -> None:
        self.dialect = st.family(dialect_name)
        self.catalog = catalog
        self.mode = mode
        self.exempt_new_tables = exempt_new_tables  # off only to compare the rules with a linter that has no such idea
        self.created: set[tuple[str, str]] = set()
        self.created_indexes: set[str] = set()
        self.rebuilt: set[tuple[str, str]] = set()  # tables batch mode copied and filled, not yet renamed back
        self.verdicts: list[Verdict] = []
        self.step_verdicts: list[Verdict] = []
        self.refusal: ReviewRefused | None = None
        self.revision: str | None = None
        self.message = ""
        self.acknowledged = Acknowledgements()
        self._in_transaction = True
        self._reads_only = False
        self._parsed: dict[str, ParsedStatements] = {}
        self._connection: Connection | None = None
        self._version_table: tuple[str | None, str] | None = None
        self._paused = 0

    # -- the run's steps ------------------------------------------------------------------------------------

    def step_started(self, revision: str, message: str, module: ModuleType | None) -> None:
        """A revision is about to run: its acknowledgements apply from here."""
        self.revision, self.message = revision, message
        self.acknowledged = Acknowledgements.of(module)
        self.step_verdicts = []
        self.refusal = None
        if self.acknowledged.unknown and self.mode != COLLECT:
            log.warning("unknown rule acknowledged", revision=revision, rules=list(self.acknowledged.unknown),
                        known="docs/REVIEW.md")

    def step_details(self) -> dict[str, object] | None:
        """The step's findings for its journal row (advice left out), or None when there were none."""
        kept = [verdict.as_json() for verdict in self.step_verdicts if verdict.verdict != ADVISED]
        return {"review": kept} if kept else None

    def read_only(self) -> bool:
        """The statement just judged only reads (SELECT, SHOW, SET of a session variable): it changed nothing."""
        return self._reads_only

    def version_applied(self, **_kwargs: Any) -> None:
        """Alembic's on_version_apply, before the step commits: a refusal the revision swallowed still stops it."""
        if self.refusal is not None:
            raise self.refusal

    # -- the connection -----------------------------------------------------------------------------------

    def attach(self, connection: Connection, version_table: tuple[str | None, str]) -> None:
        """Judge every statement this connection sends from now on, except Alembic's rows in `version_table`."""
        self._connection = connection
        self._version_table = version_table
        self.catalog.bind(connection, self.paused)
        event.listen(connection, "before_cursor_execute", self._before_cursor_execute)

    def detach(self) -> None:
        """Stop judging."""
        if self._connection is not None and event.contains(self._connection, "before_cursor_execute",
                                                            self._before_cursor_execute):
            event.remove(self._connection, "before_cursor_execute", self._before_cursor_execute)
        self._connection = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Statements the review sends itself (catalog reads) are not judged."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _before_cursor_execute(self, connection: Connection, _cursor: Any, statement: str, parameters: Any,
                               context: Any, _executemany: bool) -> None:
        if self._paused or self.revision is None:
            return
        if context is not None and any(context.execution_options.get(key) for key in INTERNAL):
            return
        if self._moves_version(context):
            self._reads_only = False
            return
        options = connection.get_execution_options()
        in_transaction = options.get("isolation_level") != "AUTOCOMMIT" and connection.in_transaction()
        self.check(sql_for_parser(statement, parameters, connection.dialect.paramstyle, self.dialect),
                   in_transaction=in_transaction)

    def _moves_version(self, context: Any) -> bool:
        """Alembic's own INSERT/UPDATE/DELETE of its version table's row: nothing a rule judges, so not parsed."""
        statement = getattr(getattr(context, "compiled", None), "statement", None)
        if self._version_table is None or not isinstance(statement, UpdateBase):
            return False
        table = getattr(statement, "table", None)
        return (getattr(table, "schema", None), getattr(table, "name", None)) == self._version_table

    # -- judging ------------------------------------------------------------------------------------------

    def check(self, sql: str, *, in_transaction: bool) -> list[Verdict]:
        """Judge the statements of one SQL text in order; raise ReviewRefused before a refused one runs."""
        self._in_transaction = in_transaction
        parsed = self._parsed.get(sql)
        if parsed is None:
            parsed = parsers.read_sql(sql, self.dialect)
            if len(self._parsed) < 4096:
                self._parsed[sql] = parsed
        self._reads_only = all(action.kind == st.OTHER and action.detail in st.READ_STATEMENTS
                               for action in parsed.actions())
        found = []
        for action in parsed.actions():
            for finding in judges.judge(action, self):
                found.append(self._decide(finding))
            self._remember(action)
        return found

    def _decide(self, finding: Finding) -> Verdict:
        finding = Finding(finding.rule, finding.level, finding.target, finding.why, finding.fix, finding.statement,
                          self.revision)
        fields = {"revision": self.revision, "rule": finding.rule, "target": finding.target}
        reason = self.acknowledged.reason(finding.rule)
        quiet = self.mode == COLLECT
        if finding.level == ADVICE:
            verdict = Verdict(finding, ADVISED)
            if not quiet:
                log.debug("migration advice", **fields, why=finding.why)
        elif reason:
            verdict = Verdict(finding, ACKNOWLEDGED, reason)
            if not quiet:
                log.info("migration finding acknowledged", **fields, reason=reason)
        elif self.mode == COLLECT:
            verdict = Verdict(finding, REPORTED)
        elif self.mode == REPORT:
            verdict = Verdict(finding, REPORTED)
            log.warning("migration finding", **fields, why=finding.why, fix=finding.fix, statement=finding.statement)
        elif self.mode == ALLOW:
            verdict = Verdict(finding, ALLOWED)
            log.warning("destructive migration allowed", **fields, statement=finding.statement,
                        reason="--allow-destructive or ALLOW_DESTRUCTIVE_MIGRATIONS=true")
        else:
            verdict = Verdict(finding, REFUSED)
        self.verdicts.append(verdict)
        self.step_verdicts.append(verdict)
        if verdict.verdict == REFUSED:
            log.error("destructive migration refused", **fields, statement=finding.statement, why=finding.why,
                      fix=finding.fix)
            self.refusal = ReviewRefused(finding, self.revision or "?", self.message)
            raise self.refusal
        return verdict

    def _remember(self, action: Action) -> None:
        """What the statement changes for the statements after it: tables and indexes this run created."""
        if action.kind == st.CREATE_TABLE and action.table is not None:
            self.created.add(self._key(action.table))
        elif action.kind == st.RENAME_TABLE and action.table is not None and action.new_table is not None:
            if action.table.name.startswith(TABLE_REBUILD_PREFIX):  # the rebuilt copy takes the name back
                self.created.discard(self._key(action.table))
                self.rebuilt.discard(self._key(action.new_table))
            elif self._key(action.table) in self.created:
                self.created.discard(self._key(action.table))
                self.created.add(self._key(action.new_table))
        elif action.kind == st.DROP_TABLE and action.table is not None:
            self.created.discard(self._key(action.table))
        elif action.kind == st.CREATE_INDEX and action.name:
            self.created_indexes.add(action.name)
        elif action.kind == st.INSERT and action.table is not None and \
                action.table.name.startswith(TABLE_REBUILD_PREFIX):
            self.rebuilt.add(self._key(TableName(action.table.schema,
                                                 action.table.name.removeprefix(TABLE_REBUILD_PREFIX))))
        self.catalog.apply(action)

    def _key(self, table: TableName) -> tuple[str, str]:
        return (table.schema or self.catalog.default_schema, table.name)

    # -- situation.Situation ----------------------------------------------------------------------------------

    @property
    def server_version(self) -> tuple[int, ...]:
        """The server's version, as the connection reported it."""
        return self.catalog.server_version

    def existing(self, table: TableName | None) -> bool:
        """The table was not created by this run (a batch copy's original is judged by its own name)."""
        return table is not None and (not self.exempt_new_tables or self._key(table) not in self.created)

    def new_index(self, name: str | None) -> bool:
        """The index was created earlier in this run."""
        return self.exempt_new_tables and bool(name) and str(name).split(".")[-1] in self.created_indexes

    def rebuilding(self, table: TableName | None) -> bool:
        """Batch mode copied and filled this table; dropping the original is part of the rebuild."""
        return table is not None and self._key(table) in self.rebuilt

    def in_transaction(self) -> bool:
        """The current statement runs inside a transaction block."""
        return self._in_transaction

    def column(self, table: TableName, column: str) -> ColumnFacts | None:
        """The column as the schema has it right now."""
        return self.catalog.column(table, column)

    def columns(self, table: TableName) -> dict[str, ColumnFacts] | None:
        """Every column of a table as the schema has it right now."""
        return self.catalog.columns(table)

    def not_null_proven(self, table: TableName, column: str) -> bool:
        """A validated CHECK (column IS NOT NULL) exists (PostgreSQL)."""
        return self.catalog.not_null_proven(table, column)

    def volatile(self, function: str) -> bool:
        """The function is volatile on this database."""
        return self.catalog.volatile(function)

    # -- results --------------------------------------------------------------------------------------------

    def unacknowledged(self) -> list[Verdict]:
        """Danger findings nobody vouched for (what production would refuse)."""
        return [verdict for verdict in self.verdicts if verdict.verdict in (REFUSED, REPORTED, ALLOWED)]


def sql_for_parser(statement: str, parameters: Any, paramstyle: str, dialect: str) -> str:
    """The statement with the driver's placeholders swapped for ones the dialect's parser reads."""
    if paramstyle not in ("pyformat", "format") or not parameters:
        return statement
    counter = 0

    def placeholder(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) == "%%":
            return "%"
        counter += 1
        return f"${counter}" if dialect == st.POSTGRESQL else "?"

    return _PYFORMAT.sub(placeholder, statement)
