"""Plain-text tables for a command's own output on stdout (logs stay on stderr)."""

from __future__ import annotations

from bot.database.migrations import RevisionInfo, Status


def format_status(state: Status) -> str:
    """Current revision, head and pending list as an aligned block."""
    rows = [
        ("current", ", ".join(state.current) or "base (empty)"),
        ("head", ", ".join(state.heads) or "none"),
        ("pending", str(len(state.pending))),
    ]
    if state.unknown:
        rows.append(("unknown", ", ".join(state.unknown) + "  (not in the revision scripts)"))
    text = "\n".join(f"{name:<8} {value}" for name, value in rows)
    for info in state.pending:
        text += f"\n  {info.revision}  {info.message}"
    return text


def format_history(revisions: list[RevisionInfo]) -> str:
    """Every revision, newest first, marking the current and the pending ones."""
    if not revisions:
        return "no revisions"
    lines = []
    for info in revisions:
        marks = []
        if info.is_current:
            marks.append("current")
        if info.is_head:
            marks.append("head")
        state = "applied" if info.applied else "pending"
        parents = ", ".join(info.down_revisions) or "base"
        lines.append(f"{info.revision:<12} {state:<8} {parents:<12} {info.message}"
                     + (f"  ({', '.join(marks)})" if marks else ""))
    return "\n".join([f"{'revision':<12} {'state':<8} {'parent':<12} message", *lines])
