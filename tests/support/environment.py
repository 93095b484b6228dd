"""The machine the tests run on: the checkout, CI or not, the servers' admin logins, clean environments."""

from __future__ import annotations

import ast
import os
import socket

import pytest
from sqlalchemy.engine import URL

from bot.paths import PROJECT_ROOT as ROOT
from bot.settings import SECRET_FILE_VARIABLES, VARIABLES

IN_CI = os.environ.get("CI", "").lower() == "true"


PG_ADMIN = dict(host="127.0.0.1", port=5432, user=os.environ.get("TEST_PG_USER", "postgres"), dbname="postgres")


MARIADB_ADMIN = dict(host="127.0.0.1", port=3306, user="root", password="")


TOOLKIT_VARIABLES = tuple(variable.name for variable in VARIABLES)


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


def variables_the_code_reads() -> set[str]:
    """Every variable name load_config reads: literal names passed with `environ`, plus each secret's NAME_FILE."""
    tree = ast.parse((ROOT / "bot" / "settings.py").read_text())
    names = {f"{name}_FILE" for name in SECRET_FILE_VARIABLES} | set(SECRET_FILE_VARIABLES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                and node.args[0].id == "environ" and isinstance(node.args[1], ast.Constant):
            names.add(str(node.args[1].value))
    return names
