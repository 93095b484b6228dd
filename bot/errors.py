"""Typed errors raised by library code; only the entry layer turns them into exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The one exit-code table shared by every task and by `python -m bot`."""

    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    DATABASE_UNREACHABLE = 3
    MIGRATION_FAILED = 4
    LOCK_TIMEOUT = 5
    REFUSED = 6
    CHECK_FAILED = 7
    INTERRUPTED = 8
    BOT_API_UNREACHABLE = 9


class ToolkitError(Exception):
    """An expected failure that the entry layer reports as one line: what, why, how to fix."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, what: str, why: str = "", fix: str = "", **fields: object) -> None:
        self.what = what
        self.why = why
        self.fix = fix
        self.fields = fields
        super().__init__(self.line())

    def line(self) -> str:
        """Render the single line an operator reads."""
        text = self.what
        if self.why:
            text += f": {self.why}"
        if self.fix:
            text += f"; {self.fix}"
        return text


class ConfigError(ToolkitError):
    """A variable, URL, token or command argument is malformed or missing."""

    exit_code = ExitCode.BAD_INPUT


class DatabaseUnreachable(ToolkitError):
    """The database could not be reached, or refused our credentials."""

    exit_code = ExitCode.DATABASE_UNREACHABLE


class MigrationFailed(ToolkitError):
    """A revision raised while it was applied or reverted."""

    exit_code = ExitCode.MIGRATION_FAILED


class LockTimeout(ToolkitError):
    """Another process held the migration lock for longer than we may wait."""

    exit_code = ExitCode.LOCK_TIMEOUT


class Refused(ToolkitError):
    """The command would be unsafe or was not confirmed, so nothing was changed."""

    exit_code = ExitCode.REFUSED


class CheckFailed(ToolkitError):
    """A check found a difference (pending revisions, drift)."""

    exit_code = ExitCode.CHECK_FAILED


class Interrupted(ToolkitError):
    """SIGTERM or SIGINT stopped the command between two safe points."""

    exit_code = ExitCode.INTERRUPTED


class BotApiUnreachable(ToolkitError):
    """The Telegram Bot API did not answer getMe within BOT_API_WAIT_TIMEOUT (or cannot: an unknown host)."""

    exit_code = ExitCode.BOT_API_UNREACHABLE
