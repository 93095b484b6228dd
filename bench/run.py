"""Start-up and throughput benchmark of the toolkit, side by side with plain Alembic and a bare aiogram bot.

Run: .venv/bin/python bench/run.py [--quick | --full] [--only G1,G2,...]   (docs/PERFORMANCE.md)

Every comparison runs A and B as whole processes, interleaved (ABAB… with the order flipped every round)
after warm-up runs, so that machine noise hits both sides alike; only the ratio of the medians is judged.
M1 interleaves batches through two dispatchers inside one process instead (bench/update_cost.py): what it
measures, the cost of a middleware per update, is too small to see across processes.
Projects are temporary copies of this one with N generated revisions (G8: a history with every kind of object,
tests.support.revisions.rich_history, squashed into a baseline); databases are throwaway SQLite files and
PostgreSQL databases on 127.0.0.1:5432. Nothing here is part of the pytest suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fake_telegram import FakeTelegram  # noqa: E402 - after the path set-up above

PY = sys.executable
TOKEN = "123456789:AAH1benchtokenvalue-abcdefghijklmnop"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TOOLKIT_VARIABLES = ("ENV", "DATABASE_URL", "BOT_TOKEN", "TELEGRAM_API_URL", "LOG_LEVEL", "LOG_FORMAT",
                     "TELEGRAM_PACING", "MIGRATE_ON_START", "HEALTH_PORT", "WEBHOOK_URL", "PYTHONDONTWRITEBYTECODE")


@dataclass(frozen=True)
class Mode:
    """How many rounds each comparison gets."""

    rounds: int
    warmup: int
    start_pairs: int
    empty_rounds: tuple[tuple[int, int], ...]  # (revisions, rounds) for migrate-from-empty
    updates: int
    throughput_rounds: int


QUICK = Mode(rounds=7, warmup=1, start_pairs=15, empty_rounds=((100, 3), (1000, 2)), updates=200,
             throughput_rounds=3)
FULL = Mode(rounds=21, warmup=2, start_pairs=25, empty_rounds=((100, 7), (1000, 5)), updates=1000,
            throughput_rounds=5)


@dataclass
class Result:
    """One goal's verdict line."""

    goal: str
    what: str
    a: list[float]
    b: list[float]
    limit: float | None  # ratio A/B must be <= limit (None: informational or a boolean check)
    unit: str = "ms"
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.a) / statistics.median(self.b) if self.a and self.b else float("nan")

    def verdict(self) -> bool | None:
        if self.passed is not None:
            return self.passed
        return None if self.limit is None else self.ratio <= self.limit


RESULTS: list[Result] = []


# -- processes and timing ------------------------------------------------------------------------------------
def clean_env(**variables: str) -> dict[str, str]:
    """This machine's environment minus the toolkit's variables, plus the given ones."""
    env = {key: value for key, value in os.environ.items() if key not in TOOLKIT_VARIABLES}
    env.update(variables)
    return env


def run_timed(command: list[str] | str, env: dict[str, str], cwd: Path) -> float:
    """Wall milliseconds of one whole process; a failing process stops the benchmark with its stderr."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
                          shell=isinstance(command, str))
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{command} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed


def interleave(a: Callable[[], float], b: Callable[[], float], rounds: int, warmup: int,
               before: Callable[[], None] | None = None) -> tuple[list[float], list[float]]:
    """Warm both up, then alternate AB / BA so drift and noise fall on both sides equally."""
    for _ in range(warmup):
        for side in (a, b):
            if before:
                before()
            side()
    first: list[float] = []
    second: list[float] = []
    for index in range(rounds):
        order = ((a, first), (b, second)) if index % 2 == 0 else ((b, second), (a, first))
        for side, bucket in order:
            if before:
                before()
            bucket.append(side())
    return first, second


def invoke(project: Path, *args: str) -> list[str]:
    return [PY, "-m", "invoke", "--search-root", str(project), *args]


def alembic(ini: Path, *args: str) -> list[str]:
    return [PY, "-m", "alembic", "-c", str(ini), *args]


# -- projects ------------------------------------------------------------------------------------------------
REVISION = '''"""bench step {rev}"""
import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("bench_{rev}", sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String(50)))


def downgrade() -> None:
    op.drop_table("bench_{rev}")
'''

PLAIN_INI = """[alembic]
script_location = %(here)s
version_locations = {versions}
path_separator = os
sqlalchemy.url = {url}
{extra}
[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


def make_project(base: Path, revisions: int) -> Path:
    """A copy of this project whose history is the two real revisions plus generated ones, N in all."""
    target = base / f"toolkit_{revisions}"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # bot/ and alembic/ hold no data, .env or backups
    for name in ("bot", "alembic"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("alembic.ini", "tasks.py"):
        shutil.copy2(ROOT / name, target / name)
    versions = target / "alembic" / "versions"
    for path in versions.glob("*.py"):
        if not path.name.startswith(("0001_", "0002_")):
            path.unlink()
    for number in range(3, revisions + 1):
        rev, down = f"{number:04d}", f"{number - 1:04d}"
        (versions / f"{rev}_bench_step.py").write_text(REVISION.format(rev=rev, down=down))
    backdate(versions)
    return target


def backdate(versions: Path) -> None:
    """Give the revision files an earlier mtime, as in a checkout made earlier: outside the manifest's racy window."""
    past = time.time() - 120
    for path in versions.glob("*.py"):
        os.utime(path, (past, past))


def make_rich_project(base: Path, revisions: int) -> Path:
    """A project copy whose history is 0001, 0002 and tests.support's rich history (every kind of object, then
    column churn on one table), N revisions in all: its schema stays the same size whatever N is."""
    from tests.support.revisions import rich_history  # reads the checkout's revisions: G8 only

    target = make_project(base, 2).rename(base / f"rich_{revisions}")
    versions = target / "alembic" / "versions"
    for name, source in rich_history(revisions - 2):
        (versions / name).write_text(source)
    backdate(versions)
    return target


def make_plain(base: Path, project: Path, url: str, name: str) -> Path:
    """Plain Alembic: the baseline env.py and an ini pointing at the project's own revision files."""
    folder = base / f"plain_{name}"
    folder.mkdir()
    shutil.copy2(ROOT / "bench" / "plain_env.py", folder / "env.py")
    ini = folder / "alembic.ini"
    ini.write_text(PLAIN_INI.format(versions=project / "alembic" / "versions", url=url, extra=""))
    return ini


def drop_bytecode(project: Path) -> None:
    """Remove the revision files' bytecode, as in a read-only image built without it."""
    shutil.rmtree(project / "alembic" / "versions" / "__pycache__", ignore_errors=True)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its name and drops it afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(name: str, driver: str = "postgresql") -> str:
    return f"{driver}://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def cpu_ms(before: os.times_result) -> float:
    after = os.times()
    return (after.children_user - before.children_user + after.children_system - before.children_system) * 1000


# -- goals ---------------------------------------------------------------------------------------------------
def goal_list(base: Path, mode: Mode) -> None:
    """G1: `invoke --list` against Invoke's own on a trivial tasks file; no migration task imports aiogram."""
    project = make_project(base / "g1", 2)
    trivial = base / "g1" / "trivial"
    trivial.mkdir()
    (trivial / "tasks.py").write_text("from invoke import task\n\n" + "".join(
        f"\n@task\ndef job{n}(c):\n    \"\"\"Job {n}.\"\"\"\n" for n in range(5)))
    env = clean_env()
    a, b = interleave(lambda: run_timed(invoke(project, "--list"), env, project),
                      lambda: run_timed(invoke(trivial, "--list"), env, trivial), mode.rounds, mode.warmup)
    RESULTS.append(Result("G1", "invoke --list / Invoke's own --list (5 trivial tasks)", a, b, 1.3))
    database = base / "g1" / "bot.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{database}")
    heavy = []
    for task in ("migrate", "status", "history", "review", "migrate"):
        done = subprocess.run([PY, "-X", "importtime", *invoke(project, task)[1:]], env=env, cwd=project,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"invoke {task} exited {done.returncode}:\n{done.stderr[-3000:]}")
        if "aiogram" in done.stderr:  # -X importtime names every module imported
            heavy.append(task)
    RESULTS.append(Result("G1", "migrate/status/history/review import aiogram", [], [], None, passed=not heavy,
                          note=f"imported by: {sorted(set(heavy))}" if heavy else "none imports aiogram"))


def goal_noop(base: Path, mode: Mode) -> None:
    """G2: no-op migrate at 1,000 revisions vs plain Alembic (with and without bytecode), and 1,000 vs 10."""
    big = make_project(base / "g2", 1000)
    small = make_project(base / "g2s", 10)
    envs = {}
    for project in (big, small):
        database = project / "bench.db"
        envs[project] = clean_env(DATABASE_URL=f"sqlite:///{database}")
        run_timed(invoke(project, "migrate"), envs[project], project)
    plain_db = base / "g2" / "plain.db"
    plain = make_plain(base / "g2", big, f"sqlite:///{plain_db}", "sqlite")
    run_timed(alembic(plain, "upgrade", "head"), clean_env(), base)
    toolkit = lambda: run_timed(invoke(big, "migrate"), envs[big], big)  # noqa: E731
    baseline = lambda: run_timed(alembic(plain, "upgrade", "head"), clean_env(), base)  # noqa: E731
    a, b = interleave(toolkit, baseline, mode.rounds, mode.warmup)
    RESULTS.append(Result("G2", "no-op migrate, 1,000 revisions, SQLite / plain alembic upgrade head", a, b, 0.8))
    cold = clean_env(PYTHONDONTWRITEBYTECODE="1")
    a, b = interleave(lambda: run_timed(invoke(big, "migrate"), {**envs[big], **cold}, big),
                      lambda: run_timed(alembic(plain, "upgrade", "head"), cold, base),
                      mode.rounds, mode.warmup, before=lambda: drop_bytecode(big))
    RESULTS.append(Result("G2", "same, revision files without bytecode cache", a, b, 0.8))
    a, b = interleave(toolkit, lambda: run_timed(invoke(small, "migrate"), envs[small], small),
                      mode.rounds, mode.warmup)
    RESULTS.append(Result("G2", "no-op migrate at 1,000 revisions / at 10", a, b, 1.05))
    with postgres_database() as name:
        env = clean_env(DATABASE_URL=pg_url(name))
        run_timed(invoke(big, "migrate"), env, big)
        with postgres_database() as plain_name:
            plain_pg = make_plain(base / "g2", big, pg_url(plain_name, "postgresql+psycopg"), "pg")
            run_timed(alembic(plain_pg, "upgrade", "head"), clean_env(), base)
            a, b = interleave(lambda: run_timed(invoke(big, "migrate"), env, big),
                              lambda: run_timed(alembic(plain_pg, "upgrade", "head"), clean_env(), base),
                              mode.rounds, mode.warmup)
    RESULTS.append(Result("G2", "no-op migrate, 1,000 revisions, PostgreSQL / plain alembic", a, b, 0.8))


def time_to_first_poll(command: list[str] | str, env: dict[str, str], cwd: Path,
                       server: FakeTelegram) -> tuple[float, float]:
    """Milliseconds from launch to the first getUpdates, and the process's peak RSS in MiB."""
    seen = len(server.calls_to("getUpdates"))
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               shell=isinstance(command, str), start_new_session=True)
    try:
        while len(server.calls_to("getUpdates")) <= seen:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited {process.returncode}: {process.stderr.read()[-3000:]}")
            if time.monotonic() - started > 60:
                raise RuntimeError(f"{command}: no getUpdates within 60 s")
            time.sleep(0.002)
        first = server.calls_to("getUpdates")[seen].at
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _pid, _status, usage = os.wait4(process.pid, 0)
        process.returncode = 0
        process.stderr.close()  # type: ignore[union-attr]
    return (first - started) * 1000, usage.ru_maxrss / 1024


def goal_start(base: Path, mode: Mode) -> None:
    """G3: `invoke start` at head to the first getUpdates vs a bare aiogram + SQLAlchemy bot."""
    project = make_project(base / "g3", 1000)
    database = project / "bench.db"
    with FakeTelegram() as server:
        toolkit_env = clean_env(ENV="production", DATABASE_URL=f"sqlite:///{database}", BOT_TOKEN=TOKEN,
                                TELEGRAM_API_URL=server.url, LOG_FORMAT="json")
        run_timed(invoke(project, "migrate"), toolkit_env, project)
        bare_env = clean_env(DATABASE_URL=f"sqlite+aiosqlite:///{database}", BOT_TOKEN=TOKEN,
                             TELEGRAM_API_URL=server.url)
        plain = make_plain(base / "g3", project, f"sqlite:///{database}", "start")
        bare = [PY, str(ROOT / "bench" / "bare_bot.py")]
        common = f"{PY} -m alembic -c {plain} upgrade head && exec {PY} {ROOT / 'bench' / 'bare_bot.py'}"
        memory: dict[str, list[float]] = {"toolkit": [], "bare": []}

        def toolkit() -> float:
            elapsed, peak = time_to_first_poll(invoke(project, "start"), toolkit_env, project, server)
            memory["toolkit"].append(peak)
            return elapsed

        def floor() -> float:
            elapsed, peak = time_to_first_poll(bare, bare_env, project, server)
            memory["bare"].append(peak)
            return elapsed

        a, b = interleave(toolkit, floor, mode.start_pairs, mode.warmup)
        RESULTS.append(Result("G3", "invoke start → first getUpdates, at head, 1,000 revisions / bare bot", a, b,
                              1.0))
        RESULTS.append(Result("G3", "peak RSS invoke start / bare bot", memory["toolkit"], memory["bare"], 1.1,
                              unit="MiB"))
        c, d = interleave(toolkit, lambda: time_to_first_poll(common, bare_env, project, server)[0],
                          max(3, mode.rounds // 2), 0)
        RESULTS.append(Result("G3", "invoke start / `alembic upgrade head && bare bot`", c, d, 1.0))
        direct = [PY, "-m", "bot"]  # the same start-up sequence without Invoke in front of it
        e, f = interleave(lambda: time_to_first_poll(direct, toolkit_env, project, server)[0], floor, mode.rounds, 0)
        RESULTS.append(Result("G3", "(reference) `python -m bot` → first getUpdates / bare bot", e, f, None,
                              note="Invoke's own start-up excluded"))


def goal_empty(base: Path, mode: Mode) -> None:
    """G4: migrate from an empty PostgreSQL database vs the floor: plain Alembic per step as an Invoke task, with
    the least a journal and a review add (plain Alembic committing each step on its own: information)."""
    for revisions, rounds in mode.empty_rounds:
        folder = base / f"g4_{revisions}"
        project = make_project(folder, revisions)
        ini = make_plain(folder, project, "postgresql+psycopg://unused", "plain")
        a, b = interleave(partial(migrate_empty, project), partial(plain_empty, project, ini, True), rounds, 1)
        RESULTS.append(Result("G4", f"(information) migrate from empty PostgreSQL, {revisions:,} revisions, lock + "
                              "journal + review on / plain alembic with transaction_per_migration=True", a, b, None,
                              note="both commit each step on its own"))
        a, b = interleave(partial(plain_empty, project, ini, True, True), partial(plain_empty, project, ini, True),
                          rounds, 1)
        RESULTS.append(Result("G4", f"(information) {revisions:,} revisions, the floor: plain alembic per step as an "
                              "Invoke task, plus the least a journal and a review add (a row in each step's "
                              "transaction, every statement parsed) / plain alembic per step", a, b, None,
                              note="what the goal's own obligations and Invoke cost, written the obvious way"))
        a, b = interleave(partial(migrate_empty, project), partial(plain_empty, project, ini, True, True), rounds, 1)
        RESULTS.append(Result("G4", f"migrate from empty PostgreSQL, {revisions:,} revisions / the floor", a, b, 1.10,
                              note="what the toolkit adds beyond the obligations; see docs/PERFORMANCE.md"))
    env = clean_env()
    a, b = interleave(lambda: run_timed([PY, "-c", "import invoke"], env, base),
                      lambda: run_timed([PY, "-c", "pass"], env, base), mode.rounds, mode.warmup)
    RESULTS.append(Result("G4", "(information) a Python process importing Invoke / an empty Python process", a, b,
                          None, note=f"Invoke's own import: +{statistics.median(a) - statistics.median(b):,.0f} ms "
                                     "in every `invoke` command"))
    empty_references(project, ini, revisions, rounds)  # the last, largest size


def empty_references(project: Path, ini: Path, revisions: int, rounds: int) -> None:
    """G4's information rows at the largest size: against Alembic's single transaction, and the server alone."""
    a, b = interleave(partial(migrate_empty, project), partial(plain_empty, project, ini), rounds, 1)
    RESULTS.append(Result("G4", f"(information) migrate from empty PostgreSQL, {revisions:,} revisions / plain "
                          "alembic's default, all steps in one transaction", a, b, None,
                          note="different semantics: a failure there undoes every step"))
    a, b = interleave(partial(plain_empty, project, ini, True), partial(plain_empty, project, ini), rounds, 1)
    plain_ms = statistics.median(b)
    RESULTS.append(Result("G4", f"(information) plain alembic at {revisions:,} revisions, "
                          "transaction_per_migration=True / its default, one transaction", a, b, None,
                          note="what per-step transactions cost Alembic itself"))
    a, b = interleave(partial(driver_floor, True, revisions), partial(driver_floor, False, revisions), rounds, 1)
    extra = statistics.median(a) - statistics.median(b)
    RESULTS.append(Result(
        "G4", f"(information) PostgreSQL and psycopg alone, {revisions:,} steps: each in its own transaction with a "
        "journal row / all in one transaction", a, b, None,
        note=f"the server's share of the per-step design: +{extra:,.0f} ms = {extra / plain_ms:.0%} of plain "
             "alembic's time"))


def migrate_empty(project: Path) -> float:
    """`invoke migrate` on a fresh PostgreSQL database."""
    with postgres_database() as name:
        return run_timed(invoke(project, "migrate"), clean_env(DATABASE_URL=pg_url(name)), project)


FLOOR_TASKS = '''"""G4's floor: Alembic's upgrade as an Invoke task, in-process (as Flask-Migrate wraps it)."""

from alembic import command
from alembic.config import Config
from invoke import task


@task
def upgrade(c):
    """alembic upgrade head."""
    command.upgrade(Config("alembic.ini"), "head")
'''


def plain_empty(project: Path, ini: Path, per_step: bool = False, floor: bool = False) -> float:
    """Plain `alembic upgrade head` on a fresh PostgreSQL database (per_step: transaction_per_migration=True).

    floor: run as an Invoke task (bench/run.py's FLOOR_TASKS), with a journal row per step and every statement
    parsed (bench/plain_env.py's least_journal_and_review).
    """
    extra = ("transaction_per_migration = true\n" if per_step else "") + ("journal_and_parse = true\n" if floor else "")
    with postgres_database() as name:
        ini.write_text(PLAIN_INI.format(versions=project / "alembic" / "versions",
                                        url=pg_url(name, "postgresql+psycopg"), extra=extra))
        if not floor:
            return run_timed(alembic(ini, "upgrade", "head"), clean_env(), ini.parent)
        (ini.parent / "tasks.py").write_text(FLOOR_TASKS)
        try:
            return run_timed(invoke(ini.parent, "upgrade"), clean_env(), ini.parent)
        finally:
            (ini.parent / "tasks.py").unlink()


def migrate_empty_sqlite(project: Path) -> float:
    """`invoke migrate` on a SQLite file that does not exist yet (removed afterwards)."""
    database = project.parent / f"fresh_{uuid.uuid4().hex[:10]}.db"
    try:
        return run_timed(invoke(project, "migrate"), clean_env(DATABASE_URL=f"sqlite:///{database}"), project)
    finally:
        for path in database.parent.glob(database.name + "*"):  # the file and any -journal / -wal beside it
            path.unlink()


def plain_empty_sqlite(project: Path, ini: Path) -> float:
    """Plain `alembic upgrade head` (its default, one transaction) on a SQLite file that does not exist yet."""
    database = ini.parent / f"fresh_{uuid.uuid4().hex[:10]}.db"
    ini.write_text(PLAIN_INI.format(versions=project / "alembic" / "versions", url=f"sqlite:///{database}", extra=""))
    try:
        return run_timed(alembic(ini, "upgrade", "head"), clean_env(), ini.parent)
    finally:
        for path in database.parent.glob(database.name + "*"):
            path.unlink()


def driver_floor(per_step: bool, steps: int) -> float:
    """What the server and driver alone take for the steps' statements, with no Python between them."""
    import psycopg

    with postgres_database() as name, psycopg.connect(**PG, dbname=name) as connection:
        connection.execute("CREATE TABLE version (num varchar(32) NOT NULL)")
        connection.execute("INSERT INTO version VALUES ('0000')")
        connection.execute("CREATE TABLE journal (id serial PRIMARY KEY, revision varchar(64), status varchar(16), "
                           "finished_at timestamp, duration_ms float)")
        if per_step:  # as the toolkit runs: only the last commit waits for the disk
            connection.execute("SET synchronous_commit TO off")
        connection.commit()
        started = time.perf_counter()
        for number in range(steps):
            connection.execute(f"CREATE TABLE bench_{number} (id integer PRIMARY KEY, note varchar(50))")
            connection.execute("UPDATE version SET num = %s", (f"{number:04d}",))
            if per_step:
                connection.execute("INSERT INTO journal (revision, status, finished_at, duration_ms) "
                                   "VALUES (%s, 'applied', now(), 1.0) RETURNING id", (f"{number:04d}",)).fetchone()
                connection.commit()
        connection.execute("RESET synchronous_commit")
        connection.commit()
        return (time.perf_counter() - started) * 1000


def goal_baseline(base: Path, mode: Mode) -> None:
    """G8: a fresh database through the baseline (`invoke squash` once, then `invoke migrate`) vs plain Alembic
    replaying the same revision files from empty, on PostgreSQL and SQLite; and flat: 1,000 revisions vs 10."""
    rounds = dict(mode.empty_rounds)
    projects: dict[int, Path] = {}
    squashed: dict[int, float] = {}
    for revisions in (10, 100, 1000):
        project = make_rich_project(base / f"g8_{revisions}", revisions)
        # The baselines of the server of DATABASE_URL (here PostgreSQL) and SQLite; run_timed stops on a failure.
        squashed[revisions] = run_timed(invoke(project, "squash"), clean_env(DATABASE_URL=pg_url("postgres")),
                                        project)
        if not (project / "alembic" / "baseline" / "manifest.json").is_file():
            raise RuntimeError(f"invoke squash exited 0 but wrote no alembic/baseline/manifest.json in {project}")
        projects[revisions] = project
    for backend, migrate, plain in (("PostgreSQL", migrate_empty, plain_empty),
                                    ("SQLite", migrate_empty_sqlite, plain_empty_sqlite)):
        for revisions, limit in ((1000, 0.15), (100, 0.5)):
            project = projects[revisions]
            # Plain Alembic reads the same versions folder and knows nothing of alembic/baseline: every revision.
            ini = make_plain(project.parent, project, "unused://", backend.lower())
            a, b = interleave(partial(migrate, project), partial(plain, project, ini), rounds[revisions], 1)
            RESULTS.append(Result("G8", f"fresh database through the baseline, {revisions:,} revisions, {backend} / "
                                  "plain alembic upgrade head from empty", a, b, limit))
    # What no `invoke migrate` can go below: the process importing what any migration on PostgreSQL needs.
    ini = make_plain(projects[1000].parent, projects[1000], "unused://", "floor")
    a, b = interleave(lambda: run_timed([PY, "-c", "import invoke, alembic.command, sqlalchemy.ext.asyncio, psycopg"],
                                        clean_env(), base),
                      partial(plain_empty, projects[1000], ini), rounds[1000], 1)
    RESULTS.append(Result("G8", "(information) a process importing Invoke, Alembic, SQLAlchemy's asyncio and psycopg, "
                          "running nothing / plain alembic upgrade head from empty, 1,000 revisions, PostgreSQL", a, b,
                          None, note="the least any `invoke migrate` on PostgreSQL costs against this history"))
    # Both sides take one baseline step, so this row is cheap: it gets the rounds of the smaller sizes.
    a, b = interleave(partial(migrate_empty, projects[1000]), partial(migrate_empty, projects[10]), rounds[100], 1)
    RESULTS.append(Result("G8", "fresh database through the baseline at 1,000 revisions / at 10", a, b, 1.1,
                          note="PostgreSQL; invoke squash took " + ", ".join(
                              f"{squashed[n] / 1000:.1f} s at {n:,}" for n in sorted(squashed)) + " (once each)"))


def goal_concurrent(base: Path, mode: Mode) -> None:
    """G5: 8 `invoke migrate` at once on one empty PostgreSQL database: all succeed; wall vs one vs CPU floor."""
    project = make_project(base / "g5", 100)
    cores = os.cpu_count() or 1
    singles: list[float] = []
    cpu: list[float] = []
    for _ in range(max(2, mode.warmup + 1)):
        with postgres_database() as name:
            before = os.times()
            singles.append(run_timed(invoke(project, "migrate"), clean_env(DATABASE_URL=pg_url(name)), project))
            cpu.append(cpu_ms(before))
    walls: list[float] = []
    failures = 0
    for _ in range(max(1, mode.throughput_rounds - 1)):
        with postgres_database() as name:
            env = clean_env(DATABASE_URL=pg_url(name))
            started = time.perf_counter()
            processes = [subprocess.Popen(invoke(project, "migrate"), env=env, cwd=project,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(8)]
            codes = [process.wait(600) for process in processes]
            walls.append((time.perf_counter() - started) * 1000)
            for process in processes:
                process.stderr.close()  # type: ignore[union-attr]
            failures += sum(1 for code in codes if code != 0)
    floor = 8 * statistics.median(cpu) / cores
    RESULTS.append(Result("G5", "8 concurrent migrates on empty PostgreSQL: all exit 0", [], [], None,
                          passed=failures == 0,
                          note=f"failures {failures}; wall {statistics.median(walls):.0f} ms = "
                               f"{statistics.median(walls) / statistics.median(singles):.2f}× one process "
                               f"({statistics.median(singles):.0f} ms), "
                               f"{statistics.median(walls) / floor:.2f}× CPU floor ({floor:.0f} ms = 8 × "
                               f"{statistics.median(cpu):.0f} ms CPU / {cores} cores)"))
    with postgres_database() as name:
        ini = make_plain(base / "g5", project, pg_url(name, "postgresql+psycopg"), "concurrent")
        processes = [subprocess.Popen(alembic(ini, "upgrade", "head"), env=clean_env(), cwd=base,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(8)]
        plain_failures = sum(1 for process in processes if process.wait(600) != 0)
    RESULTS.append(Result("G5", "(reference) 8 concurrent plain alembic upgrade head", [], [], None,
                          note=f"{plain_failures} of 8 failed"))


PEER_TOKEN = "987654321:AAH1benchpeertokenvalue-abcdefghijk"


@contextmanager
def polling(command: list[str], env: dict[str, str], cwd: Path, server: FakeTelegram, token: str) -> Iterator[None]:
    """A bot process polling the fake Bot API with `token`, stopped with SIGTERM on the way out."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        server.wait_for("getUpdates", token=token, timeout=60)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def batch_rate(server: FakeTelegram, token: str, text: str, updates: int, users: Iterator[int]) -> float:
    """Updates per second of one batch: push `updates` messages, wait for as many replies."""
    done = len(server.calls_to("sendMessage", token))
    started = time.monotonic()
    for _ in range(updates):
        server.push_message(token, text, user_id=next(users))
    server.wait_for("sendMessage", token=token, count=done + updates, timeout=300)
    return updates / (time.monotonic() - started)


def goal_throughput(base: Path, mode: Mode) -> None:
    """G6: /start (its database write + reply) through `invoke start` vs the templates' way (bench/peer_bot.py)."""
    project = make_project(base / "g6", 2)
    users = (10_000 + number % 200 for number in range(10_000_000))  # a returning crowd: later /starts UPDATE
    for backend in ("sqlite", "postgresql"):
        with FakeTelegram() as server, postgres_database() as name:
            url = f"sqlite:///{project / 'bench.db'}" if backend == "sqlite" else pg_url(name)
            # Pacing off: it holds replies to Telegram's own limits (30 messages/s), which the peer ignores.
            toolkit_env = clean_env(ENV="production", DATABASE_URL=url, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=server.url,
                                    LOG_LEVEL="WARNING", TELEGRAM_PACING="false")
            run_timed(invoke(project, "migrate"), toolkit_env, project)
            async_url = (f"sqlite+aiosqlite:///{project / 'bench.db'}" if backend == "sqlite"
                         else pg_url(name, "postgresql+psycopg"))
            peer_env = clean_env(DATABASE_URL=async_url, BOT_TOKEN=PEER_TOKEN, TELEGRAM_API_URL=server.url)
            toolkit: list[float] = []
            peer: list[float] = []
            plain_reply: list[float] = []
            with polling(invoke(project, "start"), toolkit_env, project, server, TOKEN), \
                    polling([PY, str(ROOT / "bench" / "peer_bot.py")], peer_env, project, server, PEER_TOKEN):
                for token in (TOKEN, PEER_TOKEN):  # warm-up: registers the crowd, warms both processes
                    batch_rate(server, token, "/start", mode.updates, users)
                for index in range(mode.throughput_rounds):
                    sides = [(TOKEN, toolkit), (PEER_TOKEN, peer)]
                    for token, bucket in sides if index % 2 == 0 else sides[::-1]:
                        bucket.append(batch_rate(server, token, "/start", mode.updates, users))
                    plain_reply.append(batch_rate(server, TOKEN, "/help", mode.updates, users))
        # Higher is better: the ratio is toolkit / peer, and must reach 1.0.
        result = Result("G6", f"updates/s /start (database write + reply), {backend}: invoke start / peer bot "
                        "(bench/peer_bot.py: session middleware, ORM select + insert/update, commit)", toolkit, peer,
                        None, unit="upd/s", note="goal: ratio ≥ 1.0")
        result.passed = result.ratio >= 1.0
        RESULTS.append(result)
        RESULTS.append(Result("G6", f"(information) updates/s invoke start, {backend}: /start (write + reply) / "
                              "/help (reply only)", toolkit, plain_reply, None, unit="upd/s",
                              note="what the database write costs"))


def wait_for_line(path: Path, text: str, timeout: float = 60) -> None:
    """Wait until a process's log file holds `text` (a replica's `standing by`, say)."""
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {text!r} in {path} within {timeout:g} s:\n{path.read_text()[-3000:]}")
        time.sleep(0.02)


def goal_rolling(base: Path, mode: Mode) -> None:
    """G7: rolling restart of two polling replicas under a stream of updates: the hand-over gap, none twice or lost."""
    project = make_project(base / "g7", 2)
    restarts = 10
    with FakeTelegram() as server, postgres_database() as name:
        env = clean_env(ENV="production", DATABASE_URL=pg_url(name), BOT_TOKEN=TOKEN, TELEGRAM_API_URL=server.url,
                        LOG_FORMAT="json", SHUTDOWN_TIMEOUT="5")
        run_timed(invoke(project, "migrate"), env, project)
        replicas: list[tuple[subprocess.Popen[bytes], Path]] = []

        def launch(role: str) -> None:
            log_file = base / "g7" / f"replica-{len(replicas)}.log"
            with log_file.open("wb") as sink:
                replicas.append((subprocess.Popen(invoke(project, "start"), env=env, cwd=project,
                                                  stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True),
                                 log_file))
            wait_for_line(log_file, f'"event": "{role}"')

        pushed: list[int] = []
        streaming = threading.Event()

        def stream() -> None:  # one /start from a new user every ~100 ms, as long as the restarts last
            while not streaming.wait(0.1):
                pushed.append(20_000 + len(pushed))
                server.push_message(TOKEN, "/start", user_id=pushed[-1])

        launch("leader elected")
        launch("standing by")
        pusher = threading.Thread(target=stream, daemon=True)
        pusher.start()
        gaps: list[float] = []
        try:
            for _ in range(restarts):
                leader, _log = replicas[-2]
                time.sleep(0.5)  # a few updates in flight around each restart
                stopped = time.monotonic()
                os.killpg(leader.pid, signal.SIGTERM)
                # A new leader checks for a leftover webhook first, then polls; the old one only confirms (timeout 0).
                check = server.wait_for("getWebhookInfo", timeout=30, predicate=lambda call, t=stopped: call.at > t)
                polls = server.wait_for("getUpdates", timeout=30, predicate=lambda call, t=check[0].at: call.at > t
                                        and float(call.params.get("timeout", 0) or 0) > 0)
                gaps.append((polls[0].at - stopped) * 1000)
                leader.wait(30)
                launch("standing by")
        finally:
            streaming.set()
            pusher.join(5)
            for process, _log in replicas:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(30)
        replies_wanted = set(pushed)
        deadline = time.monotonic() + 30
        while {int(call.params["chat_id"]) for call in server.calls_to("sendMessage")} < replies_wanted:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        replied = [int(call.params["chat_id"]) for call in server.calls_to("sendMessage")]
    twice = sorted({chat for chat in replied if replied.count(chat) > 1})
    lost = sorted(replies_wanted - set(replied))
    worst = max(gaps)
    RESULTS.append(Result("G7", f"rolling restart, 2 polling replicas on PostgreSQL, {restarts} restarts: SIGTERM "
                          "to the leader → the standby's first getUpdates, worst (each: "
                          f"{', '.join(f'{gap:.0f}' for gap in gaps)} ms)", [worst], [], None, passed=worst <= 300,
                          note="goal: ≤ 300 ms"))
    RESULTS.append(Result("G7", f"same run: {len(pushed)} updates, one every 100 ms: none handled twice, none lost",
                          [], [], None, passed=not twice and not lost,
                          note=f"handled twice: {twice or 'none'}; lost: {lost or 'none'}"))


def without_review(project: Path) -> Path:
    """The same project with the migration review switched off, for the review's own cost (bench only)."""
    module = project / "bot" / "migrate" / "run.py"
    text = module.read_text()
    marker = "def review_mode(config: Config) -> str:\n"
    assert marker in text, "review_mode moved: update bench/run.py"
    module.write_text(text.replace(marker, marker + "    return None  # type: ignore[return-value]  # bench: off\n"))
    return project


def goal_review(base: Path, mode: Mode) -> None:
    """R1: what the review's checks cost a migrate from an empty PostgreSQL database (issue: at most 5 %)."""
    revisions, rounds = mode.empty_rounds[-1]
    checked = make_project(base / "review_on", revisions)
    unchecked = without_review(make_project(base / "review_off", revisions))
    # The effect is a few per cent of a process that moves by more: enough pairs for the medians to settle.
    a, b = interleave(partial(migrate_empty, checked), partial(migrate_empty, unchecked), max(2 * rounds - 1, 5), 1)
    RESULTS.append(Result("R1", f"migrate from empty PostgreSQL, {revisions:,} revisions: review on / off", a, b,
                          1.05))


def update_cost(updates: int, rounds: int, *, count_instructions: bool = False) -> dict[str, dict[str, list[float]]]:
    """Run bench/update_cost.py (under callgrind when counting instructions) and return its measurements."""
    command = [PY, str(ROOT / "bench" / "update_cost.py"), str(updates), str(rounds)]
    if count_instructions:
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
                   *command, "--instructions"]
    output = subprocess.run(command, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=3600,
                            check=True)
    measured: dict[str, dict[str, list[float]]] = json.loads(output.stdout)
    return measured


def goal_observability(_base: Path, mode: Mode) -> None:
    """M1: per update, metrics + per-update log context / without them: instructions (callgrind) and CPU time."""
    timed = update_cost(mode.updates // 2, mode.rounds)
    counted = update_cost(30, 3, count_instructions=True) if shutil.which("valgrind") else None
    for text, what in (("/help", "reply only"), ("/start", "database write + reply")):
        if counted is not None:
            RESULTS.append(Result("M1", f"instructions per update {text} ({what}), metrics + log context / without "
                                  "(callgrind: other processes cannot move it)", counted[text]["with_instructions"],
                                  counted[text]["without_instructions"], 1.05, unit="instr"))
        RESULTS.append(Result("M1", f"CPU µs per update {text} ({what}), metrics + log context / without",
                              timed[text]["with_cpu"], timed[text]["without_cpu"], None if counted else 1.05,
                              unit="µs"))


GOALS = {"G1": goal_list, "G2": goal_noop, "G3": goal_start, "G4": goal_empty, "G5": goal_concurrent,
         "G6": goal_throughput, "G7": goal_rolling, "G8": goal_baseline, "M1": goal_observability, "R1": goal_review}


# -- report --------------------------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}–{max(values):,.0f}]"


def report(mode_name: str, seconds: float) -> str:
    """The results as a Markdown table, with the machine they came from."""
    load = os.getloadavg()
    lines = [f"mode {mode_name}; {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
             f"{platform.platform()}; load average before/after {LOAD_BEFORE[0]:.2f}/{load[0]:.2f}; "
             f"took {seconds:.0f} s",
             "",
             "| goal | comparison (A / B) | A median [min–max] | B median [min–max] | ratio | target | verdict |",
             "|---|---|---|---|---|---|---|"]
    for result in RESULTS:
        verdict = result.verdict()
        word = "PASS" if verdict else "FAIL" if verdict is False else "info"
        ratio = f"{result.ratio:.2f}" if result.a and result.b else "-"
        target = f"≤ {result.limit}" if result.limit is not None else (result.note.split(': ')[-1]
                                                                        if result.note.startswith("goal") else "")
        a = spread(result.a) + (f" {result.unit}" if result.a else "")
        b = spread(result.b) + (f" {result.unit}" if result.b else "")
        what = result.what + (f" — {result.note}" if result.note and not result.note.startswith("goal") else "")
        lines.append(f"| {result.goal} | {what} | {a} | {b} | {ratio} | {target} | {word} |")
    return "\n".join(lines)


LOAD_BEFORE = os.getloadavg()


def main() -> None:
    """Parse flags, run the chosen goals in a temporary folder, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more rounds, bigger batches (about 20 minutes)")
    parser.add_argument("--quick", action="store_true", help="few rounds (about 5 minutes); the default")
    parser.add_argument("--only", default=",".join(GOALS),
                        help=f"comma-separated goals out of {','.join(GOALS)} (default: all), e.g. G2,G8")
    options = parser.parse_args()
    mode = FULL if options.full else QUICK
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="toolkit-bench-") as folder:
        for name in options.only.split(","):
            done = len(RESULTS)
            GOALS[name.strip().upper()](Path(folder), mode)
            for result in RESULTS[done:]:  # as they come, so an interrupted run still leaves its rows
                print(f"{result.goal} {result.what}: ratio {result.ratio:.2f}, verdict {result.verdict()}",
                      file=sys.stderr, flush=True)
    print(report("full" if options.full else "quick", time.perf_counter() - started))
    failed = [result for result in RESULTS if result.verdict() is False]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
