"""The Invoke tasks as an operator runs them: output streams, confirmations, imports."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection

from tests.support.commands import run_invoke
from tests.support.environment import clean_env
from tests.support.logs import json_lines
from tests.support.revisions import HEAD, NEXT, SHIPPED


@pytest.mark.slow
def test_every_task_and_flag_is_explained(project: Path) -> None:
    """`invoke --list` names every task of tasks.py and `--help TASK` describes every one of its flags."""
    import tasks

    env = clean_env()
    collection = Collection.from_module(tasks)
    listing = run_invoke(project, "--list", env=env).stdout.split()
    assert len(collection.tasks) >= 11
    for name, task_ in collection.tasks.items():
        assert name in listing, f"{name} missing from --list"
        assert (task_.__doc__ or "").strip(), f"{name} has no docstring"
        help_text = run_invoke(project, "--help", name, env=env).stdout
        for parameter in inspect.signature(task_.body).parameters.values():
            if parameter.name == "c":
                continue
            name_ = parameter.name.strip("_").replace("_", "-")
            flag = ("-" if len(name_) == 1 else "--") + name_  # Invoke gives one-letter parameters a short flag only
            line = next((line for line in help_text.splitlines() if line.strip().startswith("-")
                         and flag in line.split()[0:2]), None) or next(
                (line for line in help_text.splitlines() if line.strip().startswith("-") and flag + "=" in line), None)
            assert line is not None, f"{name}: {flag} is not in --help"
            assert len(line.split(flag, 1)[1].split(None, 1)[-1].strip()) > 10, f"{name}: {flag} has no help"


@pytest.mark.slow
def test_status_and_history_print_tables_on_stdout(project: Path) -> None:
    """Results go to stdout and logs to stderr, so scripts can pipe the tables."""
    env = clean_env(ENV="production")
    assert run_invoke(project, "migrate", "--to", "0001", env=env).returncode == 0
    status = run_invoke(project, "status", env=env)
    assert status.returncode == 0
    assert status.stdout.splitlines()[:3] == ["current  0001", f"head     {HEAD}", f"pending  {len(SHIPPED) - 1}"]
    history = run_invoke(project, "history", env=env)
    rows = history.stdout.splitlines()
    assert rows[1].startswith(HEAD) and "pending" in rows[1] and "(head)" in rows[1]
    assert rows[-1].startswith("0001") and "applied" in rows[-1] and "current" in rows[-1]
    json_lines(status.stderr)
    json_lines(history.stderr)


@pytest.mark.slow
def test_rollback_base_without_terminal_or_yes_refuses(project: Path) -> None:
    """rollback-base with no terminal and no --yes exits 6 and leaves every table."""
    env = clean_env()
    assert run_invoke(project, "migrate", env=env).returncode == 0
    refused = run_invoke(project, "rollback-base", env=env, input_text="")
    assert refused.returncode == 6
    assert "--yes" in json_lines(refused.stderr)[-1]["error"]
    assert run_invoke(project, "status", env=env).stdout.startswith(f"current  {HEAD}")
    done = run_invoke(project, "rollback-base", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert run_invoke(project, "status", env=env).stdout.startswith("current  base")


@pytest.mark.slow
def test_production_rollback_needs_confirmation(project: Path) -> None:
    """In production a rollback without a terminal needs --yes; with it, one revision is undone."""
    env = clean_env(ENV="production")
    run_invoke(project, "migrate", "--to", "0002", env=env)
    assert run_invoke(project, "rollback", env=env).returncode == 6
    assert run_invoke(project, "rollback", "--yes", env=env).returncode == 0
    assert run_invoke(project, "status", env=env).stdout.startswith("current  0001")


@pytest.mark.slow
def test_revision_writes_the_next_numbered_file(project: Path) -> None:
    """`invoke revision -m` writes NNNN_<slug>.py, numbered after the head and revising it; an empty message exits 2."""
    env = clean_env()
    result = run_invoke(project, "revision", "-m", "add settings", env=env)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.name == f"{NEXT}_add_settings.py" and path.parent == project / "alembic" / "versions"
    assert re.search(rf"^down_revision\b.*=\s*['\"]{HEAD}['\"]", path.read_text(), re.MULTILINE)
    empty = run_invoke(project, "revision", env=env)
    assert empty.returncode == 2 and "message is empty" in json_lines(empty.stderr)[-1]["error"]
    assert sorted(p.name for p in path.parent.glob(f"{NEXT}_*.py")) == [f"{NEXT}_add_settings.py"]


@pytest.mark.slow
def test_autogenerate_finds_no_difference_at_head(project: Path) -> None:
    """With the database at head, autogenerate writes an empty revision (the models match the revisions)."""
    env = clean_env()
    run_invoke(project, "migrate", env=env)
    result = run_invoke(project, "revision", "-m", "nothing", "--autogenerate", env=env)
    assert result.returncode == 0, result.stderr
    body = Path(result.stdout.strip()).read_text()
    assert "op." not in body.split("def upgrade")[1]


@pytest.mark.slow
def test_tasks_that_do_not_start_the_bot_never_import_aiogram(project: Path) -> None:
    """Running migrate and status leaves aiogram unimported."""
    code = ("import sys, tasks; from bot.commands import cli; "
            "cli.migrate(); cli.status(); assert 'aiogram' not in sys.modules, 'aiogram was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=project, env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_rollback_steps_flag_from_the_command_line(project: Path) -> None:
    """`--steps 2` undoes two revisions; a non-number is a one-line input error (exit 2) that changes nothing."""
    env = clean_env()
    run_invoke(project, "migrate", "--to", "0002", env=env)
    bad = run_invoke(project, "rollback", "--steps", "two", "--no-backup", env=env)
    assert bad.returncode == 2 and "--steps" in json_lines(bad.stderr)[-1]["error"]
    assert run_invoke(project, "status", env=env).stdout.startswith("current  0002")
    done = run_invoke(project, "rollback", "--steps", "2", "--no-backup", env=env)
    assert done.returncode == 0, done.stderr
    assert run_invoke(project, "status", env=env).stdout.startswith("current  base")


@pytest.mark.slow
def test_stamp_to_a_bad_target_is_an_input_error(project: Path) -> None:
    """`stamp --to` an unknown or empty revision exits 2 and leaves alembic_version as it was."""
    env = clean_env()
    run_invoke(project, "migrate", "--to", "0001", env=env)
    for target, says in (("nope", "cannot stamp to 'nope'"), ("", "--to is empty")):
        result = run_invoke(project, "stamp", "--to", target, "--yes", env=env)
        assert result.returncode == 2, result.stderr
        assert says in json_lines(result.stderr)[-1]["error"]
    assert run_invoke(project, "status", env=env).stdout.startswith("current  0001")


@pytest.mark.slow
def test_commands_keep_the_bytecode_cache_unless_told_not_to(project: Path, tmp_path: Path) -> None:
    """Invoke's switch-off does not stick: the bot's and the revisions' bytecode is cached, except under -B."""
    database = f"sqlite:///{tmp_path / 'bot.db'}"
    told_not_to = run_invoke(project, "migrate", env=clean_env(DATABASE_URL=database, PYTHONDONTWRITEBYTECODE="1"))
    assert told_not_to.returncode == 0, told_not_to.stderr
    assert not list(project.rglob("*.pyc"))
    default = {key: value for key, value in clean_env(DATABASE_URL=database).items()
               if key != "PYTHONDONTWRITEBYTECODE"}
    shown = run_invoke(project, "status", env=default)
    assert shown.returncode == 0, shown.stderr
    assert list((project / "bot" / "commands" / "__pycache__").glob("cli.*.pyc"))
    assert list((project / "alembic" / "versions" / "__pycache__").glob("0001_*.pyc"))
    assert not list(project.glob("__pycache__/tasks.*.pyc")), "Invoke still keeps tasks.pyc out of the tree"
