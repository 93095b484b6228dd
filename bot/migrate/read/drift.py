"""Drift check: the live schema against the models, by Alembic's autogenerate comparison (made for CI).

The toolkit's own tables (alembic_version, the journal) are filtered out by the same include_name
hook autogenerate uses, so they are never reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from bot.commands.output import print_result
from bot.data.models import Base
from bot.data.urls import where
from bot.errors import CheckFailed
from bot.logs import get_logger
from bot.migrate.graph import current_heads, include_name
from bot.migrate.session import read_on_connection
from bot.settings.config import Config

log = get_logger("bot.drift")


@dataclass(frozen=True)
class Difference:
    """One place where the database and the models disagree."""

    table: str
    column: str | None
    what: str

    def line(self) -> str:
        """table.column: what differs."""
        return f"{self.table}{'.' + self.column if self.column else ''}: {self.what}"


def find_drift(config: Config) -> tuple[list[Difference], tuple[str, ...]]:
    """Every difference between the models and the live schema, plus the database's current revision."""
    def compare(connection: Connection) -> tuple[list[Difference], tuple[str, ...]]:
        context = MigrationContext.configure(connection, opts={"include_name": include_name, "compare_type": True,
                                                               "target_metadata": Base.metadata})
        return [item for diff in compare_metadata(context, Base.metadata) for item in describe(diff)], \
            current_heads(connection)

    return read_on_connection(config, compare)


def check_drift(config: Config) -> str:
    """The report for `invoke check`: a clean line, or CheckFailed (exit 7) after printing the differences."""
    differences, revision = find_drift(config)
    at = ", ".join(revision) or "base"
    if not differences:
        log.info("no drift", database=where(config.database_url), revision=at)
        return f"no drift: the schema of {where(config.database_url)} (revision {at}) matches the models"
    log.warning("drift detected", database=where(config.database_url), revision=at, differences=len(differences))
    lines = [f"{len(differences)} difference(s) between the models and {where(config.database_url)} "
             f"(revision {at}):", *(f"  {difference.line()}" for difference in differences)]
    print_result("\n".join(lines))
    raise CheckFailed(f"the schema has drifted from the models in {len(differences)} place(s)",
                      "see the list on stdout",
                      "write a revision for the change (`invoke revision -m … --autogenerate`), or run pending ones")


def describe(diff: Any) -> list[Difference]:
    """Alembic's diff tuples (or lists of them, for column changes) as readable differences."""
    if isinstance(diff, list):
        return [item for part in diff for item in describe(part)]
    kind = diff[0]
    if kind == "add_table":
        return [Difference(diff[1].name, None, "in the models, missing from the database")]
    if kind == "remove_table":
        return [Difference(diff[1].name, None, "in the database, not in the models")]
    if kind == "add_column":
        return [Difference(diff[2], diff[3].name, "column in the models, missing from the database")]
    if kind == "remove_column":
        return [Difference(diff[2], diff[3].name, "column in the database, not in the models")]
    if kind == "modify_type":
        return [Difference(diff[2], diff[3], f"type is {diff[5]} in the database, {diff[6]} in the models")]
    if kind == "modify_nullable":
        state = {True: "nullable", False: "NOT NULL"}
        return [Difference(diff[2], diff[3], f"{state[diff[5]]} in the database, {state[diff[6]]} in the models")]
    if kind == "modify_default":
        return [Difference(diff[2], diff[3], "server default differs")]
    if kind in ("modify_comment", "modify_table_comment"):
        return [Difference(diff[2] if kind == "modify_comment" else diff[1].name,
                           diff[3] if kind == "modify_comment" else None, "comment differs")]
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        element = diff[1]
        table = getattr(getattr(element, "table", None), "name", None) or getattr(element, "parent", None)
        side = "in the models, missing from the database" if kind.startswith("add") else \
            "in the database, not in the models"
        noun = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[kind.split("_", 1)[1]]
        return [Difference(str(table), None, f"{noun} {element.name or '(unnamed)'} {side}")]
    return [Difference("?", None, str(diff))]
