"""The review without the database changing: pending revisions rendered as SQL by Alembic's offline mode, judged.

`invoke review` uses it for pull requests, and a production upgrade on MySQL/MariaDB uses it as a
pre-flight, since there DDL commits as it runs and a refusal mid-revision would leave it half-applied.
Rendering calls each revision's upgrade() in offline mode (`context.is_offline_mode()` is true): code
that needs real rows cannot be rendered, and such a revision (with every one after it, whose starting
schema is then unknown) is checked when it is applied instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError, RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from bot.data.urls import where
from bot.errors import CheckFailed, ConfigError
from bot.logs import get_logger
from bot.migrate.graph import alembic_config, current_heads, load_scripts, steps_between
from bot.migrate.review.catalog import Catalog
from bot.migrate.review.checker import COLLECT, REPORTED, Review, Verdict
from bot.migrate.session import read_on_connection
from bot.settings.config import Config

log = get_logger("bot.review")


@dataclass
class RevisionCheck:
    """One pending revision as the offline review saw it."""

    revision: str
    message: str
    rendered: bool = True
    reason: str | None = None  # why it was not rendered: it is checked when applied
    verdicts: list[Verdict] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        """For `invoke review --json`."""
        return {"revision": self.revision, "message": self.message,
                "checked": "offline" if self.rendered else "when applied", "reason": self.reason,
                "findings": [verdict.as_json() for verdict in self.verdicts]}


class _Capture:
    """Alembic's output buffer: each write is one statement (or Alembic's own BEGIN/COMMIT), judged as written."""

    def __init__(self, judge: Callable[[str, bool], None]) -> None:
        self.judge = judge
        self.framing = False
        self.in_transaction = False
        self.broken: BaseException | None = None  # the review's own failure, never mistaken for the revision's

    def write(self, text: str) -> int:
        if self.framing:
            self.in_transaction = text.strip().upper().startswith("BEGIN")
        elif text.strip():
            try:
                self.judge(text, self.in_transaction)
            except BaseException as error:
                self.broken = error
                raise
        return len(text)

    def flush(self) -> None:
        pass

    def framed(self, emit: Callable[[], None]) -> Callable[[], None]:
        """Wrap impl.emit_begin/emit_commit so the transaction framing is told apart from a revision's own SQL."""

        def emit_framing() -> None:
            self.framing = True
            try:
                emit()
            finally:
                self.framing = False

        return emit_framing


def check_offline(alembic_cfg: AlembicConfig, scripts: ScriptDirectory, steps: list[RevisionStep],
                  heads: tuple[str, ...], review: Review) -> list[RevisionCheck]:
    """Render `steps` (an upgrade from `heads`) as SQL and judge it; stops at the first that cannot be rendered."""
    checks: list[RevisionCheck] = []
    current: list[RevisionCheck] = []

    def judge(text: str, in_transaction: bool) -> None:
        if current:
            current[0].statements.append(text.strip())
            current[0].verdicts.extend(review.check(text, in_transaction=in_transaction))

    capture = _Capture(judge)

    def each_step(_heads: Any, context: MigrationContext) -> Iterator[RevisionStep]:
        # Wrapping this one impl's bound methods is the point, so mypy's method-assign check does not apply.
        context.impl.emit_begin = capture.framed(context.impl.emit_begin)  # type: ignore[method-assign]
        context.impl.emit_commit = capture.framed(context.impl.emit_commit)  # type: ignore[method-assign]
        for step in steps:
            script = step.revision
            check = RevisionCheck(script.revision, script.doc or "")
            checks.append(check)
            current[:] = [check]
            review.step_started(script.revision, script.doc or "", script.module)
            yield step
        current.clear()

    target = steps[-1].revision.revision if steps else "head"
    try:
        with EnvironmentContext(alembic_cfg, scripts, fn=each_step, as_sql=True, starting_rev=list(heads) or None,
                                destination_rev=target, output_buffer=capture):
            scripts.run_env()
    except Exception as error:  # noqa: BLE001 - a revision that cannot be rendered is checked when applied instead
        if capture.broken is not None:
            raise
        failed = current[0] if current else None
        text = str(error).strip()
        why = text.splitlines()[0] if text else type(error).__name__
        if failed is not None:
            failed.rendered, failed.reason = False, f"cannot be rendered offline: {why}"
            failed.verdicts, failed.statements = [], []
        rendered = {check.revision for check in checks}
        for step in steps:
            if step.revision.revision not in rendered:
                checks.append(RevisionCheck(step.revision.revision, step.revision.doc or "", False,
                                            f"follows {failed.revision if failed else 'a revision'}, which cannot "
                                            "be rendered offline"))
    return checks


@dataclass(frozen=True)
class ReviewReport:
    """`invoke review`: every pending revision's findings, judged on SQL rendered offline."""

    database: str
    start: tuple[str, ...]
    checks: list[RevisionCheck]

    def unacknowledged(self) -> list[tuple[RevisionCheck, Verdict]]:
        """Danger findings nobody vouched for: what a production upgrade would refuse."""
        return [(check, verdict) for check in self.checks for verdict in check.verdicts
                if verdict.verdict == REPORTED]

    def as_json(self) -> dict[str, object]:
        """`invoke review --json`."""
        return {"database": self.database, "from": list(self.start), "revisions": [c.as_json() for c in self.checks],
                "unacknowledged": len(self.unacknowledged()),
                "checked_when_applied": [check.revision for check in self.checks if not check.rendered]}


def review_pending(config: Config, start: str | None = None) -> ReviewReport:
    """Judge the revisions between the database's revision (or `start`) and head, rendered offline; change nothing."""
    alembic_cfg = alembic_config(config)
    scripts = load_scripts(alembic_cfg)
    dialect = config.database_url.get_backend_name()
    if start is not None:
        heads = _starting_point(scripts, start)
        catalog = Catalog(dialect, offline=True)
        return ReviewReport(where(config.database_url), heads,
                            _check(alembic_cfg, scripts, heads, Review(dialect, catalog, COLLECT)))

    def with_database(connection: Connection) -> ReviewReport:
        heads = current_heads(connection)
        if connection.in_transaction():
            connection.rollback()
        review = Review(dialect, Catalog(dialect, offline=True, connection=connection), COLLECT)
        return ReviewReport(where(config.database_url), heads, _check(alembic_cfg, scripts, heads, review))

    return read_on_connection(config, with_database)


def _check(alembic_cfg: AlembicConfig, scripts: ScriptDirectory, heads: tuple[str, ...],
           review: Review) -> list[RevisionCheck]:
    try:
        steps = steps_between(scripts, "upgrade", "head", heads)
    except (CommandError, ResolutionError, RevisionError) as error:
        raise ConfigError("cannot review from here", str(error).rstrip("."),
                          "check `invoke status` (several heads must be merged first)") from None
    return check_offline(alembic_cfg, scripts, steps, heads, review) if steps else []


def _starting_point(scripts: ScriptDirectory, start: str) -> tuple[str, ...]:
    """--from REV: review what comes after REV (base: the whole history)."""
    if start.strip() in ("", "base"):
        return ()
    try:
        found = scripts.get_revision(start.strip())
    except (CommandError, ResolutionError, RevisionError):
        found = None
    if found is None:
        raise ConfigError(f"--from {start!r} is not a revision", "review starts after a known revision",
                          "pick one from `invoke history`, or pass --from base to review every revision")
    return (found.revision,)


def check_report(report: ReviewReport) -> None:
    """For pull requests: exit 7 when a pending revision holds a finding nobody acknowledged."""
    found = report.unacknowledged()
    waiting = [check.revision for check in report.checks if not check.rendered]
    log.info("revisions reviewed", revisions=len(report.checks), unacknowledged=len(found),
             checked_when_applied=waiting)
    if found:
        check, verdict = found[0]
        raise CheckFailed(f"{len(found)} finding(s) in the pending revisions nobody acknowledged",
                          f"first: {verdict.finding.rule} on {verdict.finding.target} in revision {check.revision}",
                          f"{verdict.finding.fix}; or acknowledge it with reviewed = {{\"{verdict.finding.rule}\": "
                          "\"why it is safe\"} in the revision file (docs/REVIEW.md)")
