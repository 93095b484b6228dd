"""SIGTERM/SIGINT handling: stop promptly while waiting, but never in the middle of a migration step."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.errors import Interrupted

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownGuard:
    """Cancels the main task on a stop signal, or defers the stop until the current step ends."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._critical = 0
        self._task: asyncio.Task[Any] | None = None

    def request(self, signum: int) -> None:
        """Signal handler: remember the stop, and cancel now unless a step is running."""
        self.signal_name = signal.Signals(signum).name
        if self._critical == 0 and self._task is not None:
            self._task.cancel()

    def enter_critical(self) -> None:
        """From now on a stop waits: a migration step must commit or roll back first."""
        self._critical += 1

    def leave_critical(self) -> None:
        """The step is over; a stop may take effect at the next safe point."""
        self._critical = max(0, self._critical - 1)

    def raise_if_requested(self) -> None:
        """Stop at a safe point if a signal arrived meanwhile."""
        if self.signal_name and self._critical == 0:
            raise Interrupted(f"stopped by {self.signal_name}", "the signal arrived before the command finished",
                              "nothing was left half-done; run the command again")

    async def run(self, main: Awaitable[T]) -> T:
        """Await `main` with our stop-signal handlers installed on the running loop."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request, sig)
        try:
            return await main
        except asyncio.CancelledError:
            if self.signal_name:
                self._critical = 0
                self.raise_if_requested()
            raise
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)


def run_guarded(main: Callable[[ShutdownGuard], Awaitable[T]]) -> T:
    """asyncio.run with a ShutdownGuard, for library calls made from synchronous entry points."""
    guard = ShutdownGuard()

    async def runner() -> T:
        return await guard.run(main(guard))

    return asyncio.run(runner())
