"""A command's own result on stdout (tables, JSON, SQL); logs go to stderr through bot.logs."""

from __future__ import annotations

import os
import sys


class OutputClosed(Exception):
    """The reader of stdout went away (`invoke history | head -1`): the command ends quietly, like cat does."""


def print_result(text: str, *, end: str = "\n") -> None:
    """Write a command's result on stdout now, so a closed pipe is noticed here and not at interpreter exit."""
    try:
        sys.stdout.write(text + end)
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        raise OutputClosed from None


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not raise the broken pipe a second time."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # a replaced stream (tests capture it) has no descriptor to repoint
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)
