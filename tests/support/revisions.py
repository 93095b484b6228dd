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


# A history with every kind of object a baseline carries, written so each database makes what it can hold.
RICH_REVISIONS = (
    ("plans and their seed rows", '''
        backend = op.get_bind().dialect.name
        kind = sa.Enum("free", "paid", "team", name="plan_kind")
        identity = sa.Identity(start=10, increment=5) if backend == "postgresql" else None
        id_column = sa.Column("id", sa.Integer, identity, primary_key=True) if identity is not None \\
            else sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)
        plans = op.create_table(
            "plans", id_column,
            sa.Column("name", sa.String(40), nullable=False, unique=True),
            sa.Column("kind", kind, nullable=False, server_default="free"),
            sa.Column("price", sa.Numeric(10, 2), nullable=False, server_default="0"),
            sa.Column("note", sa.Text, nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
            sa.CheckConstraint("price >= 0", name="ck_plans_price"),
            sqlite_autoincrement=True,
        )
        op.bulk_insert(plans, [
            {"name": "free", "kind": "free", "price": 0, "note": "it's: free", "created_at": SEEDED},
            {"name": "pro", "kind": "paid", "price": 9.5, "note": None, "created_at": SEEDED},
            {"name": "team", "kind": "team", "price": 29, "note": "50% off :first month", "created_at": SEEDED},
            {"name": "gone", "kind": "paid", "price": 1, "note": None, "created_at": SEEDED},
        ])
    ''', 'op.drop_table("plans")\nsa.Enum(name="plan_kind").drop(op.get_bind(), checkfirst=True)'),
    ("subscriptions with keys and indexes", '''
        backend = op.get_bind().dialect.name
        op.create_table(
            "subscriptions",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
            sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.id"), nullable=False),
            sa.Column("state", sa.String(16), nullable=False, server_default="active"),
            sa.Column("code", sa.String(32), nullable=True),
            sa.UniqueConstraint("user_id", "plan_id", name="uq_subscriptions_user_plan"),
        )
        op.create_index("ix_subscriptions_state", "subscriptions", ["state"])
        if backend == "postgresql":
            op.create_index("ix_subscriptions_active", "subscriptions", ["user_id"],
                            postgresql_where=sa.text("state = 'active'"))
            op.create_index("ix_subscriptions_code_lower", "subscriptions", [sa.text("lower(code)")])
        elif backend == "sqlite":
            op.create_index("ix_subscriptions_active", "subscriptions", ["user_id"],
                            sqlite_where=sa.text("state = 'active'"))
            op.create_index("ix_subscriptions_code_lower", "subscriptions", [sa.text("lower(code)")])
    ''', 'op.drop_table("subscriptions")'),
    ("invoice numbers", '''
        backend = op.get_bind().dialect.name
        if backend == "postgresql":
            op.execute("CREATE SEQUENCE invoice_numbers START WITH 1000 INCREMENT BY 10")
            op.execute("SELECT nextval('invoice_numbers')")
            op.execute("SELECT nextval('invoice_numbers')")
        invoices = op.create_table(
            "invoices",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("number", sa.Integer, nullable=True),
            sqlite_autoincrement=True,
        )
        op.bulk_insert(invoices, [{"number": 1}, {"number": 2}, {"number": 3}])
        op.execute("DELETE FROM invoices WHERE number = 3")
    ''', 'op.drop_table("invoices")\nop.execute("DROP SEQUENCE IF EXISTS invoice_numbers") '
         'if op.get_bind().dialect.name == "postgresql" else None'),
    ("views over plans", '''
        op.execute("CREATE VIEW paid_plans AS SELECT id, name, price FROM plans WHERE kind <> 'free'")
        op.execute("CREATE VIEW cheap_paid_plans AS SELECT id, name FROM paid_plans WHERE price < 10")
    ''', 'op.execute("DROP VIEW cheap_paid_plans")\nop.execute("DROP VIEW paid_plans")'),
    ("a data fix", '''
        op.execute("UPDATE plans SET price = 12.5 WHERE name = 'pro'")
        op.execute("DELETE FROM plans WHERE name = 'gone'")
    ''', "pass"),
)


def rich_history(total: int, *, after: str = HEAD) -> list[tuple[str, str]]:
    """(file name, source) of `total` revisions after `after`: every kind of object first, then column churn."""
    files: list[tuple[str, str]] = []
    down = after
    for index in range(total):
        revision = f"{int(after) + index + 1:04d}"
        if index < len(RICH_REVISIONS):
            message, upgrade, downgrade = RICH_REVISIONS[index]
        elif index == len(RICH_REVISIONS):
            message, upgrade, downgrade = "churn table", \
                'op.create_table("churn", sa.Column("id", sa.Integer, primary_key=True))', 'op.drop_table("churn")'
        elif (index - len(RICH_REVISIONS)) % 2:
            message, upgrade, downgrade = f"churn {revision}", \
                f'op.add_column("churn", sa.Column("c{revision}", sa.Integer, nullable=True))', \
                f'op.drop_column("churn", "c{revision}")'
        else:
            message, upgrade, downgrade = f"churn {revision}", \
                f'op.drop_column("churn", "c{int(revision) - 1:04d}")', \
                f'op.add_column("churn", sa.Column("c{int(revision) - 1:04d}", sa.Integer, nullable=True))'
        files.append((f"{revision}_{message.replace(' ', '_')[:30]}.py",
                      revision_source(upgrade, downgrade, message=message, revision=revision, down_revision=down,
                                      header='import datetime\nreviewed_destructive = "test history"\n'
                                             'SEEDED = datetime.datetime(2026, 1, 1, 12, 0)')))
        down = revision
    return files
