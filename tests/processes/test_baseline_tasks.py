"""`invoke squash` and a fresh `invoke migrate` as an operator runs them: results on stdout, one line on stderr."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.support.commands import run_invoke
from tests.support.database import revision_of
from tests.support.environment import clean_env, plain
from tests.support.logs import json_lines
from tests.support.revisions import add_revision, later, revision_source, rich_history

RICH = 8


@pytest.mark.slow
def test_squash_check_retire_and_migrate_as_processes(project: Path, postgres_url: URL, sqlite_url: URL) -> None:
    """squash on PostgreSQL and SQLite exits 0, migrate takes it, --check exits 7 on an edit, --retire strands 0003."""
    for name, source in rich_history(RICH):
        add_revision(project, source, name)
    top = later(RICH)
    env = clean_env(DATABASE_URL=plain(postgres_url), LOG_FORMAT="json")
    made = run_invoke(project, "squash", env=env, timeout=300)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == (f"baseline {top} (covers {RICH + 2} revision(s)): written to "
                                           f"{project / 'alembic' / 'baseline'}")
    assert "postgresql: 34 statement(s), equal to the history" in made.stdout
    assert [event["event"] for event in json_lines(made.stderr)].count("baseline verified") == 2

    migrated = run_invoke(project, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert [event["revision"] for event in json_lines(migrated.stderr) if event["event"] == "migration applied"] \
        == [top]

    sqlite_env = clean_env(DATABASE_URL=plain(sqlite_url), LOG_FORMAT="json")
    assert run_invoke(project, "migrate", "--to", later(1), env=sqlite_env).returncode == 0
    subprocess.run(["git", "-C", str(project), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit",
                    "-qm", "baseline"], check=True)
    seed = next((project / "alembic" / "versions").glob(f"{later(1)}_*.py"))
    seed.write_text(seed.read_text().replace('"price": 29', '"price": 31'))
    checked = run_invoke(project, "squash", "--check", "--server", plain(postgres_url), env=sqlite_env, timeout=300)
    assert checked.returncode == 7, checked.stderr
    assert f"revision {later(1)} ({seed.name}) was edited after baseline {top} was made" in checked.stdout
    [failed] = [event for event in json_lines(checked.stderr) if event["event"] == "command failed"]
    assert failed["exit_code"] == 7 and f"baseline {top} differs from the history" in failed["error"]

    subprocess.run(["git", "-C", str(project), "checkout", "-q", "--", str(seed)], check=True)
    retired = run_invoke(project, "squash", "--retire", env=sqlite_env)
    assert retired.returncode == 0, retired.stderr
    assert f"{RICH + 2} revision file(s) retired" in retired.stdout
    stranded = run_invoke(project, "migrate", env=sqlite_env)
    assert stranded.returncode == 6
    [failed] = [event for event in json_lines(stranded.stderr) if event["event"] == "command failed"]
    assert failed["error"].startswith(f"the database is at revision {later(1)}, which baseline {top} covers")
    assert revision_of(sqlite_url) == later(1)


@pytest.mark.slow
def test_squash_refuses_a_trigger_with_one_line_and_exit_6(project: Path, mariadb_url: URL) -> None:
    """A trigger made by a revision: squash exits 6 naming it and its revision, and writes nothing."""
    for name, source in rich_history(RICH):
        add_revision(project, source, name)
    revision = later(RICH + 1)
    add_revision(project, revision_source(
        'op.execute("CREATE TRIGGER plans_touch AFTER UPDATE ON plans FOR EACH ROW SET @touched = 1") '
        'if op.get_bind().dialect.name != "sqlite" else '
        'op.execute("CREATE TRIGGER plans_touch AFTER UPDATE ON plans BEGIN SELECT 1; END")',
        "pass", message="a trigger", revision=revision, down_revision=later(RICH)), f"{revision}_trigger.py")
    done = run_invoke(project, "squash", env=clean_env(DATABASE_URL=plain(mariadb_url), LOG_FORMAT="json"),
                      timeout=300)
    assert done.returncode == 6 and done.stdout == ""
    [failed] = [event for event in json_lines(done.stderr) if event["event"] == "command failed"]
    assert failed["error"].startswith(f"trigger plans_touch on plans (made by revision {revision}) cannot be "
                                      "carried by a baseline")
    assert not (project / "alembic" / "baseline").exists()
