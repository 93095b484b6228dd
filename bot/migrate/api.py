"""The migration API: Alembic's commands, in-process, locked, observed and safe to call from anywhere.

Shaped like alembic.command: each function takes the toolkit's Config, raises the typed errors of
bot.errors, and leaves exit codes to the entry layer. The at-head no-op answers from bot.migrate.fastpath
without loading Alembic; everything else imports its modules lazily, off that path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from bot import collector
from bot.errors import ConfigError, Refused
from bot.logs import get_logger
from bot.migrate import fastpath
from bot.migrate.report import MigrationReport

if TYPE_CHECKING:
    from bot.migrate.plan import Confirm, Guard
    from bot.settings.config import Config

log = get_logger("bot.migrations")


def upgrade(config: Config, to: str = "head", *, safeguards: Sequence[Guard] | None = None) -> MigrationReport:
    """Apply revisions up to `to` under the migration lock (production: after the review and backup rails)."""
    if to == "head":
        current = fastpath.at_head(config)
        if current is not None:
            log.info("nothing to migrate", direction="upgrade", target="head", current=list(current), fast_path=True)
            return MigrationReport("upgrade", current, current)
    with collector.loading():  # one command's modules: loaded once, kept to the end
        from bot.migrate.rails.guards import upgrade_guards  # loads Alembic: off the at-head fast path
        from bot.migrate.run import migrate

    return migrate(config, "upgrade", to, confirm=None,
                   safeguards=upgrade_guards(config) if safeguards is None else safeguards)


def rollback(config: Config, steps: int | None = 1, to: str | None = None,
             *, confirm: Confirm | None = None, safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Undo the last `steps` revisions, or down to revision `to`, under the migration lock."""
    with collector.loading():
        from bot.migrate.run import migrate  # loads Alembic

    return migrate(config, "downgrade", rollback_target(steps, to), confirm=confirm, safeguards=safeguards)


def rollback_target(steps: int | None = 1, to: str | None = None) -> str:
    """Alembic's downgrade target for --steps N or --to REV, or a clear error for a bad pair."""
    if to is not None and steps not in (None, 1):
        raise ConfigError("--steps and --to were both given", "a rollback has one target", "pass only one of them")
    if to is None:
        if steps is None or steps < 1:
            raise ConfigError(f"--steps {steps} is not allowed", "a rollback undoes at least one revision",
                              "pass --steps 1 or more")
        return f"-{steps}"
    return to


def rollback_to_base(config: Config, *, confirm: Confirm | None = None,
                     safeguards: Sequence[Guard] = ()) -> MigrationReport:
    """Undo every revision: every table the revisions created is dropped; alembic_version stays."""
    with collector.loading():
        from bot.migrate.run import migrate  # loads Alembic

    return migrate(config, "downgrade", "base", confirm=confirm, safeguards=safeguards)


def run_migrations_if_needed(config: Config) -> MigrationReport | None:
    """MIGRATE_ON_START (default: production only): upgrade to head, failing fast; otherwise refuse a stale schema."""
    if config.migrate_on_start:
        return upgrade(config, "head")
    if fastpath.at_head(config) is not None:
        return None
    from bot.migrate.baseline.standin import refuse_covered  # loads Alembic: off the at-head fast path
    from bot.migrate.graph import refuse_unsafe_state
    from bot.migrate.journal import checksums, settle
    from bot.migrate.read.overview import read_overview

    found = read_overview(config, missing_is_empty=True)  # one read: revisions, alembic_version and the journal
    state = found.state
    refuse_covered(found.baseline, state.unknown)
    refuse_unsafe_state(state)
    settle.refuse_half_applied(found.half_applied, found.location)
    checksums.refuse_edited(found.edited, config, found.location)
    if state.pending:
        revisions = [info.revision for info in state.pending]
        if not config.is_production:
            log.warning("migrations skipped in development", pending=len(state.pending), revisions=revisions)
            raise Refused(f"the schema is {len(state.pending)} revision(s) behind head",
                          "development mode never migrates on start", "run `invoke migrate`")
        log.warning("migrations left to the release step", pending=len(state.pending), revisions=revisions)
        raise Refused(f"the schema is {len(state.pending)} revision(s) behind head",
                      "MIGRATE_ON_START=false: start never migrates",
                      "run `invoke migrate` as the release (pre-deploy) command, or set MIGRATE_ON_START=true")
    return None


def create_revision(message: str, autogenerate: bool = False, *, config: Config) -> str:
    """Write a new revision file (numbered after the newest) and return its path."""
    from alembic import command  # Alembic loads only for the commands that need it
    from bot.migrate.graph import alembic_config, load_scripts, next_revision_id
    from bot.migrate.session import read
    from bot.signals import run_guarded

    if not message.strip():
        raise ConfigError("the revision message is empty", "it names the file and the history entry",
                          "pass -m 'what this revision does'")
    alembic_cfg = alembic_config(config)
    rev_id = next_revision_id(load_scripts(alembic_cfg))

    def write(connection: Connection | None) -> Any:
        alembic_cfg.attributes["connection"] = connection
        return command.revision(alembic_cfg, message=message.strip(), autogenerate=autogenerate, rev_id=rev_id)

    if autogenerate:
        script = run_guarded(lambda _stop: read(config, write))
    else:
        script = write(None)
    scripts = script if isinstance(script, list) else [script]
    path = str(scripts[0].path)
    log.info("revision created", revision=scripts[0].revision, path=path, autogenerate=autogenerate)
    return path
