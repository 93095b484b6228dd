"""Command-line flags: one short letter per long flag in every task, and the checks their values get.

Invoke derives short flags from each task's own signature, so `-s` meant `--sql` in one task and
`--steps` in another. Here every long flag owns its letter everywhere; a flag that lowers a safeguard
(`--allow-destructive`, `--no-backup`) has no short form, so it is never typed by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from invoke import Task
from invoke import task as invoke_task

from bot.errors import ConfigError

SHORT_FLAGS = {"to": "t", "sql": "s", "steps": "n", "yes": "y", "json": "j", "limit": "l", "check": "c",
               "message": "m", "autogenerate": "a", "x": "x", "from": "f", "revision": "r"}
# What Alembic accepts as a target: ids, `head`/`heads`/`base`, branch@label, relative +N/-N, rev+N, a,b.
_REVISION_TARGET = re.compile(r"^[A-Za-z0-9_.@+,-]{1,255}$")


class ToolkitTask(Task):
    """An Invoke task whose short flags come from SHORT_FLAGS instead of the first free letter."""

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        long = name.strip("_").replace("_", "-")  # as Invoke names it: `from_` is --from
        short = SHORT_FLAGS.get(long)
        opts["names"] = [long, short] if short and short != long else [long]
        return opts


def task(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """invoke.task with the toolkit's short flags."""
    return invoke_task(*args, klass=ToolkitTask, **kwargs)


def whole_number(value: int | str | None, flag: str, *, minimum: int, example: str) -> int | None:
    """A count given on the command line; Invoke hands it over as text, so it is checked here."""
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?\d{1,9}", text):
            raise ConfigError(f"{flag} {text[:40]!r} is not a whole number", f"{flag} counts revisions",
                              f"pass e.g. {flag} {example}")
        number = int(text)
    if number is not None and number < minimum:
        raise ConfigError(f"{flag} {number} is not allowed", f"it must be {minimum} or more",
                          f"pass e.g. {flag} {example}")
    return number


def revision_target(value: str | None, flag: str = "--to") -> str | None:
    """A revision as Alembic names it; anything else is refused before Alembic sees it."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise ConfigError(f"{flag} is empty", "it names the revision to go to",
                          f"pass {flag} REV (see `invoke history`)")
    if not _REVISION_TARGET.match(text):
        raise ConfigError(f"{flag} {text[:40]!r} is not a revision",
                          "a revision is an id from `invoke history`, head, base, or a relative step like -1",
                          f"pass e.g. {flag} head")
    return text
