"""The README's quick start as written, in a fresh copy and a fresh virtualenv, with newer releases on offer."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.documents import shell_blocks
from tests.support.environment import IN_CI, ROOT, clean_env, fresh_copy, python_interpreter
from tests.support.locks import environments, newer_release_wheels, read_lock, supported_pythons
from tests.support.revisions import HEAD


def quick_start() -> str:
    """The README's first command: set up, migrate the SQLite default and show the status."""
    command = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"), "## Quick start")[0].strip()
    assert "requirements.lock" in command and "\n" not in command, "the first quick-start command changed its form"
    return command


def installed_versions(python: Path) -> dict[str, Version]:
    """name -> version of every distribution in a virtualenv, as its own pip lists them."""
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "freeze", "--exclude", "pip",
                             "--exclude", "setuptools"], capture_output=True, text=True, timeout=120, check=True)
    pairs = (line.split("==", 1) for line in listed.stdout.splitlines() if "==" in line)
    return {canonicalize_name(name): Version(version) for name, version in pairs}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("python", supported_pythons())
def test_the_quick_start_installs_exactly_the_lock_while_newer_releases_exist(python: str, tmp_path: Path) -> None:
    """With a newer release of every locked package in a folder pip searches, the locked versions still install."""
    interpreter = python_interpreter(python)
    if interpreter is None:
        message = f"Python {python}, which the README names, is not on this machine"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    project = fresh_copy(tmp_path / "project")
    pins = read_lock((project / "requirements.lock").read_text(encoding="utf-8"))
    newer = tmp_path / "newer-releases"
    newer_release_wheels(pins, newer)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python3").symlink_to(interpreter)
    env = clean_env(HOME=str(tmp_path / "home"), PIP_FIND_LINKS=newer.as_uri())
    env["PATH"] = os.pathsep.join([str(shims), *(part for part in env.get("PATH", "").split(os.pathsep)
                                                 if part and not part.startswith(str(ROOT)))])
    for inherited in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(inherited, None)

    setup = subprocess.run(["bash", "--noprofile", "--norc", "-c", quick_start()], cwd=project, env=env,
                           capture_output=True, text=True, timeout=800)
    assert setup.returncode == 0, f"the quick start failed (exit {setup.returncode}):\n{setup.stderr[-3000:]}"
    assert "No broken requirements found." in setup.stdout, "pip check ran and found the environment consistent"
    assert re.search(rf"^current\s+{HEAD}\nhead\s+{HEAD}\npending\s+0$", setup.stdout, re.MULTILINE), setup.stdout
    assert (project / "data" / "bot.db").is_file(), "invoke migrate made the SQLite default"

    venv_python = project / ".venv" / "bin" / "python"
    here = environments([python])[f"Python {python} Linux {platform.machine()}"]
    wanted = {pin.name: pin.version for pin in pins if pin.applies(here)}
    assert installed_versions(venv_python) == wanted, "exactly the lock's versions, none of the newer releases"
    listed = subprocess.run([project / ".venv" / "bin" / "invoke", "--list"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "migrate" in listed.stdout and "rollback-base" in listed.stdout, listed.stderr
    said = subprocess.run([venv_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    assert said.stdout.strip() == python, "the virtualenv runs the Python this case is for"
