"""The ways a test runs a task: in this process (run_task) or as a real `invoke` process (run_invoke, spawn)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_task(task: Callable[[], None]) -> int:
    """Run a task function of bot.commands.cli inside its error boundary, in this process; return its exit code."""
    try:
        task()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def run_invoke(project_dir: Path, *args: str, env: dict[str, str], timeout: float = 120,
               cwd: Path | None = None, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` against a project directory as a real subprocess."""
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(project_dir), *args],
                          cwd=cwd or project_dir, env=env, capture_output=True, text=True, timeout=timeout,
                          input=input_text)


def spawn(project: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `invoke ARGS` in a project copy without waiting for it."""
    return subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(project), *args], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class EventStream:
    """Collects a running process's JSON log lines on a thread, so a test can wait for one."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The events with this name seen so far."""
        found = []
        for line in list(self.lines):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    def wait_for(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """Block until the process logs this event (fails if it exits or the time runs out first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            if self.process.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} event; stderr so far:\n{self.stderr()[-2000:]}")

    def stderr(self) -> str:
        """All of stderr once the process ended (or what arrived so far)."""
        if self.process.poll() is not None:
            self._thread.join(5)
        return "".join(self.lines)
