"""One StopSignal for a whole `invoke start`, in-process: SIGTERM in each start-up phase ends it as documented.

`start` stopped by its first signal exits 0 ("stopped before polling" while starting up, "bot stopped" after a
drain); `migrate` stopped while it waits exits 8. The polling and draining phases are in test_drain.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot import signals, startup
from bot.commands import cli
from bot.signals import StopSignal
from tests.support.commands import run_task
from tests.support.database import revision_of
from tests.support.environment import TOKEN, free_port, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.logs import events_named
from tests.support.revisions import HEAD, NEXT, later, revision_source, revisions_folder


def environment(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """The variables of this start (the fixture has cleared the toolkit's own)."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def sigterm_in(seconds: float) -> threading.Thread:
    """SIGTERM this process after a while, from a thread."""
    thread = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    thread.start()
    return thread


def stopped_before_polling(err: str) -> str:
    """The reason start gave for stopping before the bot ran (failing when it did not say so)."""
    found = events_named(err, "stopped before polling")
    assert found, f"start did not stop before polling:\n{err[-2000:]}"
    assert not events_named(err, "polling started")
    return str(found[0]["reason"])


def test_sigterm_while_start_waits_for_the_database(monkeypatch: pytest.MonkeyPatch, telegram: FakeTelegram,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Waiting for a database that refuses connections, start stops at once with exit 0, not after the wait."""
    environment(monkeypatch, ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url,
                DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", DB_WAIT_TIMEOUT="60")
    timer = sigterm_in(1.0)
    started = time.monotonic()
    assert run_task(cli.start) == 0
    timer.join()
    err = capsys.readouterr().err
    assert time.monotonic() - started < 8, "start waited out DB_WAIT_TIMEOUT instead of stopping"
    assert events_named(err, "waiting for database")
    assert "stopped by SIGTERM" in stopped_before_polling(err)
    assert telegram.calls_to("getUpdates") == []


def test_sigterm_during_a_migration_step_of_start_lets_the_step_commit(
        monkeypatch: pytest.MonkeyPatch, sqlite_url: URL, tmp_path: Path, telegram: FakeTelegram,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A signal in the middle of a revision waits for it; the next revision never runs; start exits 0 unstarted."""
    signalling = revision_source("""
        op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)  # the signal is handled here, in the middle of the step
    """, 'op.drop_column("users", "nickname")', message="signals itself", header="import os, signal, time")
    after = revision_source('op.add_column("users", sa.Column("motto", sa.String(32), nullable=True))',
                            'op.drop_column("users", "motto")', message="never reached", revision=later(2),
                            down_revision=NEXT)
    ini = revisions_folder(tmp_path / "scripts", (f"{NEXT}_signals.py", signalling), (f"{later(2)}_after.py", after))
    environment(monkeypatch, ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url,
                DATABASE_URL=plain(sqlite_url), ALEMBIC_CONFIG=str(ini))
    assert run_task(cli.start) == 0
    err = capsys.readouterr().err
    assert [event["revision"] for event in events_named(err, "migration applied")][-1] == NEXT
    assert revision_of(sqlite_url) == NEXT, "the step that was running committed, and nothing after it ran"
    assert "stopped by SIGTERM" in stopped_before_polling(err)
    assert telegram.calls_to("getUpdates") == []


def test_sigterm_while_start_loads_aiogram(monkeypatch: pytest.MonkeyPatch, sqlite_url: URL,
                                           telegram: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    """A signal that lands while the bot's modules load is acted on right after: exit 0, the bot never polls."""
    real_loading = startup.loading_without_collection

    @contextmanager
    def loading_with_a_signal() -> Iterator[None]:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the import phase
        with real_loading():
            yield

    monkeypatch.setattr(startup, "loading_without_collection", loading_with_a_signal)
    environment(monkeypatch, ENV="production", BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url,
                DATABASE_URL=plain(sqlite_url))
    assert run_task(cli.start) == 0
    err = capsys.readouterr().err
    assert revision_of(sqlite_url) == HEAD, "the migration before the import completed"
    assert "stopped by SIGTERM" in stopped_before_polling(err)
    assert telegram.calls_to("getUpdates") == [] and telegram.calls_to("getMe") == []


def test_one_stop_signal_is_current_for_the_whole_command(monkeypatch: pytest.MonkeyPatch, sqlite_url: URL) -> None:
    """Inside a command every phase gets the same StopSignal; outside one, each call gets its own."""
    seen: list[StopSignal] = []

    def command(_config: object) -> None:
        seen.extend([signals.current(), signals.current()])

    from bot.commands.boundary import run

    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    run(command)
    run(command)
    assert seen[0] is seen[1] and seen[2] is seen[3], "one object for all of one command"
    assert seen[1] is not seen[2], "each command starts with no stop asked"
    assert signals.current() is not signals.current()
