"""Baselines on real databases: made from the history and proved equal, taken by fresh databases in one step,
re-checked for CI, and the covered files retired without stranding or half-migrating anyone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import pytest_alembic
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from pytest_alembic import tests as checks  # its checks, called here on a retired history (not collected)
from sqlalchemy.engine import URL

from alembic import command
from bot.commands import cli
from bot.data.engine import ensure_sqlite_folder
from bot.errors import ExitCode, Refused
from bot.migrate import api as migrations
from bot.migrate.baseline import squash as baseline
from bot.migrate.baseline.capture import differences
from bot.migrate.baseline.scratch import scratch_connection, scratch_database, sync_engine
from bot.migrate.baseline.store import load
from bot.migrate.graph import alembic_config
from bot.migrate.read.preview import render_sql
from bot.settings.config import Config
from tests.support.commands import run_task
from tests.support.database import query, revision_of
from tests.support.environment import plain
from tests.support.revisions import HEAD, SHIPPED, later, revision_source, revisions_folder, rich_history

RICH = 8  # revisions after the shipped ones: every kind of object, then column churn
TOP = later(RICH)


def rich_project(base: Path, *extra: tuple[str, str], total: int = RICH) -> Path:
    """An alembic.ini whose history is the shipped revisions plus the rich history (and extras)."""
    return revisions_folder(base / "project", *rich_history(total), *extra)


def baseline_steps(url: URL) -> list[tuple[str, dict[str, object]]]:
    """The journal's applied step rows that ran a baseline, with their details."""
    rows = query(url, "SELECT revision, details FROM toolkit_journal WHERE kind = 'step' AND status = 'applied'")
    found = [(str(revision), json.loads(details)) for revision, details in rows if details]
    return [(revision, details) for revision, details in found if "baseline" in details]


def difference_from_history(config: Config, url: URL, revision: str) -> list[str]:
    """How a database differs from one migrated through the history to `revision` on the same server."""
    engine = sync_engine(url)
    try:
        with scratch_connection(url) as history, engine.connect() as built:
            baseline.replay(config, history, revision)
            return differences(history, built)
    finally:
        engine.dispose()


def test_fresh_database_takes_the_baseline_in_one_journaled_step(any_url: URL, tmp_path: Path) -> None:
    """Squash proves the baseline equal on this server; a fresh database then runs one step and equals the history."""
    config = Config(database_url=any_url, alembic_ini=rich_project(tmp_path))
    report = baseline.squash(config)
    assert report.equal and report.written is not None and report.revision == TOP
    made = load(report.written)
    assert made is not None and [item.revision for item in made.covered] == [*SHIPPED, *(later(n) for n in
                                                                                         range(1, RICH + 1))]
    assert {build.dialect for build in report.builds} >= {"sqlite"} and len(made.dialects) == len(report.builds)

    migrated = migrations.upgrade(config)
    assert [step.revision for step in migrated.steps] == [TOP] and migrated.after == (TOP,)
    [(revision, details)] = baseline_steps(any_url)
    kind = next(build.dialect for build in report.builds if build.dialect != "sqlite" or
                any_url.get_backend_name() == "sqlite")
    assert revision == TOP and details["baseline"] == {"revision": TOP, "covers": len(made.covered),
                                                       "first": SHIPPED[0], "dialect": kind,
                                                       "checksum": made.dialects[kind]}
    assert query(any_url, "SELECT name, price FROM plans ORDER BY name") == [("free", 0), ("pro", 12.5),
                                                                              ("team", 29)]
    assert difference_from_history(config, any_url, TOP) == []
    again = migrations.upgrade(config)  # now a database like any other: nothing to do, no edit reported
    assert again.steps == () and again.after == (TOP,)


def test_revisions_after_the_baseline_run_as_usual_and_older_databases_use_the_files(
        postgres_url: URL, tmp_path: Path) -> None:
    """A baseline below head: a fresh database runs it then the later files; one at 0002 goes on through files."""
    ini = rich_project(tmp_path)
    older = Config(database_url=postgres_url, alembic_ini=ini)
    migrations.upgrade(older, to=HEAD)
    squashed_to = later(5)
    assert baseline.squash(older, squashed_to).equal
    report = migrations.upgrade(older)
    assert [step.revision for step in report.steps] == [later(n) for n in range(1, RICH + 1)]
    assert baseline_steps(postgres_url) == []
    with scratch_database(postgres_url) as fresh_url:
        fresh = Config(database_url=fresh_url, alembic_ini=ini)
        steps = [step.revision for step in migrations.upgrade(fresh).steps]
        assert steps == [squashed_to, *(later(n) for n in range(6, RICH + 1))]
        assert difference_from_history(fresh, fresh_url, TOP) == []


def trigger_revision() -> tuple[str, str]:
    """A revision making a trigger (and, on PostgreSQL, its function) on the plans table, on each database."""
    upgrade = '''
        backend = op.get_bind().dialect.name
        if backend == "postgresql":
            op.execute("CREATE FUNCTION touch() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql")
            op.execute("CREATE TRIGGER plans_touch BEFORE UPDATE ON plans FOR EACH ROW EXECUTE FUNCTION touch()")
        elif backend == "sqlite":
            op.execute("CREATE TRIGGER plans_touch AFTER UPDATE ON plans BEGIN SELECT 1; END")
        else:
            op.execute("CREATE TRIGGER plans_touch BEFORE UPDATE ON plans FOR EACH ROW SET NEW.note = NEW.note")
    '''
    revision = later(RICH + 1)
    return f"{revision}_trigger.py", revision_source(upgrade, "pass", message="a trigger", revision=revision,
                                                     down_revision=TOP)


def test_an_object_it_cannot_carry_is_refused_by_name_unless_left_out(any_url: URL, tmp_path: Path) -> None:
    """A trigger refuses the squash naming it and its revision, exit 6, nothing written; --leave-out writes it."""
    backend = any_url.get_backend_name()
    ini = rich_project(tmp_path, trigger_revision())
    config = Config(database_url=any_url, alembic_ini=ini)
    with pytest.raises(Refused) as refused:
        baseline.squash(config)
    line = refused.value.line()
    assert refused.value.exit_code == ExitCode.REFUSED
    assert f"trigger plans_touch on plans (made by revision {later(RICH + 1)}) cannot be carried" in line
    assert "--leave-out 'trigger plans_touch on plans'" in line
    assert not (ini.parent / "baseline").exists()
    if backend == "postgresql":
        assert "function touch" in line
        leave = ["trigger plans_touch on plans", "function touch"]
    else:
        leave = ["trigger plans_touch on plans"]
    report = baseline.squash(config, leave_out=leave)
    assert report.equal and report.written is not None
    written = load(report.written)
    assert written is not None and list(written.left_out) == sorted(leave)


def test_check_catches_an_edited_revision_and_a_hand_edited_baseline(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`squash --check` passes on a fresh baseline and exits 7 naming an edited old revision or baseline file."""
    ini = rich_project(tmp_path)
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("ALEMBIC_CONFIG", str(ini))
    assert run_task(lambda: cli.squash()) == 0
    assert run_task(lambda: cli.squash(check=True)) == 0
    assert "sqlite: 17 statement(s), equal to the history" in capsys.readouterr().out

    seed = next((ini.parent / "versions").glob(f"{later(1)}_*.py"))
    original = seed.read_text()
    seed.write_text(original.replace('"price": 29', '"price": 31'))
    assert run_task(lambda: cli.squash(check=True)) == ExitCode.CHECK_FAILED
    out = capsys.readouterr()
    assert f"revision {later(1)} ({seed.name}) was edited after baseline {TOP} was made" in out.out
    assert "sqlite: rows plans: differs" in out.out
    assert f"baseline {TOP} differs from the history in 2 place(s)" in out.err

    seed.write_text(original)
    statements = ini.parent / "baseline" / "sqlite.json"
    statements.write_text(statements.read_text().replace("'team', 29", "'team', 30"))
    assert run_task(lambda: cli.squash(check=True)) == ExitCode.CHECK_FAILED
    assert f"baseline {TOP}: sqlite.json was changed after it was made" in capsys.readouterr().out


def test_sql_preview_of_a_fresh_database_shows_the_baseline(sqlite_url: URL, tmp_path: Path) -> None:
    """`migrate --sql` on a database with no revision prints the baseline's statements, not the covered files'."""
    config = Config(database_url=sqlite_url, alembic_ini=rich_project(tmp_path))
    baseline.squash(config)
    script = render_sql(config, "upgrade", "head")
    assert "CREATE TABLE plans" in script and "INSERT INTO plans" in script
    assert script.count("INSERT INTO alembic_version") == 1 and f"'{TOP}'" in script


def commit_all(folder: Path) -> None:
    """Make the project folder a git repository with everything committed."""
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.invalid",
                                                  "commit", "-qm", "baseline"]):
        subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_retired_files_leave_a_standin_that_toolkit_and_plain_alembic_run(any_url: URL, tmp_path: Path) -> None:
    """After --retire a fresh database (toolkit or plain alembic) takes the stand-in; rollback-base undoes it."""
    ini = rich_project(tmp_path)
    config = Config(database_url=any_url, alembic_ini=ini)
    assert baseline.squash(config).equal
    with pytest.raises(Refused, match="not all in the checkout's commit"):
        baseline.retire(config)
    commit_all(ini.parent)
    retired, deleted, standin = baseline.retire(config)
    assert len(deleted) == len(SHIPPED) + RICH and standin.name == f"{TOP}_baseline.py"
    assert sorted(path.name for path in (ini.parent / "versions").glob("*.py")) == [standin.name]
    assert retired.retired_in is not None and retired.retired_in in standin.read_text()

    report = migrations.upgrade(config)
    assert [step.revision for step in report.steps] == [TOP]
    assert [revision for revision, _details in baseline_steps(any_url)] == [TOP]
    with pytest.raises(Refused, match="would undo baseline"):
        migrations.rollback(config, steps=1)
    migrations.rollback_to_base(config, confirm=lambda plan: True)
    assert revision_of(any_url) is None and "plans" not in sa.inspect(sync_engine(any_url)).get_table_names()

    plain_alembic = AlembicConfig(str(ini))
    plain_alembic.attributes["toolkit_config"] = config  # what env.py would read from .env
    command.upgrade(plain_alembic, "head")
    assert revision_of(any_url) == TOP
    assert difference_from_history_files(tmp_path, any_url) == []


def difference_from_history_files(tmp_path: Path, url: URL) -> list[str]:
    """How a database differs from one migrated through a fresh copy of the (unretired) rich history."""
    config = Config(database_url=url, alembic_ini=rich_project(tmp_path / "again"))
    return difference_from_history(config, url, TOP)


def test_a_database_stranded_behind_retired_files_is_refused_with_one_line(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A database at a covered revision whose file is gone: exit 6 naming the revision and the commit; untouched."""
    ini = rich_project(tmp_path)
    config = Config(database_url=sqlite_url, alembic_ini=ini)
    migrations.upgrade(config, to=later(2))
    baseline.squash(config)
    commit_all(ini.parent)
    retired, _deleted, _standin = baseline.retire(config)
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("ALEMBIC_CONFIG", str(ini))
    assert run_task(lambda: cli.migrate()) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert f"the database is at revision {later(2)}, which baseline {TOP} covers and whose file is retired" in err
    assert f"git checkout {retired.retired_in}" in err and "Traceback" not in err
    assert revision_of(sqlite_url) == later(2)


def test_history_and_status_show_what_the_baseline_covers(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """history marks each covered revision and names the baseline; status and both --json documents carry it."""
    ini = rich_project(tmp_path)
    baseline.squash(Config(database_url=sqlite_url, alembic_ini=ini))
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("ALEMBIC_CONFIG", str(ini))
    assert run_task(lambda: cli.migrate()) == 0
    capsys.readouterr()
    assert run_task(lambda: cli.history()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(TOP) and lines[1].endswith("(current, head, in baseline)")
    assert lines[-1] == (f"baseline {TOP}: covers {len(SHIPPED) + RICH} revision(s), {SHIPPED[0]} … {TOP}; "
                         "fresh databases take it in one step")
    assert run_task(lambda: cli.history(as_json=True)) == 0
    document = json.loads(capsys.readouterr().out)
    assert all(entry["in_baseline"] for entry in document["revisions"])
    assert document["baseline"]["revision"] == TOP and document["baseline"]["retired_in"] is None
    assert run_task(lambda: cli.status()) == 0
    assert f"baseline {TOP}: covers" in capsys.readouterr().out
    assert run_task(lambda: cli.status(as_json=True, check=True)) == 0
    assert json.loads(capsys.readouterr().out)["baseline"]["covers"][-1] == TOP


def test_start_without_migrating_refuses_a_stranded_database(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MIGRATE_ON_START=false: a database behind retired files gets the stranded line, not "unknown revision"."""
    ini = rich_project(tmp_path)
    config = Config(database_url=sqlite_url, alembic_ini=ini, migrate_on_start=False)
    migrations.upgrade(config, to=later(1))
    baseline.squash(config)
    commit_all(ini.parent)
    baseline.retire(config)
    with pytest.raises(Refused, match=f"which baseline {TOP} covers and whose file is retired"):
        migrations.run_migrations_if_needed(config)


def test_pytest_alembic_checks_and_the_stairway_pass_on_a_retired_history(any_url: URL, tmp_path: Path) -> None:
    """pytest-alembic's single-head, upgrade and up/down checks, and every step up and down, with the stand-in."""
    ini = rich_project(tmp_path)
    config = Config(database_url=any_url, alembic_ini=ini)
    baseline.squash(config, later(5))
    commit_all(ini.parent)
    baseline.retire(config)
    ensure_sqlite_folder(any_url)
    engine = sync_engine(any_url)
    try:
        with pytest_alembic.runner(pytest_alembic.Config(alembic_config=alembic_config(config)), engine) as runner:
            checks.test_single_head_revision(runner)
            checks.test_upgrade(runner)
            checks.test_up_down_consistency(runner)
            runner.migrate_down_to("base")
            for revision in [later(n) for n in range(5, RICH + 1)]:  # the stairway: up, down, up again
                runner.migrate_up_one()
                runner.migrate_down_one()
                runner.migrate_up_one()
                assert revision_of(any_url) == revision
    finally:
        engine.dispose()


def test_squashing_again_without_a_server_drops_that_kind_and_says_so(postgres_url: URL, tmp_path: Path) -> None:
    """A second squash given no PostgreSQL server removes postgresql.json instead of keeping an unproved one."""
    ini = rich_project(tmp_path)
    first = baseline.squash(Config(database_url=postgres_url, alembic_ini=ini))
    assert {build.dialect for build in first.builds} == {"postgresql", "sqlite"}
    second = baseline.squash(Config(database_url=URL.create("sqlite+aiosqlite", database=str(tmp_path / "x.db")),
                                    alembic_ini=ini), later(4))
    assert second.dropped == ("postgresql",) and any("postgresql: dropped" in line for line in second.lines())
    written = load(ini.parent / "baseline")
    assert written is not None and set(written.dialects) == {"sqlite"} and written.revision == later(4)
    assert not (ini.parent / "baseline" / "postgresql.json").exists()
    with scratch_database(postgres_url) as fresh_url:  # PostgreSQL now replays the files, and still arrives
        steps = migrations.upgrade(Config(database_url=fresh_url, alembic_ini=ini)).steps
        assert [step.revision for step in steps] == [*SHIPPED, *(later(n) for n in range(1, RICH + 1))]


def test_a_hand_edited_baseline_is_refused_before_a_fresh_database_changes(
        sqlite_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """migrate on a fresh database whose baseline file no longer matches its manifest: exit 6, no table made."""
    ini = rich_project(tmp_path)
    baseline.squash(Config(database_url=sqlite_url, alembic_ini=ini))
    statements = ini.parent / "baseline" / "sqlite.json"
    statements.write_text(statements.read_text().replace("'team', 29", "'team', 0"))
    monkeypatch.setenv("DATABASE_URL", plain(sqlite_url))
    monkeypatch.setenv("ALEMBIC_CONFIG", str(ini))
    assert run_task(lambda: cli.migrate()) == ExitCode.REFUSED
    assert f"baseline {TOP}: sqlite.json was changed after it was made" in capsys.readouterr().err
    assert query(sqlite_url, "SELECT name FROM sqlite_master WHERE name = 'plans'") == []
    assert revision_of(sqlite_url) is None
