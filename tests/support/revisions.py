"""The repository's revisions and the extra revision files tests write beside them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.migrate.graph import scripts_of
from bot.paths import PROJECT_ROOT as ROOT
from bot.settings.config import Config


def shipped_revisions() -> tuple[str, ...]:
    """The repository's own revision ids, oldest first: tests compare with these, never with a count of them."""
    return tuple(reversed([script.revision for script in scripts_of(Config()).walk_revisions()]))


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
