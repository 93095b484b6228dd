"""The suite itself: it never writes into the checkout, and no test depends on how many revisions there are."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.environment import ROOT, clean_env
from tests.support.revisions import NEXT, revision_source

# Tests that once counted the shipped revisions (position 1/2, head 0002, pending 1), run again with one more.
COUNTING_TESTS = ("tests/integration/test_journal.py::test_status_and_history_commands_print_json_and_check_exits_7",
                  "tests/integration/test_migrations.py::test_full_lifecycle_keeps_data_where_it_should[sqlite]",
                  "tests/processes/test_tasks.py::test_status_and_history_print_tables_on_stdout",
                  "tests/processes/test_tasks.py::test_revision_writes_the_next_numbered_file")


def copy_checkout(target: Path) -> Path:
    """The repository's files (no virtualenv, caches, data or backups) in a folder of their own."""
    anywhere = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
                                      ".hypothesis", ".env")

    def ignore(folder: str, names: list[str]) -> set[str]:
        """Caches anywhere; the runtime folders data/ and backups/ only at the top (bot/data is code)."""
        top = {"data", "backups"} & set(names) if Path(folder) == ROOT else set()
        return set(anywhere(folder, names)) | top

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def pytest_in(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on a copy of the checkout, as a developer would from its root."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args], cwd=checkout,
                          env=clean_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_tests_that_used_to_count_revisions_pass_with_one_more(tmp_path: Path) -> None:
    """With a later no-op revision in alembic/versions, the tests that compared with a count of revisions still pass."""
    checkout = copy_checkout(tmp_path / "checkout")
    (checkout / "alembic" / "versions" / f"{NEXT}_later.py").write_text(
        revision_source("pass", "pass", message="a later revision that changes nothing"))
    result = pytest_in(checkout, *COUNTING_TESTS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{len(COUNTING_TESTS)} passed" in result.stdout


@pytest.mark.slow
def test_a_run_that_writes_into_the_checkout_fails(tmp_path: Path) -> None:
    """A test that leaves a file in the checkout (as data/bot.db once was) fails the run, naming the file."""
    checkout = copy_checkout(tmp_path / "checkout")
    subprocess.run(["git", "init", "-q"], cwd=checkout, check=True)
    subprocess.run(["git", "add", "-A"], cwd=checkout, check=True)
    (checkout / "tests" / "test_leaves_a_file.py").write_text(
        '"""A test that writes where it must not."""\n\nfrom tests.support.environment import ROOT\n\n\n'
        'def test_leaves_a_file() -> None:\n    """Leaves data/left.db behind."""\n'
        '    (ROOT / "data").mkdir()\n    (ROOT / "data" / "left.db").write_text("x")\n')
    result = pytest_in(checkout, "tests/test_leaves_a_file.py")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "1 passed" in result.stdout and "wrote into the checkout:\n  data/left.db" in result.stdout
    clean = pytest_in(checkout, "tests/integration/test_flags.py::test_short_flags_mean_the_same_in_every_task")
    assert clean.returncode == 0, clean.stdout[-3000:]
