"""docs/LOGGING.md stays true: every event the code emits has a row, and every row is still emitted."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.environment import ROOT

LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}
LOGGER_NAMES = re.compile(r"^_?(log|logger|[a-z_]*_log)$")
SOURCES = ("bot", "alembic")


def _literal_events(node: ast.expr) -> list[str] | None:
    """The event names an argument can take: a string, or either branch of `a if cond else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_events(node.body), _literal_events(node.orelse)
        if body is not None and orelse is not None:
            return body + orelse
    return None


def _is_log_call(call: ast.Call) -> bool:
    """log.info(…), self.log.warning(…), or emit(…) where emit is a bound log method."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in LEVELS:
        owner = func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        return bool(LOGGER_NAMES.match(name))
    return isinstance(func, ast.Name) and func.id == "emit"


def code_events() -> tuple[dict[str, str], list[str]]:
    """Every event name in the code (name -> where), and every log call whose name is not a fixed string."""
    events: dict[str, str] = {}
    dynamic: list[str] = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            where = str(path.relative_to(ROOT))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:  # database_lock(…, waiting_event="…")
                    if keyword.arg and keyword.arg.endswith("_event"):
                        for name in _literal_events(keyword.value) or []:
                            events.setdefault(name, f"{where}:{node.lineno}")
                if not _is_log_call(node) or not node.args:
                    continue
                names = _literal_events(node.args[0])
                if names is None:
                    first = node.args[0]
                    if not (isinstance(first, ast.Name) and first.id.endswith("event")):
                        dynamic.append(f"{where}:{node.lineno}")
                    continue
                for name in names:
                    events.setdefault(name, f"{where}:{node.lineno}")
    return events, dynamic


def documented_events() -> dict[str, str]:
    """Event name -> level, from the rows of the table in docs/LOGGING.md."""
    rows: dict[str, str] = {}
    text = (ROOT / "docs" / "LOGGING.md").read_text(encoding="utf-8")
    for line in text.partition("\n## Events")[2].splitlines():
        match = re.match(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+)\|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def test_every_emitted_event_is_documented() -> None:
    """Each fixed event name in bot/ and alembic/ has a row in docs/LOGGING.md."""
    events, _ = code_events()
    assert len(events) > 20, "the walker found too few events: it is probably broken"
    missing = {name: where for name, where in events.items() if name not in documented_events()}
    assert not missing, f"add these events to docs/LOGGING.md (event, level, logger, fields, when): {missing}"


def test_every_documented_event_is_still_emitted() -> None:
    """No row in docs/LOGGING.md describes an event the code no longer emits."""
    events, _ = code_events()
    stale = sorted(set(documented_events()) - set(events))
    assert not stale, f"docs/LOGGING.md documents events nothing emits any more: {stale}"


def test_event_names_are_fixed_strings() -> None:
    """Log calls name their event with a literal, never an f-string or a computed value."""
    _, dynamic = code_events()
    assert not dynamic, f"event names must be fixed strings (put values in fields): {dynamic}"


def test_documented_levels_are_real_levels() -> None:
    """Each row's level column names real levels, so alert rules written from it work."""
    assert len(documented_events()) > 20, "the events table of docs/LOGGING.md was not found"
    for name, level in documented_events().items():
        words = set(re.findall(r"[a-z]+", level))
        assert words & LEVELS, f"{name}: level column {level!r} names no log level"


def test_walker_sees_both_branches_and_keyword_events(tmp_path: Path) -> None:
    """The walker itself: ternary event names and waiting_event= keywords count, f-strings are flagged."""
    events, _ = code_events()
    assert {"migration applied", "migration reverted", "waiting for migration lock"} <= set(events)
    tree = ast.parse('log.info(f"user {x}")')
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call))
    assert _is_log_call(call) and _literal_events(call.args[0]) is None
