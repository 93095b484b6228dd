"""Confirmation of destructive commands: refused without a terminal, the prompt on a real pty, wrong names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.migrate import api as migrations
from bot.migrate.rails.backup import take_backup
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.database import revision_of
from tests.support.environment import clean_env, plain
from tests.support.logs import events_named


def run_on_terminal(project: Path, *args: str, env: dict[str, str], typed: str) -> tuple[int, str]:
    """Run `invoke ARGS` with a real pseudo-terminal as stdin, typing `typed`; return exit code and stderr."""
    leader, follower = os.openpty()
    try:
        os.write(leader, typed.encode())
        process = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(project), *args],
                                 cwd=project, env=env, stdin=follower, capture_output=True,
                                 text=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    return process.returncode, process.stderr


@pytest.mark.slow
def test_production_downgrades_refused_without_terminal(project: Path, sqlite_url: URL) -> None:
    """rollback, rollback-base, stamp, restore in production, no terminal, no --yes: exit 6, nothing changed."""
    env = clean_env(DATABASE_URL=plain(sqlite_url), ENV="production", LOG_FORMAT="json")
    migrations.upgrade(Config(database_url=sqlite_url), to="0002")
    backup = take_backup(Config(database_url=sqlite_url, backup_dir=project / "saved"), ("0002",), reason="test")
    for args in (["rollback"], ["rollback-base"], ["stamp", "--to", "0001"], ["restore", str(backup.path)]):
        result = run_invoke(project, *args, env=env)
        assert result.returncode == 6, (args, result.stderr)
        error = str(events_named(result.stderr, "command failed")[0]["error"])
        assert "needs confirmation: there is no terminal to ask on; pass --yes" in error
    assert revision_of(sqlite_url) == "0002"
    assert not (project / "backups").exists(), "no backup is taken for a command that was refused"


@pytest.mark.slow
def test_wrong_name_typed_on_terminal_changes_nothing(project: Path, postgres_url: URL) -> None:
    """The prompt names host/database, current revision, target and each revision undone; a wrong name exits 6."""
    env = clean_env(DATABASE_URL=plain(postgres_url), ENV="production", LOG_FORMAT="json")
    migrations.upgrade(Config(database_url=postgres_url), to="0002")
    code, stderr = run_on_terminal(project, "rollback", "--steps", "2", env=env, typed="production\n")
    assert code == 6, stderr
    assert f"About to downgrade 127.0.0.1:5432/{postgres_url.database} (database {postgres_url.database})" in stderr
    assert "current revision: 0002" in stderr and "target:           -2" in stderr
    assert "    0002  track user activity\n    0001  create users" in stderr
    assert f"Type the database name ({postgres_url.database}) to confirm:" in stderr
    assert "was not confirmed" in stderr
    assert revision_of(postgres_url) == "0002"
    assert not (project / "backups").exists()


@pytest.mark.slow
def test_right_name_typed_rolls_back_after_backup(project: Path, sqlite_url: URL) -> None:
    """In development rollback-base still asks; typing the name goes on after a backup, which restores."""
    env = clean_env(DATABASE_URL=plain(sqlite_url), LOG_FORMAT="json")
    migrations.upgrade(Config(database_url=sqlite_url), to="0002")
    code, stderr = run_on_terminal(project, "rollback-base", env=env, typed="bot.db\n")
    assert code == 0, stderr
    assert "Type the database name (bot.db) to confirm:" in stderr
    assert revision_of(sqlite_url) is None
    backups = list((project / "backups").glob("bot.db-0002-*.sqlite"))
    assert len(backups) == 1

    restored = run_invoke(project, "restore", str(backups[0]), "--yes", env=env)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"restored {backups[0]} (revision 0002); the state before is in ")
    assert revision_of(sqlite_url) == "0002"
