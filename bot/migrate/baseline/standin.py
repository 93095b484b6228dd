"""The baseline as Alembic sees it: one revision, REV, with no parent, whose upgrade makes the whole schema.

Before the covered files are retired it exists only in memory, in the graph a fresh database is migrated
by (`fresh_view`); `invoke squash --retire` writes it to the versions folder (`standin_source`), where
plain `alembic upgrade head` runs it too. Either way it runs as one step of Alembic's own loop, so the
lock, the journal and the review treat it like any revision.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionMap
from sqlalchemy import TextClause, text
from sqlalchemy.engine import Dialect

from alembic import context, op
from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate.baseline.store import FOLDER, MANIFEST, MARK, Baseline, Statements, dialect_key, folder_of, load
from bot.migrate.graph import known

log = get_logger("bot.baseline")


def is_standin(script: Script) -> bool:
    """Whether a revision script is a baseline's stand-in (in memory or retired to a file)."""
    return getattr(script.module, MARK, None) is not None


def baseline_of(scripts: ScriptDirectory) -> Baseline | None:
    """The project's baseline, if it has one."""
    return load(folder_of(scripts))


def fresh_scripts(scripts: ScriptDirectory, dialect: Dialect, target: str = "head") -> ScriptDirectory:
    """The graph a database with no revision takes: through the baseline when there is one for it, else the files."""
    baseline = baseline_of(scripts)
    if baseline is None:
        return scripts
    view = fresh_view(scripts, baseline, dialect)
    if view is None or not (target in ("head", "heads") or known(view, target)):
        return scripts
    kind = dialect_for(baseline, dialect)
    assert kind is not None  # fresh_view made a view: the baseline has this database's statements
    baseline.statements(kind)  # a hand-edited file is refused here, before anything runs
    log.info("fresh database takes the baseline", baseline=baseline.revision, covers=len(baseline.covered),
             dialect=kind)
    return view


def refuse_stranded(scripts: ScriptDirectory, current: tuple[str, ...]) -> None:
    """A database at a revision the baseline covers whose file was retired: refused, never half-migrated."""
    unknown = tuple(revision for revision in current if not known(scripts, revision))
    if unknown:
        refuse_covered(baseline_of(scripts), unknown)


def refuse_covered(baseline: Baseline | None, unknown: tuple[str, ...]) -> None:
    """Of the revisions the scripts do not know, refuse the first the baseline covers (the stranded database)."""
    stranded = [revision for revision in unknown if baseline is not None and revision in baseline.covered_revisions]
    if not stranded or baseline is None:
        return
    where = f"commit {baseline.retired_in}" if baseline.retired_in else "the release before they were retired"
    raise Refused(f"the database is at revision {stranded[0]}, which baseline {baseline.revision} covers and "
                  "whose file is retired", f"this release has no revisions from {stranded[0]} to "
                  f"{baseline.revision}, so it cannot migrate that database", f"bring it to {baseline.revision} "
                  f"with {where} (`git checkout {baseline.retired_in or '<that release>'}`, then `invoke migrate "
                  f"--to {baseline.revision}`), then deploy this release", revision=stranded[0],
                  baseline=baseline.revision)


def step_details(script: Script, dialect: Dialect) -> dict[str, object]:
    """The journal row of a baseline step: which baseline, what it covers, the checksum of what ran."""
    baseline = load(folder_of_script(script))
    if baseline is None:
        return {"baseline": {"revision": script.revision}}
    return baseline.journal_details(dialect_for(baseline, dialect) or dialect_key(dialect))


def folder_of_script(script: Script) -> Path:
    """The baseline folder a stand-in belongs to (in memory: beside its manifest; retired: beside versions)."""
    path = Path(script.path)
    return path.parent if path.name == MANIFEST else path.parent.parent / FOLDER


def fresh_view(scripts: ScriptDirectory, baseline: Baseline, dialect: Dialect) -> ScriptDirectory | None:
    """The graph a database with no revision is migrated by: the stand-in, then the revisions after it.

    None when the baseline has no statements for this database, or the covered files are already retired
    (the stand-in is then a file of its own). The covered files are never imported.
    """
    if dialect_for(baseline, dialect) is None or baseline.retired_in is not None:
        return None
    view = copy.copy(scripts)
    standin = Script(standin_module(baseline), baseline.revision, baseline.folder / MANIFEST)
    covered = baseline.covered_files

    def revisions() -> Iterator[Script]:
        yield standin
        for location in scripts._version_locations:  # Alembic's own listing, minus the covered files
            if not location.exists():
                continue
            for path in Script._list_py_dir(scripts, location):
                if path.name not in covered:
                    script = Script._from_path(scripts, path.resolve())
                    if script is not None:
                        yield script

    view.revision_map = RevisionMap(revisions)
    return view


def dialect_for(baseline: Baseline, dialect: Dialect) -> str | None:
    """Which of the baseline's statement files a database takes (offline MySQL cannot tell MariaDB apart)."""
    key = dialect_key(dialect)
    if key in baseline.dialects:
        return key
    if key == "mysql" and not getattr(dialect, "server_version_info", None) and "mariadb" in baseline.dialects:
        return "mariadb"
    return None


def standin_module(baseline: Baseline) -> ModuleType:
    """The in-memory revision module a fresh database's first step runs."""
    module = ModuleType(f"baseline_{baseline.revision}",
                        f"baseline: revisions {baseline.span} in one step\n\n{baseline.message}")
    module.revision = baseline.revision  # type: ignore[attr-defined]
    module.down_revision = None  # type: ignore[attr-defined]
    module.branch_labels = None  # type: ignore[attr-defined]
    module.depends_on = None  # type: ignore[attr-defined]
    setattr(module, MARK, baseline.revision)

    def upgrade() -> None:
        upgrade_baseline(baseline.revision)

    def downgrade() -> None:
        downgrade_baseline(baseline.revision)

    module.upgrade = upgrade  # type: ignore[attr-defined]
    module.downgrade = downgrade  # type: ignore[attr-defined]
    return module


def upgrade_baseline(revision: str) -> None:
    """Inside a revision: make everything the baseline holds (its statements for this database)."""
    for statement in _statements(revision).statements:
        op.execute(literal_text(statement))


def downgrade_baseline(revision: str) -> None:
    """Inside a revision: drop everything the baseline made (rollback-base's meaning for a baseline)."""
    for statement in _statements(revision).drops:
        op.execute(literal_text(statement))


def standin_source(baseline: Baseline) -> str:
    """The revision file `squash --retire` writes in place of the covered ones."""
    return (f'"""baseline: revisions {baseline.span} in one step\n\nRevision ID: {baseline.revision}\nRevises:\n'
            f"Made by `invoke squash`; the retired revision files are in commit {baseline.retired_in}.\n"
            f"See docs/BASELINE.md.\n\"\"\"\n"
            "from bot.migrate.baseline.standin import downgrade_baseline, upgrade_baseline\n\n"
            f"revision = {baseline.revision!r}\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n"
            f"{MARK} = revision\n\n\n"
            "def upgrade() -> None:\n    upgrade_baseline(revision)\n\n\n"
            "def downgrade() -> None:\n    downgrade_baseline(revision)\n")


def _statements(revision: str) -> Statements:
    """The running database's statements of the baseline for `revision`, found beside env.py."""
    baseline = load(folder_of(context.script))
    if baseline is None or baseline.revision != revision:
        raise RuntimeError(f"no baseline for revision {revision} in {folder_of(context.script)}")
    dialect = op.get_context().dialect
    key = dialect_for(baseline, dialect)
    return baseline.statements(key if key is not None else dialect_key(dialect))


def literal_text(statement: str) -> TextClause:
    """A statement as text() takes it literally: a colon never starts a bound parameter."""
    return text(statement.replace(":", "\\:"))


def standin_path(scripts: ScriptDirectory, baseline: Baseline) -> Path:
    """Where the retired stand-in lives: the first versions folder, named like `invoke revision` names files."""
    return Path(scripts.versions) / f"{baseline.revision}_baseline.py"
