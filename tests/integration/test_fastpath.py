"""The no-op fast path says "at head" exactly when Alembic's own `upgrade head` would do nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from bot.data.urls import sync_url
from bot.migrate import fastpath, journal, manifest
from bot.migrate.graph import steps_between
from bot.migrate.journal import checksums
from bot.migrate.journal.origin import this_process
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.environment import clean_env, plain
from tests.support.logs import events_named

Graph = dict[str, tuple[str, ...]]  # revision -> its down revisions

LINEAR: Graph = {"r1": (), "r2": ("r1",), "r3": ("r2",), "r4": ("r3",), "r5": ("r4",)}
MERGED: Graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ("d",)}
TWO_HEADS: Graph = {"a": (), "b": ("a",), "c": ("a",)}


def revision_file(revision: str, down: tuple[str, ...]) -> str:
    """A minimal revision script."""
    down_revision = None if not down else down[0] if len(down) == 1 else down
    return (f'"""{revision}"""\nrevision = {revision!r}\ndown_revision = {down_revision!r}\n'
            "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n")


def make_scripts(root: Path, graph: Graph) -> Path:
    """An alembic.ini and a versions folder holding the graph; returns the ini path."""
    versions = root / "alembic" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    (root / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/alembic\npath_separator = os\n")
    for revision, down in graph.items():
        (versions / f"{revision}_step.py").write_text(revision_file(revision, down))
    age(versions)
    return root / "alembic.ini"


def age(versions: Path, seconds: int = 60) -> None:
    """Backdate the files, as a checkout made earlier would be (outside the racy window)."""
    past = os.stat(versions).st_mtime - seconds
    for path in versions.glob("*.py"):
        os.utime(path, (past, past))


def set_database(url: URL, ini: Path, revisions: tuple[str, ...], *, unfinished: bool = False) -> None:
    """Give the database these alembic_version rows and a journal whose checksum digest is the files' (as a full
    run at head records it), with a running row if asked."""
    engine = create_engine(sync_url(url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("DELETE FROM alembic_version"))
        for revision in revisions:
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
    with engine.connect() as connection:
        journal.ensure_schema(connection)
        files = checksums.files_of(checksums.scripts_of(ScriptDirectory.from_config(AlembicConfig(str(ini)))))
        checksums.record_digest(connection, this_process("production"), files)
        if unfinished:
            journal.committed(connection, lambda conn: journal.insert_entry(
                conn, kind=journal.STEP, status=journal.RUNNING, who=this_process("production"),
                started_at=journal.now(), description="test", revision=revisions[0] if revisions else None,
                direction="upgrade", transactional=False))
    engine.dispose()


def alembic_says_at_head(ini: Path, current: tuple[str, ...]) -> bool:
    """Alembic's own answer: `upgrade head` resolves and has no step to run."""
    scripts = ScriptDirectory.from_config(AlembicConfig(str(ini)))
    try:
        return len(scripts.get_heads()) == 1 and not list(steps_between(scripts, "upgrade", "head", current))
    except Exception:  # noqa: BLE001 - several heads or an unknown revision: Alembic refuses, so not "at head"
        return False


def assert_agrees(ini: Path, url: URL, current: tuple[str, ...]) -> None:
    """The fast path's verdict equals Alembic's for this database state."""
    set_database(url, ini, current)
    answer = fastpath.at_head(Config(database_url=url), ini=ini)
    assert (answer is not None) == alembic_says_at_head(ini, current), current
    if answer is not None:
        assert set(answer) == set(current)


@pytest.mark.parametrize("graph", [LINEAR, MERGED, TWO_HEADS], ids=["linear", "branched-merged", "two-heads"])
def test_agrees_with_alembic_on_every_state(tmp_path: Path, sqlite_url: URL, graph: Graph) -> None:
    """For each graph and every database state (each revision, branch pairs, unknown, empty) both answers match."""
    ini = make_scripts(tmp_path, graph)
    sqlite_url_file = Path(sqlite_url.database or "")
    sqlite_url_file.parent.mkdir(parents=True)
    states: list[tuple[str, ...]] = [(), ("zzz",), *((rev,) for rev in graph)]
    states += [("b", "c"), ("d", "c")] if "c" in graph else [("r5", "r4")]
    for current in states:
        assert_agrees(ini, sqlite_url, current)
    assert manifest.manifest_path(ini).is_file()


def test_revision_added_or_edited_after_the_last_run(tmp_path: Path, sqlite_url: URL) -> None:
    """A new head, an edited down_revision (same size, mtime put back) or a removed file is never missed."""
    ini = make_scripts(tmp_path, LINEAR)
    Path(sqlite_url.database or "").parent.mkdir(parents=True)
    config = Config(database_url=sqlite_url)
    set_database(sqlite_url, ini, ("r5",))
    assert fastpath.at_head(config, ini=ini) == ("r5",)
    versions = tmp_path / "alembic" / "versions"

    (versions / "r6_step.py").write_text(revision_file("r6", ("r5",)))
    assert fastpath.at_head(config, ini=ini) is None and not alembic_says_at_head(ini, ("r5",))
    assert fastpath.script_heads(ini) == ("r6",), "the heads the bot's health check serves follow the files"
    set_database(sqlite_url, ini, ("r6",))
    assert fastpath.at_head(config, ini=ini) == ("r6",)

    # Racy edit: same size, same mtime, written right after the manifest: the content hash catches it.
    target = versions / "r6_step.py"
    facts = target.stat()
    target.write_text(revision_file("r7", ("r5",)))
    os.utime(target, ns=(facts.st_atime_ns, facts.st_mtime_ns))
    assert target.stat().st_size == facts.st_size
    assert fastpath.at_head(config, ini=ini) is None and not alembic_says_at_head(ini, ("r6",))
    assert_agrees(ini, sqlite_url, ("r7",))

    target.unlink()
    assert_agrees(ini, sqlite_url, ("r5",))
    assert_agrees(ini, sqlite_url, ("r7",))


def test_graph_read_by_a_full_run_is_stored_only_for_unchanged_files(tmp_path: Path) -> None:
    """The graph a full migration read is kept for the next start, but never when a file changed meanwhile."""
    ini = make_scripts(tmp_path, LINEAR)
    stored = manifest.manifest_path(ini)
    scripts = ScriptDirectory.from_config(AlembicConfig(str(ini)))
    files = manifest.snapshot(scripts, ini)
    (tmp_path / "alembic" / "versions" / "r6_step.py").write_text(revision_file("r6", ("r5",)))
    assert manifest.remember(scripts, files) is None
    assert manifest.read_manifest(stored) is None
    scripts = ScriptDirectory.from_config(AlembicConfig(str(ini)))
    kept = manifest.remember(scripts, manifest.snapshot(scripts, ini))
    assert kept is not None and kept.heads == ("r6",) and manifest.read_manifest(stored) == kept


def test_dangling_link_among_revision_files_is_fingerprinted_not_fatal(tmp_path: Path, sqlite_url: URL) -> None:
    """A link to a missing file in versions/ is part of the fingerprint; its target appearing later shows."""
    ini = make_scripts(tmp_path, LINEAR)
    versions = tmp_path / "alembic" / "versions"
    (versions / "notes.txt").symlink_to(tmp_path / "missing-notes.txt")
    built = manifest.build(ini)
    assert built is not None and built.heads == ("r5",)
    Path(sqlite_url.database or "").parent.mkdir(parents=True)
    assert_agrees(ini, sqlite_url, ("r5",))
    (tmp_path / "missing-notes.txt").write_text("now there")
    assert manifest.fingerprint(ini, built.version_dirs) != built.fingerprint


def test_manifest_missing_corrupt_or_unwritable(tmp_path: Path, sqlite_url: URL,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or garbled manifest is rebuilt; where none can be written the answer is still right."""
    ini = make_scripts(tmp_path, LINEAR)
    Path(sqlite_url.database or "").parent.mkdir(parents=True)
    config = Config(database_url=sqlite_url)
    set_database(sqlite_url, ini, ("r5",))
    stored = manifest.manifest_path(ini)
    assert not stored.exists()
    assert fastpath.at_head(config, ini=ini) == ("r5",)
    assert json.loads(stored.read_text())["heads"] == ["r5"]

    stored.write_text("{not json")
    assert fastpath.at_head(config, ini=ini) == ("r5",)
    assert json.loads(stored.read_text())["heads"] == ["r5"]

    stored.write_text(json.dumps({"fingerprint": {}, "heads": ["r5"]}))  # ours once, now incomplete
    assert fastpath.at_head(config, ini=ini) == ("r5",)

    stored.unlink()
    stored.parent.rmdir()
    stored.parent.write_text("a file where the cache folder should be")  # any OSError: read-only image alike
    capsys.readouterr()
    assert fastpath.at_head(config, ini=ini) == ("r5",)
    assert events_named(capsys.readouterr().err, "revision manifest not written")
    set_database(sqlite_url, ini, ("r4",))
    assert fastpath.at_head(config, ini=ini) is None


def test_unfinished_journal_or_unreadable_database_declines(tmp_path: Path, sqlite_url: URL) -> None:
    """A running/half-applied journal row, a missing database file or a missing journal all mean "not sure"."""
    ini = make_scripts(tmp_path, LINEAR)
    Path(sqlite_url.database or "").parent.mkdir(parents=True)
    config = Config(database_url=sqlite_url)
    assert fastpath.at_head(config, ini=ini) is None
    assert not Path(sqlite_url.database or "").exists(), "the fast path must never create the database"
    set_database(sqlite_url, ini, ("r5",), unfinished=True)
    assert fastpath.at_head(config, ini=ini) is None
    engine = create_engine(sync_url(sqlite_url), poolclass=NullPool)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {journal.JOURNAL_TABLE}"))
    engine.dispose()
    assert fastpath.at_head(config, ini=ini) is None


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_server_backends_through_the_sync_driver(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """PostgreSQL and MariaDB answer through psycopg / PyMySQL the same way as Alembic."""
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "mariadb_url")
    ini = make_scripts(tmp_path, MERGED)
    for current in [("e",), ("d",), ("b", "c"), ("zzz",)]:
        assert_agrees(ini, url, current)


@pytest.mark.slow
def test_noop_migrate_and_start_check_never_import_alembic(project: Path, tmp_path: Path) -> None:
    """Right after a real migrate, the start check and `invoke migrate` at head load neither Alembic nor asyncio."""
    env = clean_env(DATABASE_URL=plain(URL.create("sqlite", database=str(tmp_path / "bot.db"))), LOG_FORMAT="json",
                    PYTHONPYCACHEPREFIX=str(sys.pycache_prefix))  # where this process looks for the manifest too
    assert run_invoke(project, "migrate", env=env).returncode == 0
    assert manifest.read_manifest(manifest.manifest_path(project / "alembic.ini")) is not None
    probe = ("import sys; from bot.commands.boundary import run; from bot.migrate.api import run_migrations_if_needed;"
             "run(run_migrations_if_needed);"
             "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('alembic', 'aiogram'))}),"
             "'sqlalchemy.ext.asyncio' in sys.modules)")
    checked = subprocess.run([sys.executable, "-c", probe], cwd=project, env=env, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "[] False"
    again = run_invoke(project, "migrate", env=env)
    assert again.returncode == 0, again.stderr
    assert events_named(again.stderr, "nothing to migrate")[0]["fast_path"] is True
