"""Applied revisions edited afterwards are noticed (status, history, fast path); production refuses until accepted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.errors import CheckFailed, Refused
from bot.migrate import api as migrations
from bot.migrate import fastpath
from bot.migrate.journal import checksums
from bot.migrate.journal.repair import accept_edit
from bot.migrate.read.overview import check, read_overview
from bot.settings.config import Config
from tests.support.commands import run_invoke
from tests.support.database import query
from tests.support.environment import clean_env, plain
from tests.support.logs import events_named
from tests.support.revisions import NEXT, SHIPPED, add_revision, revision_source, revisions_folder

NICKNAME = revision_source('op.add_column("users", sa.Column("nickname", sa.String(32), nullable=True))',
                           'op.drop_column("users", "nickname")', message="add nickname")


def history_with_nickname(base: Path) -> tuple[Path, Path]:
    """An ini whose history ends with the next revision (add nickname), and that revision's file."""
    ini = revisions_folder(base, (f"{NEXT}_nickname.py", NICKNAME))
    return ini, base / "versions" / f"{NEXT}_nickname.py"


def test_code_edit_refused_in_production_until_accepted(postgres_url: URL, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Editing an applied revision's code: status shows it, production refuses (exit 6), accept-edit clears it."""
    ini, path = history_with_nickname(tmp_path)
    production = Config(database_url=postgres_url, alembic_ini=ini, env="production")
    migrations.upgrade(production)
    path.write_text(path.read_text().replace("sa.String(32)", "sa.String(40)"))

    found = read_overview(production)
    assert [item.revision for item in found.edited] == [NEXT]
    with pytest.raises(CheckFailed, match=f"edited after it was applied: {NEXT}"):
        check(found)
    with pytest.raises(Refused) as refused:
        migrations.upgrade(production)
    assert refused.value.exit_code == 6 and NEXT in refused.value.line() and "accept-edit" in refused.value.line()
    with pytest.raises(Refused, match="edited after they were applied"):
        migrations.run_migrations_if_needed(Config(database_url=postgres_url, alembic_ini=ini, env="production",
                                                   migrate_on_start=False))
    migrations.upgrade(Config(database_url=postgres_url, alembic_ini=ini))  # development: a warning only
    assert [record for record in caplog.records if "applied revision edited" in record.getMessage()]

    report = accept_edit(production, NEXT, "length raised for new databases only", confirm=None)
    assert report.entry_id is not None
    details = query(postgres_url, "SELECT details FROM toolkit_journal WHERE id = :id", id=report.entry_id)[0][0]
    assert json.loads(details)["reason"] == "length raised for new databases only"
    assert not read_overview(production).edited
    assert migrations.upgrade(production).after == (NEXT,)
    assert accept_edit(production, NEXT, "again", confirm=None).entry_id is None, "nothing left to accept"


def test_comment_and_blank_line_edits_are_not_edits(sqlite_url: URL, tmp_path: Path) -> None:
    """Comments, blank lines and trailing spaces added to an applied revision leave its code checksum alone."""
    ini, path = history_with_nickname(tmp_path)
    production = Config(database_url=sqlite_url, alembic_ini=ini, env="production")
    migrations.upgrade(production)
    applied = checksums.file_checksum(path)
    text = path.read_text().replace("def upgrade():", "# reviewed on 2026-12-01\n\n\ndef upgrade():   ")
    path.write_text(text.replace('nullable=True))', 'nullable=True))  # shown on /me'))
    recorded = json.loads(query(sqlite_url, f"SELECT details FROM toolkit_journal WHERE revision = '{NEXT}' AND "
                                            "kind = 'step'")[0][0])["checksum"]
    assert recorded["file"] == applied != checksums.file_checksum(path), "the step row has the file as it ran"
    assert not read_overview(production).edited
    assert migrations.upgrade(production).after == (NEXT,)


def test_fast_path_needs_the_journal_to_confirm_the_files(sqlite_url: URL, tmp_path: Path) -> None:
    """At head the fast path answers only while the journal's digest matches the files; an edit sends it to Alembic."""
    ini, path = history_with_nickname(tmp_path)
    config = Config(database_url=sqlite_url, alembic_ini=ini)
    migrations.upgrade(config)
    assert fastpath.at_head(config) == (NEXT,)
    path.write_text(path.read_text().replace("sa.String(32)", "sa.String(33)"))
    assert fastpath.at_head(config) is None
    accept_edit(config, NEXT, "typo", confirm=None)
    assert fastpath.at_head(config) == (NEXT,), "the accepted file is confirmed again"


@pytest.mark.slow
def test_revisions_applied_without_checksums_get_a_baseline(project: Path, tmp_path: Path) -> None:
    """A database migrated by plain alembic gets checksums for its applied revisions at the next toolkit migrate."""
    database = tmp_path / "bot.db"
    env = clean_env(DATABASE_URL=f"sqlite:///{database}", LOG_FORMAT="json")
    plain_alembic = subprocess.run([sys.executable, "-m", "alembic", "-c", str(project / "alembic.ini"), "upgrade",
                                    "head"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert plain_alembic.returncode == 0, plain_alembic.stderr
    migrated = run_invoke(project, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert events_named(migrated.stderr, "revision checksums recorded")[0]["revisions"] == list(SHIPPED)
    url = URL.create("sqlite+aiosqlite", database=str(database))
    rows = query(url, "SELECT revision FROM toolkit_journal WHERE kind = 'checksum' ORDER BY revision")
    assert rows == [(revision,) for revision in SHIPPED]
    again = run_invoke(project, "migrate", env=env)
    assert not events_named(again.stderr, "revision checksums recorded"), "recorded once"


@pytest.mark.slow
def test_accept_edit_command_checks_its_input(project: Path, postgres_url: URL) -> None:
    """accept-edit: exit 2 for a pending or unknown revision or no reason, 6 without confirmation, 0 with --yes."""
    env = clean_env(DATABASE_URL=plain(postgres_url), LOG_FORMAT="json")
    add_revision(project, NICKNAME)
    assert run_invoke(project, "migrate", env=env).returncode == 0
    path = project / "alembic" / "versions" / f"{NEXT}_extra.py"
    path.write_text(path.read_text().replace("sa.String(32)", "sa.String(64)"))
    status = run_invoke(project, "status", env=env)
    assert f"edited   {NEXT}" in status.stdout
    assert f"{NEXT}         edited" in run_invoke(project, "history", env=env).stdout
    assert run_invoke(project, "status", "--check", env=env).returncode == 7
    assert run_invoke(project, "accept-edit", "--revision", NEXT, env=env).returncode == 2
    assert run_invoke(project, "accept-edit", "--revision", "9999", "--reason", "x", env=env).returncode == 2
    unconfirmed = run_invoke(project, "accept-edit", "--revision", NEXT, "--reason", "wider", env=env)
    assert unconfirmed.returncode == 6, unconfirmed.stderr
    accepted = run_invoke(project, "accept-edit", "--revision", NEXT, "--reason", "wider", "--yes", env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert "edit accepted" in accepted.stdout
    document = json.loads(run_invoke(project, "status", "--json", env=env).stdout)
    assert document["edited"] == [] and document["problems"] == []
    assert run_invoke(project, "rollback", "--yes", "--no-backup", env=env).returncode == 0
    pending = run_invoke(project, "accept-edit", "--revision", NEXT, "--reason", "x", "--yes", env=env)
    assert pending.returncode == 2 and "not applied" in pending.stderr


def test_code_checksum_ignores_where_code_sits(tmp_path: Path) -> None:
    """The code checksum follows what the code does, not its line numbers or file name."""
    def load(name: str, text: str) -> checksums.Checksum:
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return checksums.of_script(path, module)

    first = load("one", "def upgrade():\n    return {'a', 'b'}\n")
    moved = load("two", "\n\n# note\ndef upgrade():\n\n    return {'a', 'b'}  # same set\n")
    changed = load("three", "def upgrade():\n    return {'a', 'c'}\n")
    assert first.file != moved.file and first.same_revision(moved)
    assert not first.same_revision(changed)
