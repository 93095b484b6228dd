"""A baseline on disk: alembic/baseline/ (beside the versions folder), a manifest and a statements file per kind.

The manifest names the revision the baseline stands for, every revision it covers (file name and
checksum, so an edit of an old revision is noticed), each database kind's statements file with its
checksum (so a hand edit is noticed), what was knowingly left out, and, once the covered files are
retired, the commit that still has them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, Refused

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Dialect

FOLDER = "baseline"
MANIFEST = "manifest.json"
FORMAT = 1
MARK = "BASELINE"  # a revision module's attribute naming the baseline it stands for (its stand-in)


@dataclass(frozen=True)
class Covered:
    """One revision the baseline stands in for: its file's name and checksum when the baseline was made."""

    revision: str
    file: str
    checksum: str


@dataclass(frozen=True)
class Statements:
    """What one kind of database runs to take the baseline, and to undo it."""

    dialect: str
    statements: tuple[str, ...]
    drops: tuple[str, ...]
    checksum: str


@dataclass(frozen=True)
class Baseline:
    """A committed baseline, as its manifest describes it."""

    folder: Path
    revision: str
    message: str
    covered: tuple[Covered, ...]
    dialects: Mapping[str, str]  # database kind -> checksum of its statements file
    left_out: tuple[str, ...] = ()
    retired_in: str | None = None  # the commit that still has the covered revision files

    @property
    def covered_revisions(self) -> frozenset[str]:
        """Every revision id the baseline covers, its own included."""
        return frozenset(item.revision for item in self.covered)

    @property
    def covered_files(self) -> frozenset[str]:
        """The covered revisions' file names, as they sit in the versions folder."""
        return frozenset(item.file for item in self.covered)

    @property
    def span(self) -> str:
        """"0001 … 0999", as history and logs name the covered range."""
        return f"{self.covered[0].revision} … {self.covered[-1].revision}" if self.covered else self.revision

    def path_of(self, dialect: str) -> Path:
        """The statements file of one kind of database."""
        return self.folder / f"{dialect}.json"

    def statements(self, dialect: str) -> Statements:
        """One kind of database's statements, refused when the file no longer matches the manifest."""
        if dialect not in self.dialects:
            raise Refused(f"baseline {self.revision} has no statements for {dialect}",
                          f"it was made for {', '.join(sorted(self.dialects))}",
                          f"run `invoke squash --to {self.revision} --server URL` with a {dialect} server")
        path = self.path_of(dialect)
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise Refused(f"baseline {self.revision}: {path} cannot be read", error.strerror or str(error),
                          "restore it from version control") from None
        checksum = hashlib.sha256(raw).hexdigest()
        if checksum != self.dialects[dialect]:
            raise Refused(f"baseline {self.revision}: {path.name} was changed after it was made",
                          "its checksum no longer matches alembic/baseline/manifest.json, so it is not what was "
                          "verified", f"restore it from version control, or make it again with `invoke squash "
                          f"--to {self.revision}`")
        data = json.loads(raw)
        return Statements(dialect, tuple(data["statements"]), tuple(data["drops"]), checksum)

    def journal_details(self, dialect: str) -> dict[str, object]:
        """What the baseline step's journal row keeps: which baseline, what it covers, its checksum."""
        return {"baseline": {"revision": self.revision, "covers": len(self.covered), "first": self.covered[0].revision
                             if self.covered else self.revision, "dialect": dialect,
                             "checksum": self.dialects.get(dialect)}}


def dialect_key(dialect: Dialect) -> str:
    """The baseline a server takes: postgresql, mariadb, mysql or sqlite (MariaDB is told apart once connected)."""
    if dialect.name == "mysql" and getattr(dialect, "is_mariadb", False):
        return "mariadb"
    return dialect.name


def folder_of(scripts: ScriptDirectory) -> Path:
    """Where a project's baseline lives: beside its (first) versions folder, alembic/baseline."""
    return Path(scripts.versions).parent / FOLDER


def load(folder: Path) -> Baseline | None:
    """The baseline in a folder, None when there is none; a manifest that cannot be read is an error."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path} cannot be read", str(error).rstrip("."),
                          "restore it from version control, or remove the baseline folder") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a baseline manifest of format {FORMAT}",
                          "it was written by another version of the toolkit, or by hand",
                          "make it again with `invoke squash`")
    return Baseline(folder, str(data["revision"]), str(data.get("message", "")),
                    tuple(Covered(str(item["revision"]), str(item["file"]), str(item["checksum"]))
                          for item in data["covered"]),
                    {str(key): str(value) for key, value in data["dialects"].items()},
                    tuple(str(item) for item in data.get("left_out", ())), data.get("retired_in"))


def write(baseline: Baseline, statements: Sequence[Statements]) -> Baseline:
    """Write the statements files, then the manifest naming their checksums (the manifest last: it commits)."""
    baseline.folder.mkdir(parents=True, exist_ok=True)
    checksums = dict(baseline.dialects)
    for item in statements:
        raw = (json.dumps({"revision": baseline.revision, "dialect": item.dialect,
                           "statements": list(item.statements), "drops": list(item.drops)}, indent=1) + "\n").encode()
        _replace(baseline.path_of(item.dialect), raw)
        checksums[item.dialect] = hashlib.sha256(raw).hexdigest()
    written = Baseline(baseline.folder, baseline.revision, baseline.message, baseline.covered, checksums,
                       baseline.left_out, baseline.retired_in)
    _replace(baseline.folder / MANIFEST, (json.dumps(_as_json(written), indent=2) + "\n").encode())
    return written


def _as_json(baseline: Baseline) -> dict[str, Any]:
    return {"format": FORMAT, "revision": baseline.revision, "message": baseline.message,
            "covered": [{"revision": item.revision, "file": item.file, "checksum": item.checksum}
                        for item in baseline.covered],
            "dialects": dict(sorted(baseline.dialects.items())), "left_out": list(baseline.left_out),
            "retired_in": baseline.retired_in}


def _replace(path: Path, raw: bytes) -> None:
    """Write a file whole or not at all (a crash leaves the old one)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(raw)
    os.replace(partial, path)
