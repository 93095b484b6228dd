"""Ask the operator, on a terminal, to type the database name before a destructive change."""

from __future__ import annotations

import sys

from bot.errors import Refused
from bot.migrate.plan import Confirm, Plan


def describe_plan(plan: Plan) -> str:
    """What will happen, in the words an operator checks before saying yes."""
    lines = [f"About to {plan.direction} {plan.location} (database {plan.database})",
             f"  current revision: {', '.join(plan.current) or 'base'}"]
    if plan.direction == "restore":
        lines += [f"  backup:           {plan.source}",
                  f"  revision after:   {plan.target}",
                  "  every table and row of the bot is replaced by the backup's; the journal keeps its rows"]
        return "\n".join(lines)
    if plan.direction == "accept-edit":
        lines += [f"  revision:         {plan.target}",
                  "  its file changed after it was applied; the journal will take the file as it is now as what "
                  "ran (nothing runs)"]
        return "\n".join(lines)
    lines.append(f"  target:           {plan.target}")
    if plan.direction == "stamp":
        lines.append("  only alembic_version changes: no revision runs, the schema is left as it is")
        return "\n".join(lines)
    lines.append("  revisions that will be undone (newest first):" if plan.direction == "downgrade"
                 else "  revisions to apply:")
    lines += [f"    {step.revision}  {step.message}" for step in plan.steps]
    if plan.direction == "downgrade" and not plan.steps:
        lines.append("    (none)")
    return "\n".join(lines)


def confirmation(yes: bool, *, required: bool = True) -> Confirm | None:
    """None when no confirmation is needed; otherwise a prompt that refuses without a terminal."""
    if yes or not required:
        return None

    def ask(plan: Plan) -> bool:
        if not sys.stdin.isatty():
            raise Refused(f"{plan.direction} of {plan.location} needs confirmation",
                          "there is no terminal to ask on", "pass --yes to confirm non-interactively")
        print(describe_plan(plan), file=sys.stderr)
        print(f"Type the database name ({plan.database}) to confirm: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        return answer.strip() == plan.database

    return ask
