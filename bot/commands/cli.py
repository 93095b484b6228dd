"""What each task does, inside the error boundary; tasks.py only forwards flags here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bot.commands.boundary import run
from bot.commands.flags import revision_target, whole_number
from bot.commands.output import print_result
from bot.errors import CheckFailed, ConfigError, MigrationFailed, Refused
from bot.migrate import api as migrations

if TYPE_CHECKING:
    from bot.settings.config import Config


def migrate(to: str = "head", sql: bool = False, allow_destructive: bool = False, no_backup: bool = False,
            x: Sequence[str] = ()) -> None:
    """Upgrade under the migration lock (production: review, and backup when BACKUP_BEFORE_MIGRATE=true)."""
    def command(config: Config) -> None:
        config = _with_flags(config, allow_destructive=allow_destructive, no_backup=no_backup, x=x)
        target = revision_target(to) or "head"
        if sql:
            _print_sql(config, "upgrade", target)
            return
        try:
            migrations.upgrade(config, to=target)
        except MigrationFailed as error:
            from bot.telegram.outbound.notify import alert_migration_failed  # only when a migration failed

            alert_migration_failed(config, error)  # only when BOT_TOKEN and ADMIN_IDS are set; bounded
            raise

    run(command)


def rollback(steps: int | str | None = None, to: str | None = None, yes: bool = False, sql: bool = False,
             no_backup: bool = False, x: Sequence[str] = ()) -> None:
    """Downgrade N steps or to a revision; production asks first; a verified backup comes before."""
    from bot.commands.confirm import confirmation  # the prompt and the backup rail: changing commands only
    from bot.migrate.rails.guards import downgrade_guards

    def command(config: Config) -> None:
        config = _with_flags(config, x=x)
        target = revision_target(to)
        count = 1 if steps is None and target is None else whole_number(steps, "--steps", minimum=1, example="2")
        if sql:
            _print_sql(config, "downgrade", migrations.rollback_target(count, target))
            return
        migrations.rollback(config, steps=count, to=target, confirm=confirmation(yes, required=config.is_production),
                            safeguards=downgrade_guards(config, backup=not no_backup))

    run(command)


def rollback_base(yes: bool = False, sql: bool = False, no_backup: bool = False) -> None:
    """Undo every revision; always asks first; a verified backup comes before."""
    from bot.commands.confirm import confirmation  # the prompt and the backup rail: changing commands only
    from bot.migrate.rails.guards import downgrade_guards

    def command(config: Config) -> None:
        if sql:
            _print_sql(config, "downgrade", "base")
            return
        migrations.rollback_to_base(config, confirm=confirmation(yes),
                                    safeguards=downgrade_guards(config, backup=not no_backup))

    run(command)


def restore(path: str, yes: bool = False, no_backup: bool = False) -> None:
    """Restore a backup under the migration lock; always asks first; the current state is backed up before."""
    from bot.commands.confirm import confirmation  # the prompt: changing commands only
    from bot.migrate.rails.restore import restore as restore_backup  # loads Alembic: off migrate's at-head path

    def command(config: Config) -> None:
        if not path.strip():
            raise ConfigError("no backup was named", "restore needs the path of a backup file",
                              "run `invoke restore backups/<file>` (see `ls backups/`)")
        report = restore_backup(config, Path(path), confirm=confirmation(yes), backup_first=not no_backup)
        print_result(f"restored {report.path} (revision {', '.join(report.after) or 'base'})"
                     + (f"; the state before is in {report.safety_backup}" if report.safety_backup else ""))

    run(command)


def check() -> None:
    """Compare the models with the live schema; exit 7 with the list of differences."""
    from bot.migrate.read.drift import check_drift  # loads Alembic: off migrate's at-head path

    run(lambda config: print_result(check_drift(config)))


def _print_sql(config: Config, direction: str, target: str) -> None:
    """--sql: the offline SQL on stdout, nothing changed."""
    from bot.migrate.read.preview import render_sql  # loads Alembic: off migrate's at-head path

    print_result(render_sql(config, direction, target), end="")


def history(limit: int | str | None = None, as_json: bool = False) -> None:
    """Print the revision graph newest first, with the journal's when, who, where and how long."""
    from bot.migrate.read import overview  # loads Alembic: off migrate's at-head path
    from bot.migrate.read.reports import format_journal_history  # reports build on overview: Alembic, asyncio

    def command(config: Config) -> None:
        shown = whole_number(limit, "--limit", minimum=0, example="5") or None  # 0, like no flag, shows all
        found = overview.read_overview(config)
        if as_json:
            print_result(json.dumps(overview.history_document(found, shown), indent=2))
        else:
            print_result(format_journal_history(found, shown))

    run(command)


def status(as_json: bool = False, check: bool = False) -> None:
    """Print the current revision, head, pending list and half-applied flag; --check exits 7 unless at head."""
    from bot.migrate.read import overview  # loads Alembic: off migrate's at-head path
    from bot.migrate.read.reports import format_journal_status

    def command(config: Config) -> None:
        found = overview.read_overview(config)
        print_result(json.dumps(overview.status_document(found), indent=2) if as_json else format_journal_status(found))
        if check:
            overview.check(found)

    run(command)


def stamp(to: str, yes: bool = False) -> None:
    """Set the database's revision by hand after repairing a half-applied one; always asks first."""
    from bot.commands.confirm import confirmation  # the prompt: changing commands only
    from bot.migrate.journal.repair import stamp as stamp_database  # loads Alembic: off migrate's at-head path

    run(lambda config: stamp_database(config, revision_target(to) or to, confirm=confirmation(yes)))


def accept_edit(revision: str, reason: str, yes: bool = False) -> None:
    """Accept an edited applied revision after checking the change; always asks first."""
    from bot.commands.confirm import confirmation  # the prompt: changing commands only
    from bot.migrate.journal.repair import accept_edit as accept  # loads Alembic: off migrate's at-head path

    def command(config: Config) -> None:
        report = accept(config, revision, reason, confirm=confirmation(yes))
        outcome = (f"edit accepted (journal entry {report.entry_id})" if report.entry_id is not None
                   else "the file matches what was applied")
        print_result(f"revision {report.revision}: {outcome}")

    run(command)


def revision(message: str, autogenerate: bool = False) -> None:
    """Write a new revision file and print its path."""
    def command(config: Config) -> None:
        from alembic.util import CommandError  # Alembic is imported by create_revision anyway

        try:
            print_result(migrations.create_revision(message, autogenerate, config=config))
        except CommandError as error:
            if "not up to date" in str(error):
                raise Refused("the database is behind head, so autogenerate cannot compare it with the models",
                              "the difference would repeat what the pending revisions already do",
                              "run `invoke migrate` first, then `invoke revision --autogenerate` again") from None
            raise ConfigError("the revision could not be written", str(error).rstrip("."),
                              "see `invoke --help revision`") from None

    run(command)


def start(allow_destructive: bool = False, x: Sequence[str] = ()) -> None:
    """The startup sequence: migrate when production says so, refuse a stale schema, run the bot."""
    from bot.startup import start as start_bot  # the start-up sequence: `start` only

    run(lambda config: start_bot(_with_flags(config, allow_destructive=allow_destructive, x=x)), log_summary=True)


def review(as_json: bool = False, start: str | None = None) -> None:
    """Judge the pending revisions rendered offline; print the findings; exit 7 on an unacknowledged one."""
    from bot.migrate.read.reports import format_review  # loads Alembic: off migrate's at-head path
    from bot.migrate.review.offline import check_report, review_pending

    def command(config: Config) -> None:
        report = review_pending(config, revision_target(start, "--from"))
        print_result(json.dumps(report.as_json(), indent=2) if as_json else format_review(report))
        check_report(report)

    run(command)


def squash(to: str | None = None, check: bool = False, retire: bool = False, servers: Sequence[str] = (),
           leave_out: Sequence[str] = ()) -> None:
    """Make and verify a baseline (or --check the committed one, or --retire the files it covers)."""
    from bot.data.urls import normalize_database_url  # squash only
    from bot.migrate.baseline import squash as baseline  # loads Alembic and the catalog readers: squash only

    def command(config: Config) -> None:
        if check and retire:
            raise ConfigError("--check and --retire were both given", "one checks the baseline, the other deletes "
                              "files", "run `invoke squash --check` first, then `invoke squash --retire`")
        urls = [normalize_database_url(raw) for raw in servers]
        if retire:
            retired, deleted, standin = baseline.retire(config)
            print_result(f"baseline {retired.revision}: {len(deleted)} revision file(s) retired (they stay in commit "
                         f"{retired.retired_in}); {standin} stands in for them")
            return
        report = baseline.check(config, servers=urls) if check else \
            baseline.squash(config, revision_target(to), servers=urls, leave_out=leave_out)
        verb = "checked" if check else ("written to " + str(report.written) if report.written else "not written")
        print_result("\n".join([f"baseline {report.revision} (covers {report.covered} revision(s)): {verb}",
                                 *report.lines()]))
        if not report.equal:
            count = sum(len(build.differences) for build in report.builds) + len(report.problems)
            raise CheckFailed(f"baseline {report.revision} differs from the history in {count} place(s)",
                              "see the list on stdout" + ("" if check else "; nothing was written"),
                              "squash again from the revisions as they are (`invoke squash --to "
                              f"{report.revision}`), or restore the edited file from version control")

    run(command)


def _with_flags(config: Config, *, allow_destructive: bool = False, no_backup: bool = False,
                x: Sequence[str] = ()) -> Config:
    """Command-line flags override their variables for this one run (the guards read only the Config)."""
    if allow_destructive:
        config = replace(config, allow_destructive_migrations=True)
    if no_backup:
        config = replace(config, backup_before_migrate=False)
    if x:
        config = replace(config, x_arguments=tuple(x))
    return config


def doctor(as_json: bool = False) -> None:
    """Print the effective configuration (secrets masked), database and Bot API verdicts; exit 7 on a failure."""
    from bot.commands.doctor import diagnose, raise_on_failure, render_json, render_table  # `doctor` only

    def command(config: Config) -> None:
        findings = diagnose(config)
        print_result(render_json(config, findings) if as_json else render_table(config, findings))
        raise_on_failure(findings)

    run(command)
