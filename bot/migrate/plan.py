"""What a migration command is about to do and did: plain data every other migrate module shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the Guard signature: this module loads on the at-head fast path
    from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class RevisionInfo:
    """One revision script and where the database stands relative to it."""

    revision: str
    message: str
    down_revisions: tuple[str, ...]
    is_head: bool
    is_current: bool
    applied: bool


@dataclass(frozen=True)
class Status:
    """The database's revisions against the scripts' heads."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[RevisionInfo, ...]
    unknown: tuple[str, ...] = ()

    @property
    def at_head(self) -> bool:
        """Exactly at every head, nothing pending, nothing unknown."""
        return not self.pending and not self.unknown and set(self.current) == set(self.heads)


@dataclass(frozen=True)
class PlannedStep:
    """One revision to apply or undo, as an operator would read it."""

    revision: str
    message: str
    source: tuple[str, ...]
    destination: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What a command is about to do, shown to the operator before a destructive change."""

    direction: str
    database: str
    location: str
    current: tuple[str, ...]
    target: str
    steps: tuple[PlannedStep, ...]
    source: str | None = None  # restore: the backup file the data comes from


Confirm = Callable[[Plan], bool]
# A rail run under the lock after planning and before any step (a backup); it refuses by raising.
Guard = Callable[["Connection", Plan], None]
