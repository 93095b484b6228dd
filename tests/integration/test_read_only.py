"""Read-only tasks never create a database, and migrate never goes down."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.commands import cli
from tests.support.commands import run_invoke, run_task
from tests.support.database import revision_of
from tests.support.environment import clean_env, plain
from tests.support.logs import json_lines


@pytest.mark.parametrize(("task", "code"), [
    (lambda: cli.status(), 3),
    (lambda: cli.status(as_json=True, check=True), 3),
    (lambda: cli.history(), 3),
    (lambda: cli.check(), 3),
    (lambda: cli.doctor(), 7),
], ids=["status", "status-check", "history", "check", "doctor"])
def test_read_only_tasks_on_a_mistyped_sqlite_path_create_nothing(
        task: Callable[[], None], code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """status, history, check and doctor on a SQLite path that does not exist name it and leave no file or folder."""
    missing = tmp_path / "dta" / "bot.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{missing}")
    assert run_task(task) == code
    output = capfd.readouterr()
    assert f"the SQLite database {missing} does not exist" in output.err + output.out
    assert list(tmp_path.iterdir()) == []


def test_migrate_to_an_older_revision_refuses_and_points_to_rollback(
        sqlite_url: URL, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    """`migrate --to 0001` on a database at 0002 exits 6 saying to use `rollback --to 0001`, and changes nothing."""
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    assert run_task(lambda: cli.migrate(to="0002")) == 0
    capfd.readouterr()
    for target, advice in (("0001", "invoke rollback --to 0001"), ("base", "invoke rollback-base")):
        assert run_task(lambda target=target: cli.migrate(to=target)) == 6
        error = str(json_lines(capfd.readouterr().err)[-1]["error"])
        assert f"--to {target} is below the database's revision 0002" in error and advice in error
        assert revision_of(sqlite_url) == "0002"


@pytest.mark.slow
def test_autogenerate_on_a_database_behind_head_refuses_without_writing(project: Path) -> None:
    """`revision --autogenerate` on a database behind head exits 6 with one line and writes no revision file."""
    env = clean_env()
    assert run_invoke(project, "migrate", "--to", "0001", env=env).returncode == 0
    before = sorted(path.name for path in (project / "alembic" / "versions").glob("*.py"))
    result = run_invoke(project, "revision", "-m", "more", "--autogenerate", env=env)
    assert result.returncode == 6, result.stderr
    events = json_lines(result.stderr)
    assert "behind head" in str(events[-1]["error"]) and "Traceback" not in result.stderr
    assert sorted(path.name for path in (project / "alembic" / "versions").glob("*.py")) == before
