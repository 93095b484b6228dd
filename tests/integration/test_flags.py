"""Task flags: one short letter per long flag everywhere, values checked with exit 2, closed pipes end quietly."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from invoke import Collection, Program
from sqlalchemy.engine import URL

from bot.commands import cli
from tests.support.commands import run_invoke, run_task
from tests.support.environment import clean_env, plain
from tests.support.logs import json_lines


def help_flags(name: str) -> dict[str, str]:
    """The long flag → short flag pairs that `invoke --help NAME` prints for one task of tasks.py."""
    import tasks

    out = io.StringIO()
    program = Program(namespace=Collection.from_module(tasks), binary="invoke")
    saved = sys.stdout
    sys.stdout = out
    try:
        program.run(["invoke", "--help", name], exit=False)
    finally:
        sys.stdout = saved
    pairs = {}
    for line in out.getvalue().splitlines():
        found = re.match(r"\s+(?:-(\w)(?:\s+\w+)?,\s+)?--([\w-]+)", line)
        if found:
            pairs[found.group(2)] = found.group(1) or ""
    return pairs


def test_short_flags_mean_the_same_in_every_task() -> None:
    """Across every task's --help, a short flag always stands for one long flag, and a long flag for one short."""
    import tasks

    long_of: dict[str, str] = {}
    short_of: dict[str, str] = {}
    for name in Collection.from_module(tasks).task_names:
        for long, short in help_flags(name).items():
            assert short_of.setdefault(long, short) == short, f"--{long} is -{short} in {name}, elsewhere not"
            if short:
                assert long_of.setdefault(short, long) == long, f"-{short} is --{long} in {name}, elsewhere not"
    assert long_of["s"] == "sql" and short_of["steps"] == "n" and short_of["to"] == "t"
    assert short_of["no-backup"] == "" and short_of["allow-destructive"] == "", "safeguard switches stay long-only"


@pytest.mark.parametrize(("task", "fragment"), [
    (lambda: cli.history(limit="x"), "--limit 'x' is not a whole number"),
    (lambda: cli.history(limit="-3"), "--limit -3 is not allowed"),
    (lambda: cli.rollback(steps="abc"), "--steps 'abc' is not a whole number"),
    (lambda: cli.rollback(steps="0"), "--steps 0 is not allowed"),
    (lambda: cli.rollback(to="0001; DROP"), "--to '0001; DROP' is not a revision"),
    (lambda: cli.migrate(to=" "), "--to is empty"),
    (lambda: cli.stamp(to="a b", yes=True), "--to 'a b' is not a revision"),
])
def test_bad_flag_values_exit_2_with_one_line(task: Callable[[], None], fragment: str, sqlite_url: URL,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A count or revision flag that makes no sense exits 2 with one line naming the flag, before any connection."""
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    assert run_task(task) == 2
    events = json_lines(capsys.readouterr().err)
    assert [event["event"] for event in events] == ["command failed"]
    assert fragment in str(events[0]["error"])
    assert not Path(str(sqlite_url.database)).parent.exists(), "nothing was created"


@pytest.mark.slow
def test_history_into_a_closed_pipe_ends_quietly(project: Path) -> None:
    """`invoke history --json` whose reader has gone (`| head -1`) exits 0 without a traceback."""
    env = clean_env()
    assert run_invoke(project, "migrate", env=env).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(project), "history", "--json"],
                               cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader goes away before the first line is written, as `head -1` does
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
