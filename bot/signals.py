"""The one stop signal: SIGTERM/SIGINT asks a command to stop, and every phase asks this one object how.

A command owns one StopSignal (the boundary makes it current). Start-up records a signal and stops at its next
safe point; a wait (for the database, for the lock) is cancelled at once; a migration step finishes first and the
command stops before the next one; the running bot drains on the first signal and gives up the drain on the
second. Raising from a signal handler is never done: the exception would land wherever the main thread happens
to be (half-way through importing aiogram, or inside a garbage-collector callback that swallows it).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import Any, TypeVar

from bot.errors import Interrupted
from bot.logs import get_logger

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

log = get_logger("bot.telegram")  # the running bot's stop lines keep the logger they always had


class StopSignal:
    """Whether a stop was asked (and by which signal), and what asking does in the phase the command is in."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.count = 0
        self._critical = 0
        self._waiting: asyncio.Task[Any] | None = None  # cancelled by a stop unless a step is running
        self._serving: asyncio.Task[Any] | None = None  # the running bot: drains on one stop, cancelled on two
        self._drain: asyncio.Event | None = None

    @property
    def reason(self) -> str:
        """How the bot says why it stopped."""
        return f"stopped by {self.signal_name}" if self.signal_name else "stopped"

    def request(self, signum: int) -> None:
        """The handler of every stop signal, in every phase."""
        name = signal.Signals(signum).name
        self.count += 1
        self.signal_name = self.signal_name or name
        if self._serving is not None:
            if self.count > 1:
                log.warning("stop forced", signal=name)
                self._serving.cancel()
                return
            log.info("stop requested", signal=name)
            self.drain.set()
        elif self._waiting is not None and self._critical == 0:
            self._waiting.cancel()

    def check(self, why: str = "the signal arrived before the command finished") -> None:
        """A safe point: raise Interrupted here if a stop was asked (never inside a step)."""
        if self.signal_name and self._critical == 0:
            raise Interrupted(f"stopped by {self.signal_name}", why,
                              "nothing was left half-done; run the command again")

    @contextmanager
    def step(self) -> Iterator[None]:
        """A migration step: a stop waits until it has committed or rolled back."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    @contextmanager
    def recorded(self) -> Iterator[StopSignal]:
        """Outside any event loop (start-up): a signal is only recorded, for the next check()."""
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request(signum)

        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    async def waiting(self, main: Awaitable[T]) -> T:
        """Await `main` (a command's work) so that a stop cancels its waits and ends it as Interrupted."""
        if self.signal_name:  # asked before the work began (start-up records signals): it never starts
            close = getattr(main, "close", None)
            if callable(close):
                close()
            self.check()
        self._waiting = asyncio.current_task()
        try:
            with self._on_loop():
                return await main
        except asyncio.CancelledError:
            if self.signal_name:
                self._critical = 0
                self.check()
            raise
        finally:
            self._waiting = None

    async def serving(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run the bot: the first stop (even one that came during start-up) drains, a second cuts the drain."""
        self._serving = asyncio.current_task()
        try:
            with self._on_loop():
                if self.signal_name:  # it came during start-up, before these handlers
                    log.info("stop requested", signal=self.signal_name)
                    self.drain.set()
                return await main()
        except asyncio.CancelledError:
            raise Interrupted("stopped by a second signal", "the drain was cut short",
                              "in-flight updates will be delivered again to the next poller") from None
        finally:
            self._serving = None

    @property
    def drain(self) -> asyncio.Event:
        """Set once the bot should stop taking updates and drain (made on first use, inside the bot's loop)."""
        if self._drain is None:
            self._drain = asyncio.Event()
        return self._drain

    @contextmanager
    def _on_loop(self) -> Iterator[None]:
        """This object handles the stop signals on the running loop, then gives them back."""
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request, sig)
        try:
            yield
        finally:
            for sig, old in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, old)


_current: ContextVar[StopSignal | None] = ContextVar("bot_stop_signal", default=None)


@contextmanager
def command_stop_signal() -> Iterator[StopSignal]:
    """Make one StopSignal current for a whole command (the boundary does this)."""
    token = _current.set(StopSignal())
    try:
        yield current()
    finally:
        _current.reset(token)


def current() -> StopSignal:
    """The running command's StopSignal; a fresh one for a library call made outside any command."""
    found = _current.get()
    return found if found is not None else StopSignal()


def run_guarded(main: Callable[[StopSignal], Awaitable[T]]) -> T:
    """asyncio.run with the command's StopSignal guarding the work, for synchronous entry points."""
    stop = current()

    async def runner() -> T:
        return await stop.waiting(main(stop))

    return asyncio.run(runner())
