"""Plain-text tables for a command's own output on stdout (logs stay on stderr)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.migrate.read.overview import Overview
from bot.migrate.review.checker import ACKNOWLEDGED, ADVISED
from bot.migrate.review.offline import ReviewReport


def format_journal_history(overview: Overview, limit: int | None = None) -> str:
    """The revision graph newest first: status word, when, by whom, from where and how long it was last applied."""
    records = overview.revisions if limit is None else overview.revisions[:limit]
    if not records:
        return "no revisions"
    header = f"{'revision':<12} {'status':<12} {'applied at (UTC)':<20} {'by':<28} {'took':>10}  {'parent':<12} message"
    lines = [header]
    edited = {item.revision for item in overview.edited}
    for record in records:
        info, entry = record.info, record.last_applied
        shown = entry is not None and record.status != "pending"
        when = _when(entry.finished_at or entry.started_at) if shown and entry else "-"
        who = f"{entry.os_user}@{entry.host}" if shown and entry else "-"
        took = _took(entry.duration_ms) if shown and entry else "-"
        marks = [word for word, on in (("current", info.is_current), ("head", info.is_head),
                                       ("in baseline", info.revision in overview.covered)) if on]
        parents = ", ".join(info.down_revisions) or "base"
        word = "edited" if info.revision in edited else record.status
        lines.append(f"{info.revision:<12} {word:<12} {when:<20} {who[:28]:<28} {took:>10}  {parents:<12} "
                     f"{info.message}" + (f"  ({', '.join(marks)})" if marks else ""))
    if overview.baseline is not None:
        lines.append(f"baseline {baseline_line(overview)}")
    return "\n".join(lines)


def baseline_line(overview: Overview) -> str:
    """What the project's baseline stands for, and where retired files are."""
    baseline = overview.baseline
    assert baseline is not None
    where = f"; files retired, in commit {baseline.retired_in}" if baseline.retired_in else ""
    return (f"{baseline.revision}: covers {len(baseline.covered)} revision(s), {baseline.span}; fresh databases take "
            f"it in one step{where}")


def format_journal_status(overview: Overview) -> str:
    """Current revision, head, pending list, half-applied flag and the last journal entry."""
    state = overview.state
    half = ", ".join(f"{entry.revision} ({entry.direction} from {entry.from_revision or 'base'})"
                     for entry in overview.half_applied)
    rows = [("current", ", ".join(state.current) or "base (empty)"), ("head", ", ".join(state.heads) or "none"),
            ("pending", str(len(state.pending))), ("half-applied", half or "no")]
    if state.unknown:
        rows.append(("unknown", ", ".join(state.unknown) + "  (not in the revision scripts)"))
    if overview.baseline is not None:
        rows.append(("baseline", baseline_line(overview)))
    if overview.edited:
        rows.append(("edited", ", ".join(item.revision for item in overview.edited)
                     + "  (file changed since applied: see docs/REVIEW.md)"))
    if overview.in_progress:
        rows.append(("running", ", ".join(f"{entry.revision} (pid {entry.pid} on {entry.host})"
                                          for entry in overview.in_progress)))
    last = overview.last_entry
    if last is not None:
        what = f"{last.direction} {last.revision}" if last.kind == "step" else f"{last.kind} {last.revision or ''}"
        rows.append(("last entry", f"{what.strip()}: {last.status} at {_when(last.finished_at or last.started_at)}"
                                   f" by {last.os_user}@{last.host}"))
    text = "\n".join(f"{name:<8} {value}" for name, value in rows)
    for info in state.pending:
        text += f"\n  {info.revision}  {info.message}"
    return text


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _took(duration_ms: float | None) -> str:
    if duration_ms is None:
        return "-"
    return f"{duration_ms:.1f} ms" if duration_ms < 10_000 else f"{duration_ms / 1000:.1f} s"


def format_review(report: ReviewReport) -> str:
    """Each pending revision, how it was checked, and its findings with their verdicts and fixes."""
    if not report.checks:
        return f"nothing to review: {report.database} is at head ({', '.join(report.start) or 'base'})"
    lines = [f"review of {len(report.checks)} pending revision(s) from {', '.join(report.start) or 'base'} "
             f"({report.database})"]
    for check in report.checks:
        how = "checked offline" if check.rendered else f"checked when applied: {check.reason}"
        lines.append(f"{check.revision}  {check.message}  ({how})")
        for verdict in check.verdicts:
            finding = verdict.finding
            word = {ACKNOWLEDGED: "acknowledged", ADVISED: "advice"}.get(verdict.verdict, "UNACKNOWLEDGED")
            lines.append(f"  {word:<14} {finding.rule} on {finding.target}: {finding.why}")
            if verdict.verdict == ACKNOWLEDGED:
                lines.append(f"  {'':<14} reason: {verdict.reason}")
            elif verdict.verdict != ADVISED:
                lines.append(f"  {'':<14} fix: {finding.fix}")
        if check.rendered and not check.verdicts:
            lines.append("  no findings")
    found = len(report.unacknowledged())
    lines.append(f"{found} unacknowledged finding(s)" if found else "every finding is acknowledged or advice")
    return "\n".join(lines)
