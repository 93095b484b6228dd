"""The machine the tests run on: the checkout, CI or not, the servers' admin logins, clean environments."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.paths import PROJECT_ROOT as ROOT
from bot.settings.table import SETTINGS

IN_CI = os.environ.get("CI", "").lower() == "true"


PG_ADMIN = dict(host="127.0.0.1", port=5432, user=os.environ.get("TEST_PG_USER", "postgres"), dbname="postgres")


MARIADB_ADMIN = dict(host="127.0.0.1", port=3306, user="root", password="")


TOOLKIT_VARIABLES = tuple(setting.name for setting in SETTINGS)


TOKEN = "123456789:AAH1testtokenvalue-abcdefghijklmnop"


def server_unavailable(name: str, error: Exception) -> None:
    """Skip visibly outside CI; in CI a missing server is a failure, never a skip."""
    message = f"{name} is unreachable on 127.0.0.1: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run must start it)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plain(url: URL) -> str:
    """A URL as a user would write it in DATABASE_URL (password included)."""
    return url.render_as_string(hide_password=False)


def clean_env(**variables: str) -> dict[str, str]:
    """The machine's environment without the toolkit's variables, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if key not in TOOLKIT_VARIABLES}
    env.update(variables)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python_interpreter(version: str) -> Path | None:
    """A CPython `version` ("3.12") on this machine: on PATH as python3.12, or installed by pyenv."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [Path(found) for found in (shutil.which(f"python{version}"),) if found]
    candidates += sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        try:
            said = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if said.returncode == 0 and said.stdout.strip() == version:
            return candidate
    return None


def fresh_copy(target: Path) -> Path:
    """The checkout's files as a fresh clone would have them (tracked or new, nothing ignored), copied to target."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, timeout=60, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.SubprocessError):  # an unpacked archive: everything but what a checkout ignores
        listed = [path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*") if path.is_file()
                  and not {".git", ".venv", "data", "backups", "__pycache__"} & set(path.relative_to(ROOT).parts)]
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target
