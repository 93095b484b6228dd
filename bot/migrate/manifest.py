"""The revision manifest: Alembic's graph (heads, every revision id) cached beside the bytecode.

It is keyed by a fingerprint of everything Alembic reads to build the graph: each version directory's
listing with every entry's size and mtime_ns, alembic.ini's, the Alembic install's, the toolkit version
and the Python bytecode tag. A file touched within RACY_WINDOW_NS of the build (when an edit could keep
the same size and mtime tick) is also pinned by its content hash. A manifest that does not provably match
the files is never used: it is rebuilt from Alembic's answer, or the caller takes the full path.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.logs import get_logger
from bot.paths import ALEMBIC_INI

if TYPE_CHECKING:
    from collections.abc import Mapping

    from alembic.script import ScriptDirectory

log = get_logger("bot.fastpath")

FILE, DIRECTORY, DANGLING = 0, 1, 2  # kinds of entry in a fingerprint's listing


MANIFEST_FORMAT = 2


# Coarse file-system clocks can give an edit made right after the build the same mtime; git calls this racy.
RACY_WINDOW_NS = 2_000_000_000


SKIPPED_ENTRIES = frozenset({"__pycache__"})


@dataclass(frozen=True)
class Manifest:
    """What Alembic's graph says, and the fingerprint of the files it was built from."""

    fingerprint: dict[str, Any]
    heads: tuple[str, ...]
    revisions: frozenset[str]
    version_dirs: tuple[str, ...]
    pinned: dict[str, str]  # racy file path -> sha256 of its content at build time
    digest: str = ""  # of every revision file's checksum (bot.migrate.checksums), matched against the journal's


@dataclass(frozen=True)
class Snapshot:
    """The revision files' fingerprint, taken before Alembic read them, and when."""

    ini: Path
    version_dirs: tuple[str, ...]
    fingerprint: dict[str, Any]
    started_ns: int


def manifest_path(ini: Path = ALEMBIC_INI) -> Path:
    """Beside the bytecode of the project (honouring PYTHONPYCACHEPREFIX for read-only trees)."""
    name = f"revision-manifest.{ini.stem}.json"
    if sys.pycache_prefix:
        return Path(sys.pycache_prefix) / ini.parent.resolve().relative_to("/") / name
    return ini.parent / "__pycache__" / name


def fresh_manifest(ini: Path = ALEMBIC_INI) -> Manifest | None:
    """The stored manifest if it still matches the files; else Alembic's answer, stored for next time."""
    stored = read_manifest(manifest_path(ini))
    if stored is not None and _matches(stored, ini):
        return stored
    return build(ini)


def build(ini: Path = ALEMBIC_INI) -> Manifest | None:
    """Ask Alembic for the graph, and store it when the files did not change meanwhile; None if Alembic fails."""
    try:
        scripts = scripts_at(ini)
        taken = snapshot(scripts, ini)
    except Exception as error:  # noqa: BLE001 - the full path reports a broken history with its own words
        declined("alembic could not read the scripts", error=type(error).__name__)
        return None
    return remember(scripts, taken)


def snapshot(scripts: ScriptDirectory, ini: Path = ALEMBIC_INI) -> Snapshot | None:
    """Fingerprint the files before Alembic reads its graph from them, so an edit made meanwhile shows."""
    started = time.time_ns()
    version_dirs = tuple(str(path) for path in scripts._version_locations)
    try:
        return Snapshot(ini, version_dirs, fingerprint(ini, version_dirs), started)
    except OSError as error:  # a cache must never stop a migration: Alembic reports unreadable files itself
        declined("revision files not readable", error=type(error).__name__)
        return None


def remember(scripts: ScriptDirectory, taken: Snapshot | None,
             files: Mapping[str, str] | None = None) -> Manifest | None:
    """Store the graph Alembic reads (or has just read) from the files as `taken` saw them; None when unsure.

    The full migration path calls this too, so the first start after a release's `invoke migrate` is fast;
    it passes the revision files' checksums (`files`) it has read since `taken`, so they are read once.
    """
    if taken is None:
        return None
    try:
        heads = tuple(scripts.get_heads())
        revisions = frozenset(script.revision for script in scripts.walk_revisions())
    except Exception as error:  # noqa: BLE001 - the full path reports a broken history with its own words
        declined("alembic could not read the scripts", error=type(error).__name__)
        return None
    if _unsupported(scripts):
        return None
    # The full path's own module, loaded only when Alembic has read the graph anyway.
    from bot.migrate.journal import checksums

    try:
        manifest = Manifest(taken.fingerprint, heads, revisions, taken.version_dirs,
                            _pin_racy(taken.version_dirs, taken.started_ns),
                            checksums.digest(files if files is not None
                                             else checksums.files_of(checksums.scripts_of(scripts))))
        changed = fingerprint(taken.ini, taken.version_dirs) != taken.fingerprint
    except OSError:  # a file went away or became unreadable while we hashed it
        changed = True
    if changed:
        declined("revision files changed while reading them")
        return None
    path = manifest_path(taken.ini)
    if read_manifest(path) != manifest:
        write_manifest(manifest, path)
    return manifest


def scripts_at(ini: Path) -> ScriptDirectory:
    """Alembic's view of the revision scripts an ini file points at (the graph needs no toolkit settings)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(AlembicConfig(str(ini)))


def fingerprint(ini: Path, version_dirs: tuple[str, ...]) -> dict[str, Any]:
    """Everything whose change could change Alembic's graph, as cheap stat() facts."""
    alembic_spec = find_spec("alembic")
    alembic_file = alembic_spec.origin if alembic_spec and alembic_spec.origin else ""
    return {
        "format": MANIFEST_FORMAT,
        "toolkit": __version__,
        "python": sys.implementation.cache_tag,
        "alembic": _stat(Path(alembic_file)) if alembic_file else None,
        "ini": _stat(ini),
        "dirs": {directory: _listing(directory) for directory in version_dirs},
    }


def read_manifest(path: Path) -> Manifest | None:
    """A stored manifest, or None when it is missing, unreadable or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest(fingerprint=data["fingerprint"], heads=tuple(data["heads"]),
                        revisions=frozenset(data["revisions"]), version_dirs=tuple(data["version_dirs"]),
                        pinned=dict(data["pinned"]), digest=str(data["digest"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_manifest(manifest: Manifest, path: Path) -> bool:
    """Store atomically (temp file + rename); a read-only tree just keeps paying the full price."""
    document = {"fingerprint": manifest.fingerprint, "heads": list(manifest.heads),
                "revisions": sorted(manifest.revisions), "version_dirs": list(manifest.version_dirs),
                "pinned": manifest.pinned, "digest": manifest.digest}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:
        _discard(temporary)
        log.info("revision manifest not written", path=str(path), reason=type(error).__name__,
                 fix="build it when the image is built: python -m bot.migrate.fastpath")
        return False
    log.debug("revision manifest written", path=str(path), revisions=len(manifest.revisions),
              heads=list(manifest.heads))
    return True


def _discard(path: Path) -> None:
    """Remove a half-written temporary file, if there is one."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _matches(manifest: Manifest, ini: Path) -> bool:
    """The files are those the manifest was built from: same stat facts, same content for racy ones."""
    try:
        if fingerprint(ini, manifest.version_dirs) != manifest.fingerprint:
            return False
        return all(_sha256(Path(path)) == digest for path, digest in manifest.pinned.items())
    except OSError:
        return False


def _unsupported(scripts: ScriptDirectory) -> bool:
    """Sourceless histories are read from bytecode, which the fingerprint does not follow."""
    if scripts.sourceless:
        declined("sourceless revision scripts")
        return True
    return False


def _pin_racy(version_dirs: tuple[str, ...], started_ns: int) -> dict[str, str]:
    """Content hashes of files modified too close to the build for their mtime to prove anything later."""
    pinned: dict[str, str] = {}
    for directory in version_dirs:
        for name, kind, mtime_ns, _size in _listing(directory):
            if kind == FILE and mtime_ns >= started_ns - RACY_WINDOW_NS:
                path = os.path.join(directory, name)
                pinned[path] = _sha256(Path(path))
    return pinned


def _listing(directory: str, prefix: str = "") -> list[list[Any]]:
    """Every entry under a version directory, bytecode caches aside: [relative name, kind, mtime_ns, size].

    Kind is FILE, DIRECTORY or DANGLING (a link whose target is missing: its own facts, so the target
    appearing later changes the listing). Subdirectories are followed (recursive_version_locations reads
    them); a directory's own mtime is left out, since importing its scripts writes __pycache__ into it. An
    entry gone between listing and stat is left out, as a listing taken a moment later would. Kept to plain
    strings: this runs on every start over the whole history, so its cost is the part that grows with it.
    """
    try:
        scanner = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with scanner:
        entries = sorted((entry.name, entry) for entry in scanner if entry.name not in SKIPPED_ENTRIES)
    found: list[list[Any]] = []
    for name, entry in entries:
        if entry.is_dir():
            found.append([prefix + name, DIRECTORY, 0, 0])
            found.extend(_listing(entry.path, f"{prefix}{name}/"))
            continue
        try:
            facts, kind = entry.stat(), FILE
        except FileNotFoundError:
            try:
                facts, kind = entry.stat(follow_symlinks=False), DANGLING
            except FileNotFoundError:
                continue
        found.append([prefix + name, kind, facts.st_mtime_ns, facts.st_size])
    return found


def _stat(path: Path) -> list[Any]:
    facts = path.stat()
    return [str(path), facts.st_size, facts.st_mtime_ns]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def declined(why: str, **fields: Any) -> None:
    """Record why the fast path stepped aside (debug: the full path's own events tell the story)."""
    log.debug("fast path declined", reason=why, **fields)
