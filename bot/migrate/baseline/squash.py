"""`invoke squash`: make a baseline from the history, prove it equal, re-check it in CI, retire the old files.

A baseline is made, never typed: a scratch database is migrated through the history to REV, read back
into statements, and a second scratch database is built from those statements; the two are compared
object by object and row by row, and the baseline is written only when nothing differs. This happens on
each kind of database given (SQLite always, on a temporary file).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from alembic import command
from bot.errors import ConfigError, Refused
from bot.logs import get_logger
from bot.migrate.baseline import store
from bot.migrate.baseline.capture import capture, differences
from bot.migrate.baseline.parts import Uncarried, refuse_uncarried
from bot.migrate.baseline.scratch import quiet_alembic, scratch_connection, sync_engine
from bot.migrate.baseline.standin import baseline_of, literal_text, standin_path, standin_source
from bot.migrate.baseline.store import dialect_key
from bot.migrate.graph import UNRESOLVED, alembic_config, load_scripts
from bot.migrate.journal.checksums import file_checksum
from bot.migrate.journal.origin import git_commit
from bot.settings.config import Config

log = get_logger("bot.baseline")


@dataclass(frozen=True)
class Build:
    """One kind of database: the baseline's statements for it and every difference the proof found."""

    dialect: str
    statements: store.Statements
    differences: tuple[str, ...]


@dataclass(frozen=True)
class SquashReport:
    """What squash (or --check) made or checked, and whether the baseline was written."""

    revision: str
    covered: int
    builds: tuple[Build, ...]
    problems: tuple[str, ...] = ()
    written: Path | None = None
    dropped: tuple[str, ...] = ()  # kinds the previous baseline had and this squash did not prove

    @property
    def equal(self) -> bool:
        """Nothing differs on any database, and nothing else is wrong."""
        return not self.problems and all(not build.differences for build in self.builds)

    def lines(self) -> list[str]:
        """The report on stdout: one line per database, then every difference."""
        shown = [f"{build.dialect}: {len(build.statements.statements)} statement(s), "
                 + ("equal to the history" if not build.differences else f"{len(build.differences)} difference(s)")
                 for build in self.builds]
        shown += [f"  {build.dialect}: {line}" for build in self.builds for line in build.differences]
        shown += [f"  {line}" for line in self.problems]
        shown += [f"{kind}: dropped: the previous baseline had it, this squash was not given such a server "
                  "(pass --server URL to keep it)" for kind in self.dropped]
        return shown


def squash(config: Config, to: str | None = None, *, servers: Sequence[URL] = (),
           leave_out: Sequence[str] = ()) -> SquashReport:
    """Make and verify a baseline for revision `to` (default: head) on every database kind; write it if equal."""
    scripts = load_scripts(alembic_config(config))
    revision = resolve(scripts, to or "head")
    covered = covered_scripts(scripts, revision)
    left_out = frozenset(item.strip() for item in leave_out if item.strip())
    builds = []
    for server in targets(config, servers):
        builds.append(build(config, server, revision, covered, left_out))
        log.info("baseline verified" if not builds[-1].differences else "baseline differs from the history",
                 dialect=builds[-1].dialect, revision=revision, statements=len(builds[-1].statements.statements),
                 differences=len(builds[-1].differences))
    report = SquashReport(revision, len(covered), tuple(builds))
    if not report.equal:
        return report
    previous = baseline_of(scripts)
    folder = store.folder_of(scripts)
    made = store.Baseline(folder, revision, covered[-1].doc or "",
                          tuple(store.Covered(script.revision, Path(script.path).name, file_checksum(script.path))
                                for script in covered), {}, tuple(sorted(left_out)),
                          previous.retired_in if previous is not None and previous.revision == revision else None)
    written = store.write(made, [item.statements for item in builds])
    dropped = sorted(set(previous.dialects) - set(written.dialects)) if previous is not None else []
    for kind in dropped:  # made for an earlier squash, not proved for this one: never left behind
        written.path_of(kind).unlink(missing_ok=True)
    log.info("baseline written", revision=revision, covers=len(covered), folder=str(folder),
             dialects=sorted(written.dialects), dropped=dropped)
    return replace(report, written=folder, dropped=tuple(dropped))


def check(config: Config, *, servers: Sequence[URL] = ()) -> SquashReport:
    """Re-verify the committed baseline: covered files unchanged, statements unedited, still equal to the history."""
    scripts = load_scripts(alembic_config(config))
    baseline = baseline_of(scripts)
    if baseline is None:
        raise ConfigError("the project has no baseline", f"{store.folder_of(scripts)} holds no manifest",
                          "make one with `invoke squash --to REV`")
    problems = [] if baseline.retired_in else edited_files(scripts, baseline)
    servers_by_kind = {kind: url for url in targets(config, servers) for kind in [server_kind(url)]}
    missing = sorted(set(baseline.dialects) - set(servers_by_kind))
    if missing:
        raise ConfigError(f"baseline {baseline.revision} has statements for {', '.join(missing)}, "
                          "but no such server was given", "each kind is checked on a real server",
                          "pass --server URL for each (e.g. --server postgresql://postgres@127.0.0.1/postgres)")
    builds = []
    covered = covered_scripts(scripts, baseline.revision) if not baseline.retired_in else []
    for kind in sorted(baseline.dialects):
        try:
            statements = baseline.statements(kind)
        except Refused as error:
            problems.append(error.what)
            continue
        builds.append(verify(config, servers_by_kind[kind], baseline.revision, covered, statements,
                             frozenset(baseline.left_out)))
    report = SquashReport(baseline.revision, len(baseline.covered), tuple(builds), tuple(problems))
    log.info("baseline checked", revision=baseline.revision, equal=report.equal,
             differences=sum(len(item.differences) for item in builds) + len(problems))
    return report


def retire(config: Config) -> tuple[store.Baseline, list[str], Path]:
    """Delete the covered revision files and write the stand-in revision in their place."""
    scripts = load_scripts(alembic_config(config))
    baseline = baseline_of(scripts)
    if baseline is None:
        raise ConfigError("the project has no baseline to retire files for", "squash makes one first",
                          "run `invoke squash --to REV`, commit it, then `invoke squash --retire`")
    if baseline.retired_in:
        raise Refused(f"the files baseline {baseline.revision} covers are already retired",
                      f"commit {baseline.retired_in} holds them", "nothing to do")
    edited = edited_files(scripts, baseline)
    if edited:
        raise Refused(f"baseline {baseline.revision} no longer matches its revision files: {edited[0]}",
                      "retiring them now would lose what the baseline does not carry",
                      "run `invoke squash --check`, and squash again if the edit is intended")
    commit = committed_in(scripts, baseline)
    paths = {Path(script.path).name: Path(script.path) for script in scripts.walk_revisions()}
    retired = replace(baseline, retired_in=commit)
    standin = standin_path(scripts, baseline)
    standin.write_text(standin_source(retired))
    store.write(retired, [])
    deleted = []
    for item in baseline.covered:
        path = paths.get(item.file)
        if path is not None and path != standin:
            path.unlink()
            deleted.append(item.file)
    log.info("revision files retired", revision=baseline.revision, deleted=len(deleted), commit=commit,
             standin=str(standin))
    return retired, deleted, standin


def resolve(scripts: ScriptDirectory, to: str) -> str:
    """The one revision id `to` names (head, an id or a prefix), or a clear error."""
    try:
        found = scripts.get_revisions(to)
    except UNRESOLVED as error:
        raise ConfigError(f"cannot squash to {to!r}", str(error).rstrip("."),
                          "pick a revision from `invoke history`") from None
    if len(found) != 1 or found[0] is None:
        raise ConfigError(f"cannot squash to {to!r}", "it names several heads (or none)",
                          "merge the heads first, or pass --to REV")
    return found[0].revision


def covered_scripts(scripts: ScriptDirectory, revision: str) -> list[Script]:
    """REV and every revision below it, oldest first; refused when a later revision branches off below REV."""
    covered = list(reversed(list(scripts.revision_map.iterate_revisions(revision, "base"))))
    ids = {script.revision for script in covered}
    for script in scripts.walk_revisions():
        if script.revision in ids:
            continue
        below = [down for down in (*script._all_down_revisions, *(script.dependencies or ())) if down in ids and
                 down != revision]
        if below:
            raise Refused(f"revision {script.revision} starts from {below[0]}, below {revision}",
                          "a baseline stands for one revision; a branch from inside it would lose its parent",
                          f"squash to a revision after {script.revision} is merged, or to {below[0]}")
    return [script for script in covered if isinstance(script, Script)]


def targets(config: Config, servers: Sequence[URL]) -> list[URL]:
    """The configured database's server, every --server, then SQLite (a temporary file); one build per server."""
    found: list[URL] = []
    for url in (config.database_url, *servers):
        if url.get_backend_name() != "sqlite" and all(
                (url.get_backend_name(), url.host, url.port) != (other.get_backend_name(), other.host, other.port)
                for other in found):
            found.append(url)
    return [*found, URL.create("sqlite+aiosqlite")]


def server_kind(server: URL) -> str:
    """postgresql, mariadb, mysql or sqlite: asked of the server itself (MariaDB answers as mysql otherwise)."""
    if server.get_backend_name() == "sqlite":
        return "sqlite"
    engine = sync_engine(server)
    try:
        with engine.connect() as connection:
            return dialect_key(connection.dialect)
    finally:
        engine.dispose()


def build(config: Config, server: URL, revision: str, covered: list[Script], left_out: frozenset[str]) -> Build:
    """Capture the history's database at REV on this server and prove the captured statements rebuild it."""
    with scratch_connection(server) as history:
        replay(config, history, revision)
        captured = capture(history)
        refused = [item for item in captured.uncarried if item.key not in left_out]
        if refused:
            refuse_uncarried(refused, creators(config, server, covered, refused))
        statements = store.Statements(captured.dialect, tuple(captured.statements()), tuple(captured.drops), "")
        return Build(captured.dialect, statements, tuple(compare_with(server, history, statements, left_out)))


def verify(config: Config, server: URL, revision: str, covered: list[Script], statements: store.Statements,
           left_out: frozenset[str]) -> Build:
    """Build stored statements and compare them with the history's database (or, once retired, just build them)."""
    if not covered:
        with scratch_connection(server) as built:
            load(built, statements.statements)
        return Build(statements.dialect, statements, ())
    with scratch_connection(server) as history:
        replay(config, history, revision)
        return Build(statements.dialect, statements, tuple(compare_with(server, history, statements, left_out)))


def compare_with(server: URL, history: Connection, statements: store.Statements,
                 left_out: frozenset[str]) -> list[str]:
    """Build the statements on a second scratch database and list how it differs from the history's."""
    with scratch_connection(server) as built:
        try:
            load(built, statements.statements)
        except Exception as error:  # noqa: BLE001 - a statement that fails is the difference reported
            return [f"the baseline does not build: {str(error).splitlines()[0]}"]
        found = differences(history, built, left_out=left_out)
        history.rollback()
        built.rollback()
        return found


def replay(config: Config, connection: Connection, revision: str) -> None:
    """Migrate a scratch database through the history to REV, in-process, as plain Alembic would."""
    url = connection.engine.url
    alembic_cfg = alembic_config(replace(config, database_url=url), connection=connection)
    with quiet_alembic():
        command.upgrade(alembic_cfg, revision)
    if connection.in_transaction():
        connection.commit()


def load(connection: Connection, statements: Sequence[str]) -> None:
    """Run a baseline's statements in one transaction, the way its step runs them."""
    with connection.begin():
        for statement in statements:
            connection.execute(literal_text(statement))


def creators(config: Config, server: URL, covered: list[Script], objects: list[Uncarried]) -> dict[str, str | None]:
    """Which revision made each object: a third scratch database, migrated one revision at a time."""
    found: dict[str, str | None] = {}
    remaining = list(objects)
    with scratch_connection(server) as connection:
        for script in covered:
            replay(config, connection, script.revision)
            for item in list(remaining):
                if connection.execute(text(item.probe)).first() is not None:
                    found[item.key] = script.revision
                    remaining.remove(item)
            connection.rollback()
            if not remaining:
                break
    return found


def edited_files(scripts: ScriptDirectory, baseline: store.Baseline) -> list[str]:
    """Covered revisions whose file is missing or no longer what the baseline was made from."""
    paths = {Path(script.path).name: script for script in scripts.walk_revisions()}
    problems = []
    for item in baseline.covered:
        script = paths.get(item.file)
        if script is None:
            problems.append(f"revision {item.revision}: its file {item.file} is missing")
        elif file_checksum(script.path) != item.checksum:
            problems.append(f"revision {item.revision} ({item.file}) was edited after baseline {baseline.revision} "
                            "was made")
    return problems


def committed_in(scripts: ScriptDirectory, baseline: store.Baseline) -> str:
    """The commit that holds the covered files, so a database behind the baseline can still be brought up."""
    folder = Path(scripts.versions).resolve()
    git_dir = next((parent / ".git" for parent in (folder, *folder.parents) if (parent / ".git").is_dir()), None)
    commit = git_commit(git_dir) if git_dir is not None else None
    paths = {Path(script.path).name: Path(script.path).resolve() for script in scripts.walk_revisions()}
    unsaved = [item.file for item in baseline.covered if commit is None or git_dir is None or not _in_commit(
        git_dir.parent, commit, paths.get(item.file))]
    if commit is None or unsaved:
        first = unsaved[0] if unsaved else "no commit"
        raise Refused(f"the covered revision files are not all in the checkout's commit ({first})",
                      "once deleted, a database behind the baseline needs a release that still has them",
                      "commit the project (baseline included) first, then run `invoke squash --retire`")
    return commit


def _in_commit(top: Path, commit: str, path: Path | None) -> bool:
    """Whether git's commit holds this file, byte for byte."""
    if path is None:
        return False
    try:
        shown = subprocess.run(["git", "-C", str(top), "show", f"{commit}:{path.relative_to(top).as_posix()}"],
                               capture_output=True, timeout=30, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return False
    return shown.returncode == 0 and shown.stdout == path.read_bytes()
