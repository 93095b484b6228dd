"""The Alembic side of the house: its Config, the revision scripts, and what they say against a database.

Everything here reads the scripts (and at most alembic_version on a given connection); nothing changes
a database. The at-head fast path never imports it: Alembic loads only when that path cannot answer.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError, Revision, RevisionError
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from bot.data.models import Base
from bot.errors import ConfigError, Refused
from bot.migrate.plan import PlannedStep, RevisionInfo, Status
from bot.settings.config import Config

# Tables the toolkit owns; they are not the bot's schema, so autogenerate must never see them as drift.
TOOLKIT_TABLES = frozenset({"alembic_version", "toolkit_journal", "toolkit_journal_schema"})
PICK_A_REVISION = "pick a revision from `invoke history`"
# What Alembic raises for a revision it cannot resolve.
UNRESOLVED = (CommandError, ResolutionError, RevisionError)


def alembic_config(config: Config, **attributes: Any) -> AlembicConfig:
    """An Alembic Config for our ini, carrying the toolkit's Config (and a connection) to env.py."""
    # quiet: Alembic's own "Generating …" status text would land on stdout, which is for results. x: what
    # `alembic -x key=value` gives revisions through context.get_x_argument(), here from the task's -x flags.
    alembic_cfg = AlembicConfig(str(config.alembic_ini), cmd_opts=Namespace(quiet=True, x=list(config.x_arguments)))
    alembic_cfg.attributes["toolkit_config"] = config
    alembic_cfg.attributes.update(attributes)
    return alembic_cfg


def load_scripts(alembic_cfg: AlembicConfig) -> ScriptDirectory:
    """The revision scripts under alembic/versions."""
    return ScriptDirectory.from_config(alembic_cfg)


def scripts_of(config: Config) -> ScriptDirectory:
    """The revision scripts the configuration's alembic.ini points at."""
    return load_scripts(alembic_config(config))


def include_name(name: str | None, type_: str, _parent_names: dict[str, Any]) -> bool:
    """Autogenerate filter: the toolkit's own tables are not the bot's schema."""
    return not (type_ == "table" and name in TOOLKIT_TABLES)


def context_options(backend: str, *, online: bool) -> dict[str, Any]:
    """Options for context.configure() that every run shares, the toolkit's and plain alembic's alike."""
    options: dict[str, Any] = {
        "target_metadata": Base.metadata,
        "include_name": include_name,
        "compare_type": True,
        "transaction_per_migration": True,
        "render_as_batch": backend == "sqlite",
    }
    if backend == "sqlite" and online:
        # Our engines run SQLite in SQLAlchemy's transactional-DDL recipe; tell Alembic to use it.
        options["transactional_ddl"] = True
    return options


def current_heads(connection: Connection) -> tuple[str, ...]:
    """What alembic_version says, read on the given connection."""
    return tuple(MigrationContext.configure(connection).get_current_heads())


def known(scripts: ScriptDirectory, revision: str) -> bool:
    """Whether the scripts contain a revision id."""
    try:
        return scripts.revision_map.get_revision(revision) is not None
    except (ResolutionError, RevisionError):
        return False


def applied_revisions(scripts: ScriptDirectory, current: tuple[str, ...]) -> set[str]:
    """Every revision at or below the database's current revisions."""
    found = tuple(rev for rev in current if known(scripts, rev))
    if not found:
        return set()
    return {script.revision for script in scripts.revision_map.iterate_revisions(found, "base")}


def history_of(scripts: ScriptDirectory, current: tuple[str, ...]) -> list[RevisionInfo]:
    """All revisions, newest first, each marked against the database's current revisions."""
    applied = applied_revisions(scripts, current)
    heads = set(scripts.get_heads())
    return [RevisionInfo(revision=script.revision, message=script.doc or "",
                         down_revisions=tuple(script._all_down_revisions), is_head=script.revision in heads,
                         is_current=script.revision in current, applied=script.revision in applied)
            for script in scripts.walk_revisions()]


def status_of(scripts: ScriptDirectory, current: tuple[str, ...]) -> Status:
    """Compare the database's revisions with the scripts without touching the database."""
    unknown = tuple(rev for rev in current if not known(scripts, rev))
    heads = tuple(scripts.get_heads())
    if unknown:
        return Status(current, heads, (), unknown)
    pending = tuple(info for info in history_of(scripts, current) if not info.applied)
    return Status(current, heads, tuple(reversed(pending)))


def next_revision_id(scripts: ScriptDirectory) -> str | None:
    """0001, 0002, …: readable ids in order; None (Alembic's random id) when the history is not numbered."""
    ids = [script.revision for script in scripts.walk_revisions()]
    if not ids:
        return "0001"
    if not all(rev.isdigit() for rev in ids):
        return None
    return f"{max(int(rev) for rev in ids) + 1:04d}"


def refuse_unsafe_state(state: Status) -> None:
    """Several heads or a revision the scripts do not know: no command may change anything."""
    refuse_unknown(state)
    if len(state.heads) > 1:
        raise Refused(f"the revision scripts have several heads: {', '.join(state.heads)}",
                      "upgrading to 'head' would be ambiguous",
                      "merge them with `alembic merge -m 'merge heads' heads`")


def refuse_unknown(state: Status) -> None:
    """A database at a revision the scripts do not know (a rollback may still run with several heads)."""
    if state.unknown:
        raise Refused(f"the database is at revision {', '.join(state.unknown)}, which the scripts do not know",
                      "newer code has migrated this database, or a revision file is missing",
                      "deploy the code that contains that revision, then roll back with it if needed")


def refuse_downward_upgrade(scripts: ScriptDirectory, current: tuple[str, ...], target: str) -> None:
    """Refuse (exit 6) an upgrade target below the database's revision, which Alembic would silently skip."""
    if target in ("head", "heads") or not current:
        return
    try:
        below_current = {script.revision for script in scripts.revision_map.iterate_revisions(current, "base")}
        wanted = () if target == "base" else scripts.revision_map.get_revisions(target)
    except (ResolutionError, RevisionError, ValueError):
        return  # an unknown or relative target: the upgrade's own planning reports it
    lower = [script.revision for script in wanted if isinstance(script, Revision) and script.revision not in current
             and script.revision in below_current]
    if target == "base" or lower:
        raise Refused(f"migrate --to {target} is below the database's revision {', '.join(current)}",
                      "migrate only upgrades; going down is a rollback (backed up and confirmed first)",
                      f"run `invoke rollback --to {target}`" if target != "base" else "run `invoke rollback-base`")


def steps_between(scripts: ScriptDirectory, direction: str, target: str, heads: tuple[str, ...]) -> list[RevisionStep]:
    """The steps Alembic would run from `heads` to `target`, in order."""
    if direction == "upgrade":
        return list(scripts._upgrade_revs(target, heads))  # type: ignore[arg-type]  # Alembic takes a tuple too
    return list(scripts._downgrade_revs(target, heads))  # type: ignore[arg-type]  # likewise


def planned(step: RevisionStep) -> PlannedStep:
    """Describe a step before it runs."""
    info = step.info
    return PlannedStep(revision=step.revision.revision, message=step.revision.doc or "",
                       source=tuple(info.source_revision_ids), destination=tuple(info.destination_revision_ids))


def plan_steps(scripts: ScriptDirectory, direction: str, target: str, heads: tuple[str, ...]) -> list[RevisionStep]:
    """The steps to a target, with Alembic's resolution errors turned into one clear line (exit 2)."""
    try:
        return steps_between(scripts, direction, target, heads)
    except UNRESOLVED as error:
        raise ConfigError(f"cannot {direction} to {target!r}", str(error).rstrip("."), PICK_A_REVISION) from None


def revision_or_refuse(scripts: ScriptDirectory, target: str, what: str) -> None:
    """Fail (exit 2) before connecting when the scripts do not know a revision the command names."""
    if target == "base":
        return
    try:
        scripts.get_revisions(target)
    except UNRESOLVED as error:
        raise ConfigError(f"cannot {what} {target!r}", str(error).rstrip("."), PICK_A_REVISION) from None
