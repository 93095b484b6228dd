"""`invoke stamp --to REV` and `invoke accept-edit`: the ways out after a half-applied or an edited revision.

It moves alembic_version without running any revision, under the migration lock, after
confirmation, and journals itself in the same transaction as the move; the half-applied rows it
settles are marked resolved by that entry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from bot.errors import ConfigError
from bot.logs import get_logger
from bot.migrate import journal
from bot.migrate.graph import PICK_A_REVISION, UNRESOLVED, applied_revisions, revision_or_refuse, scripts_of
from bot.migrate.journal import checksums, settle
from bot.migrate.journal.origin import Origin
from bot.migrate.plan import Confirm
from bot.migrate.session import locked
from bot.settings.config import Config
from bot.signals import run_guarded

log = get_logger("bot.migrations")


@dataclass(frozen=True)
class StampReport:
    """What a stamp changed."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    entry_id: int
    resolved: tuple[int, ...]


def stamp(config: Config, to: str, *, confirm: Confirm | None) -> StampReport:
    """Set the database's revision to `to` without running anything, and resolve half-applied entries."""
    if not to or not to.strip():
        raise ConfigError("--to is empty", "a stamp needs the revision the schema now matches",
                          "pass --to REV (see `invoke history`)")
    scripts = scripts_of(config)
    target = to.strip()
    revision_or_refuse(scripts, target, "stamp to")
    return run_guarded(lambda _stop: _stamp(config, scripts, target, confirm))


async def _stamp(config: Config, scripts: ScriptDirectory, target: str, confirm: Confirm | None) -> StampReport:
    async with locked(config) as session:
        await session.confirm(confirm, session.plan("stamp", target))
        entry_id, after, resolved = await session.connection.run_sync(_write, scripts, target, session.before,
                                                                      session.who)
    log.info("revision stamped", previous_revision=",".join(session.before) or None,
             revision=",".join(after) or None, entry_id=entry_id, resolved_entries=list(resolved),
             half_applied_revisions=[entry.revision for entry in session.half_applied])
    return StampReport(session.before, after, entry_id, resolved)


def _write(connection: Connection, scripts: ScriptDirectory, target: str, before: tuple[str, ...],
           who: Origin) -> tuple[int, tuple[str, ...], tuple[int, ...]]:
    """Move alembic_version and journal the move in one transaction."""

    def work(conn: Connection) -> tuple[int, tuple[str, ...], tuple[int, ...]]:
        started_at, started = journal.now(), time.perf_counter()
        context = MigrationContext.configure(conn)
        try:
            context.stamp(scripts, target)
        except UNRESOLVED as error:
            raise ConfigError(f"cannot stamp to {target!r}", str(error).rstrip("."), PICK_A_REVISION) from None
        after = tuple(context.get_current_heads())
        entry_id = journal.insert_entry(
            conn, kind=journal.STAMP, status=journal.STAMPED, who=who, started_at=started_at,
            description=f"stamp --to {target}", revision=",".join(after) or None, direction="stamp",
            from_revision=",".join(before) or None, to_revision=",".join(after) or None, transactional=True,
            finished_at=journal.now(), duration_ms=(time.perf_counter() - started) * 1000, success=True)
        return entry_id, after, tuple(settle.resolve(conn, entry_id))

    return journal.committed(connection, work)


@dataclass(frozen=True)
class AcceptReport:
    """What `invoke accept-edit` recorded (entry_id None: the file already matched, nothing was recorded)."""

    revision: str
    entry_id: int | None


def accept_edit(config: Config, revision: str, reason: str, *, confirm: Confirm | None) -> AcceptReport:
    """Accept an applied revision's edited file as what ran (journaled, under the migration lock; nothing runs)."""
    if not revision.strip():
        raise ConfigError("--revision is empty", "accept-edit needs the edited revision",
                          "pass --revision REV (the one `invoke status` lists as edited)")
    if not reason.strip():
        raise ConfigError("--reason is empty", "the journal keeps why an applied revision's file may differ",
                          "pass --reason 'what changed and why it is safe'")
    scripts = scripts_of(config)
    target = revision.strip()
    try:
        script = scripts.get_revision(target)
    except UNRESOLVED:
        script = None
    if script is None:
        raise ConfigError(f"--revision {target!r} is not a revision", "accept-edit takes one revision id",
                          "pick the revision `invoke status` lists as edited")
    return run_guarded(lambda _stop: _accept(config, scripts, script.revision, reason.strip(), confirm))


async def _accept(config: Config, scripts: ScriptDirectory, revision: str, reason: str,
                  confirm: Confirm | None) -> AcceptReport:
    async with locked(config) as session:
        connection, before, who = session.connection, session.before, session.who
        if revision not in applied_revisions(scripts, before):
            raise ConfigError(f"revision {revision} is not applied to {session.location}",
                              "only a revision that already ran can differ from what ran",
                              "edit pending revisions freely; `invoke history` shows which are applied")
        triples = checksums.scripts_of(scripts)
        files = checksums.files_of(triples)
        found = await connection.run_sync(checksums.edited, triples, {revision}, files)
        if not found:
            log.info("revision edit accepted", revision=revision, entry_id=None,
                     reason="the file matches what was applied; nothing to record")
            return AcceptReport(revision, None)
        await session.confirm(confirm, session.plan("accept-edit", revision))
        entry_id = await connection.run_sync(checksums.accept, who, revision, found[0].now, reason,
                                             found[0].applied)
        await connection.run_sync(checksums.record_digest_at_head, tuple(scripts.get_heads()), before, who,
                                      files)
    log.info("revision edit accepted", revision=revision, entry_id=entry_id, reason=reason)
    return AcceptReport(revision, entry_id)
