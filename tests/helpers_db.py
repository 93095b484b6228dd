"""Small helpers the database tests share: read the real schema, spawn real task processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from bot.data.engine import connect_options
from bot.data.urls import sync_url
from bot.paths import PROJECT_ROOT as ROOT


def shipped_revisions() -> tuple[str, ...]:
    """The repository's own revision ids, oldest first: tests compare with these, never with a count of them."""
    from bot.migrate.graph import alembic_config, load_scripts
    from bot.settings import Config

    return tuple(reversed([script.revision for script in load_scripts(alembic_config(Config())).walk_revisions()]))


def later(steps: int) -> str:
    """The id of the revision a test adds `steps` places above the shipped head (numbered like `invoke revision`)."""
    return f"{int(HEAD) + steps:04d}"


SHIPPED = shipped_revisions()
HEAD = SHIPPED[-1]
NEXT = later(1)


def revision_source(upgrade: str, downgrade: str, *, message: str, revision: str = NEXT,
                    down_revision: str | None = HEAD, header: str = "") -> str:
    """The text of a revision file around the given upgrade()/downgrade() bodies (and extra module lines)."""
    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip(), "    ")

    return (f'"""{message}\n\nRevision ID: {revision}\nRevises: {down_revision or ""}\n"""\n'
            f"import sqlalchemy as sa\nfrom alembic import op\n{textwrap.dedent(header).strip()}\n\n"
            f"revision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{body(upgrade)}\n\n\ndef downgrade():\n{body(downgrade)}\n")


def revisions_folder(base: Path, *extra: tuple[str, str]) -> Path:
    """An alembic.ini whose history is the shipped revisions plus (file name, source) extras, for in-process runs.

    The project's env.py and template are used as they are; only the versions folder is this test's own, so
    revisions can be added without touching the checkout (pass the ini as Config.alembic_ini).
    """
    versions = base / "versions"
    versions.mkdir(parents=True)
    for shipped in sorted((ROOT / "alembic" / "versions").glob("*.py")):
        (versions / shipped.name).write_text(shipped.read_text())
    for name, source in extra:
        (versions / name).write_text(source)
    ini = base / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {ROOT / 'alembic'}\nversion_locations = {versions}\n"
                   "path_separator = os\n")
    return ini


def add_revision(project: Path, source: str, name: str = f"{NEXT}_extra.py") -> None:
    """Put an extra revision file into the project copy."""
    (project / "alembic" / "versions" / name).write_text(source)


# Fails after a first change, so a failed migration and its rollback (or not) can be observed.
BROKEN_REVISION = revision_source("""
    op.add_column("users", sa.Column("nickname", sa.String(32)))
    op.execute("SELECT * FROM table_that_does_not_exist")
""", 'op.drop_column("users", "nickname")', message="broken on purpose")


def add_slow_revision(project: Path, seconds: float, *, revision: str = NEXT, down_revision: str = HEAD,
                      column: str = "nickname") -> None:
    """Give a project copy a revision that adds users.<column> and then sleeps (SLOW_REVISION_SECONDS wins)."""
    add_revision(project, revision_source(f"""
        op.add_column("users", sa.Column("{column}", sa.String(32), nullable=True))
        sleep = "pg_sleep" if op.get_bind().dialect.name == "postgresql" else "SLEEP"
        seconds = float(os.environ.get("SLOW_REVISION_SECONDS", "{seconds}"))
        op.execute(f"SELECT {{sleep}}({{seconds}})")
    """, f'op.drop_column("users", "{column}")', message="slow on purpose", revision=revision,
        down_revision=down_revision, header="import os\nreviewed_destructive = None"), f"{revision}_slow.py")


def sync_engine(url: URL) -> sa.Engine:
    """A plain synchronous engine on the test's database, for looking at the real schema."""
    driver_url, connect_args = connect_options(sync_url(url))
    return sa.create_engine(driver_url, connect_args=connect_args, poolclass=sa.pool.NullPool)


def query(url: URL, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the test's database, committing, and return its rows."""
    engine = sync_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema(url: URL) -> dict[str, list[str]]:
    """Every table of the database with its column names."""
    engine = sync_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            return {table: sorted(column["name"] for column in inspector.get_columns(table))
                    for table in inspector.get_table_names()}
    finally:
        engine.dispose()


def versions(url: URL) -> list[str]:
    """The rows of alembic_version ([] when the table does not exist)."""
    if "alembic_version" not in schema(url):
        return []
    return sorted(row[0] for row in query(url, "SELECT version_num FROM alembic_version"))


def revision_of(url: URL) -> str | None:
    """The single revision alembic_version holds (None at base)."""
    found = versions(url)
    return found[0] if found else None


def run_task(task: Callable[[], None]) -> int:
    """Run a task function of bot.cli inside its error boundary, in this process; return its exit code."""
    try:
        task()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


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
