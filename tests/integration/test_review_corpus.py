"""The production review over a corpus of revisions on SQLite, PostgreSQL and MariaDB: right verdict, nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.errors import ExitCode, MigrationFailed, Refused
from bot.migrate import api as migrations
from bot.migrate.graph import alembic_config, load_scripts, steps_between
from bot.migrate.review.catalog import Catalog
from bot.migrate.review.checker import COLLECT, Review
from bot.migrate.review.offline import check_offline
from bot.migrate.review.rules import RULES
from bot.settings.config import Config
from tests.support.database import schema, versions
from tests.support.review_corpus import APPLIES, BACKENDS, CASES, FAILS, Case
from tests.support.revisions import HEAD, NEXT, revision_source, revisions_folder

# On SQLite in the fast lane; on the servers (a database made and migrated per case) with the slow tests.
PARAMETERS = [pytest.param(case, backend, id=f"{backend}-{case.name}",
                           marks=() if backend == "sqlite" else (pytest.mark.slow,))
              for case in CASES for backend in BACKENDS if case.expect.get(backend) is not None]
FIXTURES = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}


def case_revision(case: Case) -> str:
    """The case as the next revision, with `context` importable the way Alembic's own template does."""
    header = "from alembic import context\n" + case.header
    return revision_source(case.upgrade, "pass", message=case.name, header=header)


@pytest.mark.parametrize(("case", "backend"), PARAMETERS)
def test_review_verdict(case: Case, backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each case applies, is refused by its rule, or fails, as the corpus says; a refusal or failure changes nothing."""
    url: URL = request.getfixturevalue(FIXTURES[backend])
    ini = revisions_folder(tmp_path, (f"{NEXT}_case.py", case_revision(case)))
    migrations.upgrade(Config(database_url=url, alembic_ini=ini), HEAD)
    before = schema(url)
    production = Config(database_url=url, alembic_ini=ini, env="production")
    expected = case.expect[backend]
    if expected == APPLIES:
        assert migrations.upgrade(production).after == (NEXT,)
        assert versions(url) == [NEXT]
        return
    if expected == FAILS:
        with pytest.raises(MigrationFailed) as failed:
            migrations.upgrade(production)
        assert failed.value.exit_code == ExitCode.MIGRATION_FAILED and f"revision {NEXT}" in failed.value.line()
    else:
        with pytest.raises(Refused) as refused:
            migrations.upgrade(production)
        assert refused.value.exit_code == ExitCode.REFUSED
        assert refused.value.fields.get("rule") == expected, refused.value.line()
        assert "nothing was changed" in refused.value.line()
    assert versions(url) == [HEAD], "the revision did not stay applied"
    assert schema(url).keys() - {"toolkit_journal", "toolkit_journal_schema"} == \
        before.keys() - {"toolkit_journal", "toolkit_journal_schema"}
    assert schema(url)["users"] == before["users"], "the users table is exactly as it was"


# squawk rules the toolkit's session settings make moot (every migration session has both timeouts, and each
# step runs in a transaction of its own).
SQUAWK_EXCLUDED = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts")


def squawk_rules(sql: str, folder: Path) -> set[str]:
    """The squawk rules that fire on a SQL script (squawk-cli, from requirements-dev)."""
    binary = Path(sys.executable).parent / "squawk"
    script = folder / "migration.sql"
    script.write_text(sql)
    found = subprocess.run([str(binary if binary.exists() else shutil.which("squawk")), "--reporter", "json",
                            f"--exclude={','.join(SQUAWK_EXCLUDED)}", str(script)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert found.returncode in (0, 1), found.stderr
    return {violation["rule_name"] for violation in json.loads(found.stdout or "[]")}


@pytest.mark.slow
def test_every_squawk_rule_that_fires_maps_to_a_rule_that_fires(tmp_path: Path) -> None:
    """On each PostgreSQL corpus revision that renders offline, squawk's findings are covered by the review's own."""
    url = URL.create("postgresql+psycopg", host="127.0.0.1", database="offline_only")
    covers: dict[str, set[str]] = {}
    for rule in RULES.values():
        for name in rule.squawk:
            covers.setdefault(name, set()).add(rule.id)
    table = ["| case | squawk | review |", "|---|---|---|"]
    missing = []
    for number, case in enumerate(case for case in CASES if case.expect.get("postgresql") is not None):
        folder = tmp_path / f"case{number}"
        ini = revisions_folder(folder, (f"{NEXT}_case.py", case_revision(case)))
        config = Config(database_url=url, alembic_ini=ini)
        alembic_cfg = alembic_config(config)
        scripts = load_scripts(alembic_cfg)
        review = Review("postgresql", Catalog("postgresql", offline=True), COLLECT, exempt_new_tables=False)
        check, = check_offline(alembic_cfg, scripts, steps_between(scripts, "upgrade", "head", (HEAD,)), (HEAD,),
                               review)
        if not check.rendered:
            table.append(f"| {case.name} | (not rendered offline) | checked when applied |")
            continue
        fired = {verdict.finding.rule for verdict in check.verdicts}
        squawked = squawk_rules(";\n".join(check.statements) + ";\n", folder)
        missing += [(case.name, name) for name in squawked if not covers.get(name, set()) & fired]
        table.append(f"| {case.name} | {', '.join(sorted(squawked)) or '-'} | {', '.join(sorted(fired)) or '-'} |")
    print("\n".join(table))
    assert not missing, f"squawk rules with no matching review finding: {missing}"
