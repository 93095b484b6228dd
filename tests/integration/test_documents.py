"""The README's tables and the operations guides say what the code does: each promise here is read from the text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot import errors
from bot.commands import cli
from bot.migrate import api as migrations
from bot.migrate.rails.backup import take_backup
from bot.migrate.rails.guards import downgrade_guards
from bot.settings.loading import load_config
from tests.support.commands import run_task
from tests.support.database import database_state
from tests.support.documents import markdown_table, ticked
from tests.support.environment import ROOT, plain

README = ROOT / "README.md"


def test_exit_code_table_is_the_enumeration_and_its_errors() -> None:
    """Each README row is one ExitCode (number and name) and names the error class the code raises it with."""
    rows = markdown_table(README.read_text(encoding="utf-8"), "## Exit codes")
    assert [(int(row[0]), ticked(row[1])) for row in rows] == [(code.value, [code.name]) for code in errors.ExitCode]
    classes = {cls.__name__: cls for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.ToolkitError) and cls is not errors.ToolkitError}
    named = {name: int(row[0]) for row in rows for name in ticked(row[2])}
    assert named == {name: int(cls.exit_code) for name, cls in classes.items()}, "each error class in its row"
    # `start` exits 8 on a second signal (tests/integration/test_drain.py::test_a_second_signal_cuts_the_drain_short).
    assert "other than `start`" not in rows[8][3] and "`start` exits 8" in rows[8][3]


def raised_error_classes() -> set[str]:
    """Every typed error class some module of bot/ raises."""
    raised = set()
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                raised.add(node.exc.func.id)
    return raised


def test_every_exit_code_is_raised_somewhere() -> None:
    """No row documents a code nothing can exit with: each error class of the table is raised in bot/."""
    rows = markdown_table(README.read_text(encoding="utf-8"), "## Exit codes")
    documented = {name for row in rows for name in ticked(row[2])}
    assert documented and documented <= raised_error_classes()


def test_commands_the_exit_7_row_names_do_exit_7(sqlite_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status --check`, `check` and `doctor`, as the row says, exit 7 on a database one revision behind/unreachable."""
    row = next(row for row in markdown_table(README.read_text(encoding="utf-8"), "## Exit codes") if row[0] == "7")
    assert {"status --check", "check", "doctor"} <= set(ticked(row[3]))
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    migrations.upgrade(load_config({"DATABASE_URL": plain(sqlite_url)}), to="0001")
    assert run_task(lambda: cli.status(check=True)) == 7
    assert run_task(cli.check) == 7
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nothing")
    monkeypatch.setenv("DB_WAIT_TIMEOUT", "0")
    assert run_task(cli.doctor) == 7


ROLLBACK_MD = ROOT / "docs" / "ROLLBACK.md"


def test_confirmation_row_says_who_asks(sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In development without a terminal, the commands ROLLBACK.md says always ask refuse (6); the rest run."""
    row = next(row for row in markdown_table(ROLLBACK_MD.read_text(encoding="utf-8"), "## The safeguards at a glance")
               if row[0] == "Confirmation")
    production_only, _, always = row[1].partition(";")
    assert "in production" in production_only and always.strip().endswith("always")
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    assert run_task(cli.migrate) == 0
    backup = take_backup(load_config({"DATABASE_URL": plain(sqlite_url), "BACKUP_DIR": str(tmp_path / "backups")}),
                         ("0002",), reason="test").path
    runs = {"rollback": lambda: cli.rollback(no_backup=True),
            "rollback-base": lambda: cli.rollback_base(no_backup=True),
            "stamp": lambda: cli.stamp(to="0001"),
            "restore": lambda: cli.restore(path=str(backup), no_backup=True)}
    assert set(ticked(production_only)) | set(ticked(always)) == set(runs)
    for name in ticked(always):
        assert run_task(runs[name]) == 6, f"{name} must ask even in development"
        assert database_state(load_config({"DATABASE_URL": plain(sqlite_url)})).current == ("0002",)
    for name in ticked(production_only):
        assert run_task(runs[name]) == 0, f"{name} asks only in production"


def test_rollback_step_4_says_the_backup_comes_after_the_answer(sqlite_url: URL, tmp_path: Path) -> None:
    """A rollback asks before it writes its backup (a refusal writes none), in the order step 4 tells it."""
    step = ROLLBACK_MD.read_text(encoding="utf-8").partition("4. **Roll back**")[2].partition("5. **Check**")[0]
    assert step.index("asks for the database name") < step.index("write and check a backup")
    config = load_config({"DATABASE_URL": plain(sqlite_url), "BACKUP_DIR": str(tmp_path / "backups"),
                          "ENV": "production"})
    migrations.upgrade(config)
    backups_when_asked = []

    def answer(plan: object) -> bool:
        backups_when_asked.append(sorted((tmp_path / "backups").glob("*")))
        return len(backups_when_asked) > 1

    with pytest.raises(errors.Refused, match="not confirmed"):
        migrations.rollback(config, confirm=answer, safeguards=downgrade_guards(config, backup=True))
    assert backups_when_asked == [[]] and not list((tmp_path / "backups").glob("*")), "refused: no backup"
    migrations.rollback(config, confirm=answer, safeguards=downgrade_guards(config, backup=True))
    assert backups_when_asked[1] == [] and len(list((tmp_path / "backups").glob("*.sqlite"))) == 1


def test_layout_table_names_paths_that_exist_and_every_code_folder() -> None:
    """Each path in the README's layout table exists, and every folder of bot/ and tests/ is named in it."""
    named: set[Path] = set()
    for path_cell, what in markdown_table(README.read_text(), "## Layout"):
        for spelled in ticked(path_cell):  # a folder's row may name its subfolders: `unit/` in the tests/ row
            named.update((ROOT / spelled / sub).resolve() for sub in ticked(what) if sub.endswith("/"))
        for spelled in ticked(path_cell):
            match = re.fullmatch(r"(.*)\{(.*)\}(.*)", spelled)  # bot/migrate/{api,plan}.py names several files
            for path in ([match[1] + part + match[3] for part in match[2].split(",")] if match else [spelled]):
                found = list(ROOT.glob(path))  # requirements*.txt names two files
                assert found, f"README layout names {path}, which does not exist"
                named.update(found_path.resolve() for found_path in found)
    folders = {folder.resolve() for top in ("bot", "tests") for folder in (ROOT / top).iterdir()
               if folder.is_dir() and not folder.name.startswith("__")}
    covered = {folder for folder in folders
               if folder in named or any(path.parent == folder for path in named)}
    assert folders - covered == set(), "folders without a row in the README's layout table"
