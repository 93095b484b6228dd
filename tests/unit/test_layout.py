"""Rooms of a readable size: no module of bot/ over 400 lines, no folder of bot/ holding more than 12 modules."""

from __future__ import annotations

from tests.support.environment import ROOT

MAX_LINES = 400
MAX_MODULES = 12


def test_no_module_is_over_400_lines() -> None:
    """Every module of bot/ holds at most 400 lines (split by concern when it grows)."""
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for path in (ROOT / "bot").rglob("*.py")}
    assert lengths, "bot/ holds no module: the walk is broken"
    assert not {path: lines for path, lines in lengths.items() if lines > MAX_LINES}


def test_no_folder_holds_more_than_12_modules() -> None:
    """Every folder of bot/ holds at most 12 modules directly, its __init__.py included."""
    folders = [ROOT / "bot", *(path for path in (ROOT / "bot").rglob("*") if path.is_dir()
                               and path.name != "__pycache__")]
    counts = {folder.relative_to(ROOT).as_posix(): len(list(folder.glob("*.py"))) for folder in folders}
    assert not {folder: count for folder, count in counts.items() if count > MAX_MODULES}
