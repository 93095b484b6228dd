"""The deployment recipes: each file is valid for its tool and runs only tasks that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.commands import run_invoke
from tests.support.environment import ROOT, clean_env

UNIT = ROOT / "deploy" / "systemd" / "bot.service"


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on a copy whose ExecStart points at an invoke that exists on this machine."""
    invoke = Path(sys.executable).parent / "invoke"
    unit = tmp_path / "bot.service"
    unit.write_text(unit_text.replace("/opt/bot/.venv/bin/invoke", str(invoke)))
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_systemd_unit_verifies_and_never_restarts_on_exit_2_or_6(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit with no warning; it restarts on failure except exits 2 and 6."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    text = UNIT.read_text()
    result = _verify(text, tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.MULTILINE))
    assert settings["Restart"] == "on-failure" and settings["RestartPreventExitStatus"].split() == ["2", "6"]
    assert settings["KillSignal"] == "SIGTERM" and int(settings["TimeoutStopSec"]) > 8
    assert settings["User"] != "root"
    broken = _verify(text.replace("RestartPreventExitStatus=2 6", "RestartPreventExitStatus=two"), tmp_path)
    assert "RestartPreventExitStatus" in broken.stderr or "parse" in broken.stderr, "verify must catch typos"


def test_procfile_and_railway_release_migrate_and_start() -> None:
    """Procfile and railway.json: `invoke migrate` as the release step, `invoke start` for the processes."""
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert procfile == {"release": "invoke migrate", "web": "invoke start", "worker": "invoke start"}
    railway = json.loads((ROOT / "railway.json").read_text())
    assert railway["deploy"]["preDeployCommand"] == ["invoke migrate"]
    assert railway["deploy"]["startCommand"] == "invoke start"
    assert railway["deploy"]["healthcheckPath"] == "/healthz"
    assert railway["build"]["builder"] == "DOCKERFILE"


@pytest.mark.slow
def test_dockerfile_is_non_root_ships_db_clients_and_precompiles(tmp_path: Path) -> None:
    """The image runs as a non-root user with pg/mariadb clients, and its compileall step works on the code."""
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "postgresql-client" in text and "mariadb-client" in text
    step = re.search(r"python -m compileall -q ([^\\\n&]+)", text)
    assert step is not None
    for name in ("bot", "alembic", "tasks.py", "alembic.ini"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    compiled = subprocess.run([sys.executable, "-m", "compileall", "-q", *step.group(1).split()], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    if "python -m bot.migrate.fastpath" in text:
        manifest = subprocess.run([sys.executable, "-m", "bot.migrate.fastpath"], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
        assert manifest.returncode == 0 and Path(manifest.stdout.strip()).is_file(), manifest.stderr
    revisions = [p for p in (tmp_path / "alembic" / "versions").glob("*.py") if not p.name.startswith("_")]
    cached = list((tmp_path / "alembic" / "versions" / "__pycache__").glob("*.pyc"))
    assert revisions and len(cached) >= len(revisions)
    assert re.search(r'^CMD \["invoke", "start"\]', text, flags=re.MULTILINE)


@pytest.mark.slow
def test_recipes_only_run_tasks_that_exist(tmp_path: Path) -> None:
    """Every `invoke NAME` in the recipes and docs/DEPLOYMENT.md is a task `invoke --list` shows."""
    listing = run_invoke(ROOT, "--list", env=clean_env(PYTHONPYCACHEPREFIX=str(tmp_path / "pycache")), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    tasks = set(re.findall(r"^\s{2}([a-z][a-z-]*)\s", listing.stdout, flags=re.MULTILINE))
    files = [ROOT / "Procfile", ROOT / "railway.json", ROOT / "Dockerfile", UNIT, ROOT / "docs" / "DEPLOYMENT.md",
             *sorted((ROOT / "deploy").rglob("*.cron")), *sorted((ROOT / "deploy").rglob("*.yml"))]
    used = {name for path in files for name in re.findall(r"\binvoke[\"',\s]+([a-z][a-z-]*)", path.read_text())}
    assert used and used <= tasks, f"recipes call tasks that do not exist: {sorted(used - tasks)}"
