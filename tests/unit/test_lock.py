"""The hashed locks stay in step with the human-edited requirement files, and every installer uses them."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.environment import ROOT

LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def input_pins(path: Path) -> dict[str, str]:
    """Every `name==version` an input asks for, following `-r` includes."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(input_pins(path.parent / line[3:].strip()))
        elif match := PIN.match(line):
            pins[normalized(match.group(1))] = match.group(2)
        elif line:
            raise AssertionError(f"{path.name}: {line!r} is not pinned with == (inputs pin their direct dependencies)")
    return pins


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each package of a lock."""
    packages: dict[str, tuple[str, int]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = normalized(match.group(1))
            packages[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = packages[current]
            packages[current] = (version, hashes + 1)
    return packages


def test_every_input_pin_is_in_its_lock_at_that_version() -> None:
    """A requirement added or bumped in an input without `bash .ci/lock` fails here, naming the stale pins."""
    for source, lock in LOCKS.items():
        wanted = input_pins(ROOT / source)
        have = locked(ROOT / lock)
        stale = {name: (version, have.get(name, ("missing", 0))[0]) for name, version in wanted.items()
                 if have.get(name, ("", 0))[0] != version}
        assert not stale, f"{lock} is stale (input version, locked version): {stale}; run `bash .ci/lock`"
        assert len(have) > len(wanted), f"{lock} holds no transitive dependencies: it is not a complete lock"


def test_every_locked_package_is_hashed_and_both_locks_agree() -> None:
    """Each package carries at least one sha256, and a package in both locks has one version (CI tests the image's)."""
    runtime, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    for lock, packages in (("requirements.lock", runtime), ("requirements-dev.lock", dev)):
        unhashed = sorted(name for name, (_version, hashes) in packages.items() if hashes == 0)
        assert not unhashed, f"{lock}: no hash for {unhashed}"
    assert set(runtime) <= set(dev), "the dev lock installs everything the image does"
    differ = {name: (version, dev[name][0]) for name, (version, _hashes) in runtime.items() if dev[name][0] != version}
    assert not differ, f"the locks disagree: {differ}; run `bash .ci/lock`"


def test_the_image_and_ci_install_the_locks_with_hash_checking() -> None:
    """The Dockerfile installs requirements.lock and .ci/run requirements-dev.lock, both with --require-hashes."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes[^\n]* -r requirements\.lock", dockerfile)
    assert "COPY requirements.lock" in dockerfile and "requirements.txt" not in dockerfile
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes -r requirements-dev\.lock", ci)
    assert "-r requirements-dev.txt" not in ci
    regenerate = (ROOT / ".ci" / "lock").read_text()
    assert "--generate-hashes" in regenerate and "--python-version 3.11" in regenerate
