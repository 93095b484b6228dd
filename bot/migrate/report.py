"""What a migration command did: the steps that committed, and the report the caller gets back.

Apart from bot.migrate.plan (what a command is about to do) because the at-head fast path returns a report
and nothing else: a no-op `migrate` loads this module only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepResult:
    """A step that finished and committed."""

    revision: str
    direction: str
    message: str
    source: tuple[str, ...]
    destination: tuple[str, ...]
    duration_ms: float



@dataclass(frozen=True)
class MigrationReport:
    """What a command did."""

    direction: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    steps: tuple[StepResult, ...] = field(default_factory=tuple)
    duration_ms: float = 0.0
