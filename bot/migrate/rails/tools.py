"""The databases' own command-line tools (pg_dump, mariadb-dump, …): found on PATH, given credentials safely.

Passwords never go on a command line (any local user can read it in `ps`): PostgreSQL tools get them
through the child's environment, MariaDB tools through an owner-only option file removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import URL

from bot.errors import Refused

MYSQL_BACKENDS = ("mysql", "mariadb")
# The first tool found wins; MariaDB ships mariadb-dump and keeps mysqldump as a compatibility name.
TOOL_CHOICES = {
    "pg_dump": ("pg_dump",),
    "pg_restore": ("pg_restore",),
    "mysql_dump": ("mariadb-dump", "mysqldump"),
    "mysql_client": ("mariadb", "mysql"),
}
TOOL_TIMEOUT = 3600.0


def find_tool(kind: str, *, needed_for: str) -> str:
    """The path of the first matching tool on PATH, or a refusal naming what to install or pass."""
    for name in TOOL_CHOICES[kind]:
        found = shutil.which(name)
        if found:
            return found
    names = " or ".join(TOOL_CHOICES[kind])
    raise Refused(f"{names} is not on PATH", f"{needed_for} needs it",
                  "install the database's client tools (postgresql-client / mariadb-client) in the image"
                  + (", or pass --no-backup to go on without a backup" if "backup" in needed_for else ""))


def postgres_environment(url: URL) -> dict[str, str]:
    """libpq's own variables for the child process: host, port, user, database and password."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    values = {"PGHOST": url.host, "PGPORT": url.port, "PGUSER": url.username, "PGDATABASE": url.database,
              "PGPASSWORD": url.password, "PGSSLMODE": url.query.get("sslmode"), "PGCONNECT_TIMEOUT": "10"}
    env.update({key: str(value) for key, value in values.items() if value})
    return env


def _option_value(value: str) -> str:
    """Quote a value for a MySQL option file (escapes are interpreted inside quotes)."""
    escaped = value.replace("\\", "\\\\")
    quote = '"' if '"' not in escaped else "'"
    return f"{quote}{escaped}{quote}"


@contextmanager
def mysql_option_file(url: URL) -> Iterator[Path]:
    """A [client] option file holding host, port, user and password, readable by us only, deleted after use."""
    lines = ["[client]"]
    if url.host:
        lines.append(f"host={_option_value(url.host)}")
    if url.port:
        lines.append(f"port={url.port}")
    if url.username:
        lines.append(f"user={_option_value(url.username)}")
    if url.password:
        lines.append(f"password={_option_value(str(url.password))}")
    mode = next((str(url.query[key]).upper() for key in ("ssl-mode", "ssl_mode", "sslmode", "ssl")
                 if key in url.query), "")
    if mode in ("REQUIRED", "REQUIRE", "TRUE", "1", "VERIFY_CA", "VERIFY_IDENTITY"):
        lines.append("ssl")
    folder = Path(tempfile.mkdtemp(prefix="bot-mysql-"))
    path = folder / "client.cnf"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


def run_tool(arguments: Sequence[str], *, env: dict[str, str] | None = None, stdin: int | None = None,
             stdout: int | None = None, what: str, timeout: float = TOOL_TIMEOUT) -> str:
    """Run a tool, returning its stdout when not redirected; a failure is a refusal with the tool's last line."""
    try:
        result = subprocess.run(list(arguments), env=env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Refused(f"{what} did not finish within {timeout:g}s", "the tool hung or the database is too slow",
                      "check the database and try again") from None
    except OSError as error:
        raise Refused(f"{what} could not run", str(error), "check that the tool is installed and executable") from None
    if result.returncode != 0:
        message = last_line(result.stderr.decode("utf-8", "replace")) or f"exit status {result.returncode}"
        raise Refused(f"{what} failed", message, "fix the cause above and run the command again")
    return result.stdout.decode("utf-8", "replace") if stdout is None and result.stdout else ""


def last_line(text: str) -> str:
    """The most telling line of a tool's error output (its last non-empty one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
