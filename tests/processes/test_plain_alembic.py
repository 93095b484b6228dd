"""Users' habits keep working: the plain `alembic` command in a fresh copy with only a .env."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environment import ROOT, clean_env
from tests.support.logs import json_lines
from tests.support.revisions import HEAD


def alembic(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the plain `alembic` command on a project copy, with an empty stdin (nobody to answer a prompt)."""
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), *args],
                          cwd=cwd or project, env=clean_env(), capture_output=True, text=True, timeout=60, input="")


@pytest.mark.slow
def test_plain_alembic_upgrade_and_current_with_dotenv(project: Path) -> None:
    """alembic upgrade head / current read DATABASE_URL from .env, create the SQLite folder and log JSON."""
    (project / ".env").write_text("ENV=production\nDATABASE_URL=sqlite:///var/db/app.db\n")
    upgrade = alembic(project, "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    assert (project / "var" / "db" / "app.db").is_file()
    assert any("Running upgrade" in str(event["event"]) for event in json_lines(upgrade.stderr))
    current = alembic(project, "current")
    assert current.returncode == 0 and f"{HEAD} (head)" in current.stdout


@pytest.mark.slow
def test_plain_alembic_from_another_directory(project: Path, tmp_path: Path) -> None:
    """The relative SQLite path is anchored at the project root even when alembic runs elsewhere."""
    (project / ".env").write_text("DATABASE_URL=sqlite:///data/elsewhere.db\nLOG_FORMAT=json\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    assert alembic(project, "upgrade", "head", cwd=elsewhere).returncode == 0
    assert (project / "data" / "elsewhere.db").is_file() and not (elsewhere / "data").exists()
    history = alembic(project, "history", cwd=elsewhere)
    assert f"-> {HEAD} (head)" in history.stdout and "<base> -> 0001" in history.stdout


@pytest.mark.slow
def test_readme_says_what_plain_alembic_skips_and_it_is_true(project: Path) -> None:
    """README's plain-alembic paragraph names no lock, journal, backup, review or prompt, and a plain
    `alembic downgrade -1` indeed drops a column at once, unasked, with no backup and no journal entry."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = next(part for part in readme.split("\n\n") if "plain `alembic` command keeps working" in part)
    for missing in ("no migration lock", "no journal entry", "no backup", "no review", "no prompt"):
        assert missing in paragraph, f"README does not say plain alembic has {missing}"
    (project / ".env").write_text("ENV=production\nDATABASE_URL=sqlite:///data/app.db\n")
    assert alembic(project, "upgrade", "0002").returncode == 0
    database = project / "data" / "app.db"
    downgrade = alembic(project, "downgrade", "-1")
    assert downgrade.returncode == 0, downgrade.stderr
    with sqlite3.connect(database) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(users)")}
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "last_seen_at" not in columns, "the column is gone"
    assert "toolkit_journal" not in tables, "nothing was journaled"
    assert not (project / "backups").exists(), "nothing was backed up"
