"""Python's cyclic garbage collector in a command process: paused while long-lived objects load, then frozen.

A command (`invoke migrate`, `start`, …) is one process that ends with the command, so the modules and
revision scripts it loads live until exit: the collector's passes over them while they are built, and every
later full collection's walk over them, buy nothing (bench G4). Code that calls bot.migrate.api from its own
long-running program is left alone, since there a freeze could keep that program's garbage for good.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_in_command: ContextVar[bool] = ContextVar("in_command", default=False)


@contextmanager
def command_process() -> Iterator[None]:
    """Mark what runs inside as a command whose process exits after it (the error boundary's)."""
    skip_final_collection()
    token = _in_command.set(True)
    try:
        yield
    finally:
        _in_command.reset(token)


@contextmanager
def loading() -> Iterator[None]:
    """Inside a command, load with the collector paused and freeze what was built; elsewhere, change nothing."""
    if not _in_command.get():
        yield
        return
    with paused_then_frozen():
        yield


@contextmanager
def paused_then_frozen() -> Iterator[None]:
    """Run the block with the collector off, then freeze everything alive and turn it back on if it was."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def skip_final_collection() -> None:
    """At interpreter exit, spare the last garbage collection its walk over every object (~150 ms per command).

    Logging and the standard streams are flushed after this by their own exit hooks; only objects caught in
    reference cycles miss their finalizers, and the operating system reclaims what they held.
    """
    atexit.unregister(gc.freeze)  # registered once however many commands one process runs
    atexit.register(gc.freeze)
