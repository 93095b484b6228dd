"""Users' habits keep working: the plain `alembic` command in a fresh copy with only a .env."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env, json_lines


def alembic(project: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), *args],
                          cwd=cwd or project, env=clean_env(), capture_output=True, text=True, timeout=60)


def test_plain_alembic_upgrade_and_current_with_dotenv(project: Path) -> None:
    """alembic upgrade head / current read DATABASE_URL from .env, create the SQLite folder and log JSON."""
    (project / ".env").write_text("ENV=production\nDATABASE_URL=sqlite:///var/db/app.db\n")
    upgrade = alembic(project, "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    assert (project / "var" / "db" / "app.db").is_file()
    assert any("Running upgrade" in str(event["event"]) for event in json_lines(upgrade.stderr))
    current = alembic(project, "current")
    assert current.returncode == 0 and "0002 (head)" in current.stdout


def test_plain_alembic_from_another_directory(project: Path, tmp_path: Path) -> None:
    """The relative SQLite path is anchored at the project root even when alembic runs elsewhere."""
    (project / ".env").write_text("DATABASE_URL=sqlite:///data/elsewhere.db\nLOG_FORMAT=json\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    assert alembic(project, "upgrade", "head", cwd=elsewhere).returncode == 0
    assert (project / "data" / "elsewhere.db").is_file() and not (elsewhere / "data").exists()
    history = alembic(project, "history", cwd=elsewhere)
    assert "0001 -> 0002 (head)" in history.stdout
