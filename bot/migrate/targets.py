"""Where `migrate --to` may go: only up. An older revision is a rollback, which has its own backup and prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import Refused

if TYPE_CHECKING:  # Alembic is loaded by the caller, which holds the scripts already
    from alembic.script import ScriptDirectory


def refuse_downward_upgrade(scripts: ScriptDirectory, current: tuple[str, ...], target: str) -> None:
    """Refuse (exit 6) an upgrade target below the database's revision, which Alembic would silently skip."""
    from alembic.script.revision import ResolutionError, RevisionError

    if target in ("head", "heads") or not current:
        return
    try:
        below_current = {script.revision for script in scripts.revision_map.iterate_revisions(current, "base")}
        wanted = () if target == "base" else scripts.revision_map.get_revisions(target)
    except (ResolutionError, RevisionError, ValueError):
        return  # an unknown or relative target: the upgrade's own planning reports it
    lower = [script.revision for script in wanted if script is not None and script.revision not in current
             and script.revision in below_current]
    if target == "base" or lower:
        raise Refused(f"migrate --to {target} is below the database's revision {', '.join(current)}",
                      "migrate only upgrades; going down is a rollback (backed up and confirmed first)",
                      f"run `invoke rollback --to {target}`" if target != "base" else "run `invoke rollback-base`")
