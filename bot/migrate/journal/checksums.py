"""Checksums of revision files, so an applied revision edited afterwards is noticed (Flyway's `validate`).

Each applied step's journal row keeps two checksums of its revision file: the file's bytes, and its compiled
code without line numbers, so an edit that only touches comments or blank lines still matches. The code
checksum names the Python version that compiled it; across versions only the file checksum can be
compared. A `checksums` row written after each upgrade to head holds one digest of every revision's file
checksum, which lets the at-head fast path validate with one row instead of one per revision.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.errors import Refused
from bot.logs import get_logger
from bot.migrate import journal
from bot.migrate.baseline.store import MARK
from bot.migrate.journal.origin import Origin
from bot.migrate.journal_sql import CHECKSUMS, details_of, latest_digest
from bot.settings.config import Config

log = get_logger("bot.migrations")

ACCEPTED = "checksum"  # journal kind: an edit of an applied revision, accepted by an operator (or a baseline)


@dataclass(frozen=True)
class Checksum:
    """A revision file's bytes and its compiled code (line numbers and comments left out)."""

    file: str
    code: str | None  # "<python cache tag>:<sha256>", or None when the code could not be read

    def as_json(self) -> dict[str, object]:
        """As kept in a journal row's details."""
        return {"file": self.file, "code": self.code}

    @classmethod
    def from_json(cls, data: Any) -> Checksum | None:
        """From a journal row's details; None when the row has none."""
        if not isinstance(data, Mapping) or not isinstance(data.get("file"), str):
            return None
        code = data.get("code")
        return cls(data["file"], code if isinstance(code, str) else None)

    def same_revision(self, other: Checksum) -> bool:
        """The same file, or the same code compiled by the same Python (so only comments or whitespace differ)."""
        if self.file == other.file:
            return True
        return self.code is not None and self.code == other.code


@dataclass(frozen=True)
class Edited:
    """An applied revision whose file no longer matches what was applied."""

    revision: str
    applied: Checksum
    now: Checksum
    entry_id: int

    def as_json(self) -> dict[str, object]:
        """For `invoke status --json` / `history --json`."""
        return {"revision": self.revision, "applied": self.applied.as_json(), "now": self.now.as_json(),
                "entry_id": self.entry_id}


def file_checksum(path: str | Path) -> str:
    """sha256 of a revision file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def of_script(path: str | Path, module: ModuleType | None, file: str | None = None) -> Checksum:
    """Both checksums of a revision script, as Alembic has it loaded (`file`: its file checksum, if already read)."""
    return Checksum(file or file_checksum(path), code_checksum(module))


def code_checksum(module: ModuleType | None) -> str | None:
    """The compiled code of a revision module, without line numbers, file name or comments; None if unreadable."""
    spec = getattr(module, "__spec__", None)
    loader = getattr(spec, "loader", None)
    if spec is None or loader is None or not hasattr(loader, "get_code"):
        return None
    try:
        code = loader.get_code(spec.name)  # the bytecode cache Alembic's import just wrote, when it could
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    if code is None:
        return None
    digest = hashlib.sha256()
    _feed(code, digest)
    return f"{sys.implementation.cache_tag}:{digest.hexdigest()}"


def _feed(code: CodeType, digest: Any) -> None:
    """What the code does: its instructions, names and constants, nested code included; never where it sits."""
    digest.update(marshal.dumps((code.co_name, code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                                 code.co_flags, code.co_code, code.co_names, code.co_varnames, code.co_freevars,
                                 code.co_cellvars, getattr(code, "co_exceptiontable", b""))))
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            _feed(constant, digest)
        else:
            digest.update(_constant(constant))


def _constant(value: Any) -> bytes:
    """A constant's bytes, independent of hash randomization (frozensets are sorted)."""
    if isinstance(value, frozenset):
        return b"frozenset" + b"".join(sorted(_constant(item) for item in value))
    if isinstance(value, tuple):
        return b"tuple" + b"".join(_constant(item) for item in value)
    return marshal.dumps(value)


def digest(files: Mapping[str, str]) -> str:
    """One sha256 over every revision's file checksum, in revision order."""
    return hashlib.sha256(json.dumps(sorted(files.items()), separators=(",", ":")).encode()).hexdigest()


def recorded(connection: Connection) -> dict[str, tuple[int, Checksum]]:
    """The latest checksum the journal holds for each revision (applied step rows and accepted edits)."""
    if not journal.exists(connection):
        return {}
    table = journal.journal
    query = (select(table.c.id, table.c.revision, table.c.details)
             .where(table.c.kind.in_((journal.STEP, ACCEPTED)), table.c.direction.in_(("upgrade", "accept")),
                    table.c.status.in_((journal.APPLIED, journal.OK)), table.c.details.is_not(None))
             .order_by(table.c.id))
    found: dict[str, tuple[int, Checksum]] = {}
    for row in connection.execute(query):
        checksum = Checksum.from_json(details_of(row.details).get("checksum"))
        if checksum is not None and row.revision:
            found[str(row.revision)] = (int(row.id), checksum)
    return found


def edited(connection: Connection, scripts: Iterable[tuple[str, str, ModuleType | None]],
           applied: set[str], files: Mapping[str, str]) -> list[Edited]:
    """Applied revisions whose file changed since, from (revision, path, module) triples and their file checksums."""
    known = recorded(connection)
    found = []
    for revision, _path, module in scripts:
        if revision not in applied or revision not in known:
            continue
        entry_id, then = known[revision]
        if files[revision] == then.file:
            continue
        now = Checksum(files[revision], code_checksum(module))
        if not then.same_revision(now):
            found.append(Edited(revision, then, now, entry_id))
    return found


def missing(connection: Connection, revisions: Iterable[str]) -> set[str]:
    """Applied revisions the journal holds no checksum for (applied before checksums, or by plain alembic)."""
    known = recorded(connection)
    return {revision for revision in revisions if revision not in known}


def scripts_of(scripts: Any) -> list[tuple[str, str, ModuleType | None]]:
    """(revision, path, module) of every script of an Alembic ScriptDirectory but a baseline's stand-in.

    A stand-in's file is the same for every baseline of its revision; what it runs is checked by the
    baseline's own checksums (docs/BASELINE.md).
    """
    return [(script.revision, str(script.path), script.module) for script in scripts.walk_revisions()
            if getattr(script.module, MARK, None) is None]


def files_of(triples: Iterable[tuple[str, str, ModuleType | None]]) -> dict[str, str]:
    """Each revision's file checksum."""
    return {revision: file_checksum(path) for revision, path, _module in triples}


def record_baseline(connection: Connection, who: Origin,
                    scripts: Iterable[tuple[str, str, ModuleType | None]], revisions: set[str]) -> list[str]:
    """Give applied revisions the journal has no checksum for one now (they ran before checksums were kept)."""
    wanted = [(revision, path, module) for revision, path, module in scripts if revision in revisions]
    if not wanted:
        return []

    def work(conn: Connection) -> list[str]:
        now = journal.now()
        for revision, path, module in wanted:
            _insert_accepted(conn, who, revision, of_script(path, module), now,
                             "baseline: recorded after the revision was applied")
        return [revision for revision, _path, _module in wanted]

    return journal.committed(connection, work)


def accept(connection: Connection, who: Origin, revision: str, checksum: Checksum, reason: str,
           previous: Checksum | None) -> int:
    """Journal an operator's acceptance of an edited applied revision; returns the entry id."""
    return journal.committed(connection, lambda conn: _insert_accepted(
        conn, who, revision, checksum, journal.now(), reason, previous))


def record_digest_at_head(connection: Connection, heads: tuple[str, ...], current: tuple[str, ...],
                          who: Origin, files: Mapping[str, str]) -> None:
    """At the scripts' single head, keep the journal's digest equal to the files' (what the at-head fast path reads)."""
    if len(heads) != 1 or set(current) != set(heads):
        return
    if latest_digest(connection) != digest(files):
        record_digest(connection, who, files)
    if connection.in_transaction():
        connection.commit()


def record_digest(connection: Connection, who: Origin, files: Mapping[str, str]) -> int:
    """One row with the digest of every revision's file checksum, for the fast path."""
    details = json.dumps({"digest": digest(files), "revisions": len(files)}, separators=(",", ":"))
    return journal.committed(connection, lambda conn: journal.insert_entry(
        conn, kind=CHECKSUMS, status=journal.OK, who=who, started_at=journal.now(), finished_at=journal.now(),
        description=f"checksums of {len(files)} revision(s) at head", success=True, details=details))


def _insert_accepted(connection: Connection, who: Origin, revision: str, checksum: Checksum,
                     moment: Any, reason: str, previous: Checksum | None = None) -> int:
    details = {"checksum": checksum.as_json(), "reason": reason,
               "previous": previous.as_json() if previous is not None else None}
    return journal.insert_entry(connection, kind=ACCEPTED, status=journal.OK, who=who, started_at=moment,
                                finished_at=moment, description=f"checksum of {revision}: {reason}"[:255],
                                revision=revision, direction="accept", success=True,
                                details=json.dumps(details, sort_keys=True, separators=(",", ":")))


def refuse_edited(found: Iterable[Edited], config: Config, location: str) -> None:
    """An applied revision whose file changed: production refuses to go on (exit 6), development warns."""
    names = [item.revision for item in found]
    if not names:
        return
    if not config.is_production:
        log.warning("applied revision edited", revisions=names, database=location,
                    fix="`invoke accept-edit --revision REV --reason ...` once the change is intended")
        return
    raise Refused(f"revision(s) {', '.join(names)} were edited after they were applied to {location}",
                  "an applied revision never runs again, so the edit does not match what this database holds",
                  "restore the file from version control, or, if the edit is intended (a fix for new databases), "
                  f"run `invoke accept-edit --revision {names[0]} --reason '...'` (docs/REVIEW.md)",
                  revisions=names)
