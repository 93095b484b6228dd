"""Who writes a journal row: the host, process, OS user, application version and ENV of this run."""

from __future__ import annotations

import getpass
import os
import re
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bot import __version__
from bot.paths import PROJECT_ROOT


@dataclass(frozen=True)
class Origin:
    """Who is writing: the host, process, OS user, application version and ENV of this run."""

    host: str
    pid: int
    os_user: str
    app_version: str
    environment: str

    def values(self) -> dict[str, object]:
        """The origin as column values."""
        return {"host": self.host[:255], "pid": self.pid, "os_user": self.os_user[:64],
                "app_version": self.app_version[:64], "environment": self.environment[:32]}


def this_process(environment: str) -> Origin:
    """This process as the journal records it."""
    return Origin(host=socket.gethostname(), pid=os.getpid(), os_user=os_user(), app_version=app_version(),
                  environment=environment)


def os_user() -> str:
    """The login name, or the numeric uid in containers without a passwd entry."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@cache
def app_version() -> str:
    """bot.__version__, plus the git commit when the project is a checkout (read from .git, no subprocess)."""
    commit = git_commit(PROJECT_ROOT / ".git")
    return f"{__version__}+{commit[:12]}" if commit else __version__


def git_commit(git_dir: Path) -> str | None:
    """HEAD's commit id from the files git keeps, or None when that is not cheap to know."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head[5:]
        ref_file = git_dir / ref
        if ref_file.is_file():
            return ref_file.read_text().strip() or None
        for line in (git_dir / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        return None
    return None
