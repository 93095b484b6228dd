"""The table's `read by` column is true: each task, run for real, reads only settings the table says it reads."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from bot.commands import boundary, cli
from bot.settings.config import Config
from bot.settings.table import COMMANDS, SETTINGS
from tests.support.bots import sigterm_after
from tests.support.commands import run_task
from tests.support.environment import TOKEN, plain
from tests.support.fake_telegram import FakeTelegram
from tests.support.revisions import revisions_folder

FIELDS = frozenset(field.name for field in dataclasses.fields(Config)) - {"x_arguments"}
read: set[str] = set()
quiet = [0]  # > 0 while the boundary shows or registers the whole configuration (not a read by the task)


class RecordingConfig(Config):
    """A Config that notes each field the task's code reads (summary and secret registration aside)."""

    def __getattribute__(self, name: str) -> Any:
        # dataclasses.replace() copies every field: that is the copy's construction, not a read by the task.
        if name in FIELDS and not quiet[0] and not sys._getframe(1).f_code.co_filename.endswith("dataclasses.py"):
            read.add(name)
        return object.__getattribute__(self, name)

    def __post_init__(self) -> None:
        quiet[0] += 1
        try:
            super().__post_init__()
        finally:
            quiet[0] -= 1

    def summary(self) -> dict[str, object]:
        quiet[0] += 1
        try:
            return super().summary()
        finally:
            quiet[0] -= 1

    def secrets(self) -> tuple[str, ...]:
        quiet[0] += 1
        try:
            return super().secrets()
        finally:
            quiet[0] -= 1


def declared(command: str) -> set[str]:
    """The Config fields of the settings the table says this command reads."""
    return {setting.field for setting in SETTINGS if setting.field and command in setting.commands}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable[[], None]], set[str]]]:
    """Run a task in-process with a recording configuration; return the fields it read."""
    real = boundary.load_config

    def load(*args: Any, **kwargs: Any) -> Config:
        config = real(*args, **kwargs)
        return RecordingConfig(**{field.name: getattr(config, field.name) for field in dataclasses.fields(Config)})

    monkeypatch.setattr(boundary, "load_config", load)

    def run(task: Callable[[], None]) -> set[str]:
        read.clear()
        assert run_task(task) == 0
        return set(read)

    yield run


def test_every_task_reads_only_what_its_column_says(recorded: Callable[[Callable[[], None]], set[str]],
                                                    monkeypatch: pytest.MonkeyPatch, sqlite_url: URL,
                                                    tmp_path: Path, telegram: FakeTelegram) -> None:
    """migrate … doctor and start each read a subset of the fields of the settings listed for them."""
    ini = revisions_folder(tmp_path / "scripts")
    for name, value in {"DATABASE_URL": plain(sqlite_url), "ALEMBIC_CONFIG": str(ini), "BOT_TOKEN": TOKEN,
                        "TELEGRAM_API_URL": telegram.url, "BACKUP_DIR": str(tmp_path / "backups"),
                        "ADMIN_IDS": "11"}.items():
        monkeypatch.setenv(name, value)
    found = {"migrate": recorded(cli.migrate), "status": recorded(cli.status), "history": recorded(cli.history),
             "check": recorded(cli.check), "review": recorded(lambda: cli.review(start="base")),
             "doctor": recorded(cli.doctor), "stamp": recorded(lambda: cli.stamp(to="head", yes=True)),
             "accept-edit": recorded(lambda: cli.accept_edit("0001", "unchanged", yes=True)),
             "rollback": recorded(cli.rollback)}
    recorded(cli.migrate)
    found["rollback-base"] = recorded(lambda: cli.rollback_base(yes=True))
    backup = max((tmp_path / "backups").glob("*"), key=lambda path: path.stat().st_mtime_ns)
    recorded(cli.migrate)
    found["restore"] = recorded(lambda: cli.restore(str(backup), yes=True))
    found["revision"] = recorded(lambda: cli.revision("add settings"))
    (next((tmp_path / "scripts" / "versions").glob("*_add_settings.py"))).unlink()
    sigterm_after(lambda: telegram.wait_for("getUpdates", token=TOKEN, timeout=30))
    found["start"] = recorded(cli.start)
    found["squash"] = recorded(cli.squash)
    assert set(found) == set(COMMANDS)
    for command, fields in found.items():
        assert fields, f"{command} read no setting: the recording is broken"
        assert fields <= declared(command), f"{command} reads {sorted(fields - declared(command))} undeclared"
