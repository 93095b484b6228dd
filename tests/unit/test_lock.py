"""The hashed locks stay in step with the inputs, are complete for every Python they are for, and install one way."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.documents import shell_blocks
from tests.support.environment import ROOT
from tests.support.locks import (
    LOCKS,
    Pin,
    environments,
    input_requirements,
    installed_requirements,
    lock_options,
    read_lock,
    supported_pythons,
    unmet_requirements,
)

# An install from a lock, wherever it is written: exactly the lock's files, then the environment checked.
LOCKED_INSTALL = re.compile(r"pip install (?:--quiet )?--no-deps --require-hashes -r (requirements(?:-dev)?\.lock)"
                            r"( && (?:sudo )?(?:\S*/)?pip check|\s*\\?\n\s*(?:&& )?(?:\S*/)?(?:python -m )?pip check)")


def pins_of(lock: str) -> list[Pin]:
    """The entries of one of the repository's locks."""
    return read_lock((ROOT / lock).read_text(encoding="utf-8"))


def cached(requires: Callable[[str], list[Requirement]]) -> Callable[[str], list[Requirement]]:
    """The same metadata reader, reading each distribution once."""
    return functools.lru_cache(maxsize=None)(requires)


def test_every_input_pin_is_in_its_lock_at_that_version() -> None:
    """A requirement added or bumped in an input without `bash .ci/lock` fails here, naming the stale pins."""
    for source, lock in LOCKS.items():
        wanted = input_requirements(ROOT / source)
        unpinned = [str(requirement) for requirement in wanted
                    if [spec.operator for spec in requirement.specifier] != ["=="]]
        assert not unpinned, f"{source}: {unpinned} not pinned with == (inputs pin their direct dependencies)"
        have = {pin.name: pin.version for pin in pins_of(lock)}
        stale = {}
        for requirement in wanted:
            locked = have.get(canonicalize_name(requirement.name))
            if locked is None or not requirement.specifier.contains(locked):
                stale[requirement.name] = (str(requirement.specifier), str(locked or "missing"))
        assert not stale, f"{lock} is stale (input version, locked version): {stale}; run `bash .ci/lock`"
        assert len(have) > len(wanted), f"{lock} holds no transitive dependencies: it is not a complete lock"


def test_every_locked_package_is_hashed_and_both_locks_agree() -> None:
    """Each entry carries a sha256, pins one version once, and a package in both locks has one version."""
    runtime, dev = pins_of("requirements.lock"), pins_of("requirements-dev.lock")
    for lock, pins in (("requirements.lock", runtime), ("requirements-dev.lock", dev)):
        assert not [pin.name for pin in pins if pin.hashes == 0], f"{lock}: an entry without a hash"
        assert len({pin.name for pin in pins}) == len(pins), f"{lock}: a package pinned twice"
        assert lock_options((ROOT / lock).read_text()) == ["--only-binary :all:"], f"{lock}: wheels only"
    dev_versions = {pin.name: pin.version for pin in dev}
    assert {pin.name for pin in runtime} <= set(dev_versions), "the dev lock installs everything the image does"
    differ = {pin.name: (pin.version, dev_versions[pin.name]) for pin in runtime
              if dev_versions[pin.name] != pin.version}
    assert not differ, f"the locks disagree: {differ}; run `bash .ci/lock`"


def test_every_requirement_of_every_locked_package_has_a_locked_pin() -> None:
    """From the inputs down, each requirement whose marker holds on a supported Python is met by a pin, extras too."""
    where = environments(supported_pythons())
    for source, lock in LOCKS.items():
        pins = pins_of(lock)
        unmet = unmet_requirements(pins, source, input_requirements(ROOT / source), installed_requirements(pins),
                                   where)
        assert not unmet, f"{lock} is incomplete:\n" + "\n".join(map(str, unmet))


def test_a_lock_without_the_pin_only_an_extra_asks_for_is_reported() -> None:
    """Dropping from the lock a package that is only reached through an extra names the requirer and that extra."""
    pins = pins_of("requirements.lock")
    roots, requires = input_requirements(ROOT / "requirements.txt"), cached(installed_requirements(pins))
    where = environments(supported_pythons()[:1])
    reported = []
    for dropped in pins:
        unmet = unmet_requirements([pin for pin in pins if pin != dropped], "requirements.txt", roots, requires, where)
        reported.extend(entry for entry in unmet if entry.via_extra and entry.locked is None)
    assert reported, "no locked package is reached through an extra: this case has nothing to show"
    first = reported[0]
    assert f"through its extra {first.via_extra!r}" in str(first) and "the lock has no pin for it" in str(first)
    assert first.requirer != "requirements.txt" and "extra" in str(first.requirement.marker), first


def test_a_pin_outside_a_requirements_range_is_reported() -> None:
    """A locked version that a locked package's requirement excludes is reported with both versions."""
    pins = pins_of("requirements.lock")
    roots, requires = input_requirements(ROOT / "requirements.txt"), cached(installed_requirements(pins))
    needed = next(requirement for pin in pins for requirement in requires(pin.name)
                  if requirement.marker is None and requirement.specifier)
    target = canonicalize_name(needed.name)
    locked = next(pin for pin in pins if pin.name == target)
    outside = next(version for version in ("0.0.1", "9999.0") if not needed.specifier.contains(version))
    moved = [Pin(pin.name, Version(outside), pin.marker, pin.hashes) if pin is locked else pin for pin in pins]
    unmet = unmet_requirements(moved, "requirements.txt", roots, requires, environments(supported_pythons()[:1]))
    assert any(entry.requirement == needed and str(entry.locked) == outside for entry in unmet), unmet
    assert f"the lock pins {outside}" in "\n".join(map(str, unmet))


def test_a_requirement_that_holds_only_on_a_later_python_needs_a_pin() -> None:
    """A requirement marked for Python 3.13 is unmet on 3.13 when nothing pins it, and ignored on 3.11."""
    lock = "app==1.0 --hash=sha256:00\nhelper==2.0 --hash=sha256:11\n"
    metadata = {"app": [Requirement("helper>=2"), Requirement('legacy-cgi>=2; python_version >= "3.13"')],
                "helper": []}
    unmet = unmet_requirements(read_lock(lock), "requirements.txt", [Requirement("app==1.0")],
                               metadata.__getitem__, environments(("3.11", "3.13")))
    assert sorted(entry.environment for entry in unmet) == ["Python 3.13 Linux aarch64", "Python 3.13 Linux x86_64"]
    assert str(unmet[0]).startswith("app==1.0 requires legacy-cgi>=2; python_version >= \"3.13\" on Python 3.13")


def test_the_locks_are_made_for_the_pythons_the_readme_names() -> None:
    """`.ci/lock` resolves universally from the lowest Python the README names, wheels only, hashes on."""
    regenerate = (ROOT / ".ci" / "lock").read_text()
    lowest = min(supported_pythons(), key=lambda version: tuple(map(int, version.split("."))))
    for option in ("--universal", f"--python-version {lowest}", "--generate-hashes", "--only-binary :all:",
                   "--emit-build-options"):
        assert option in regenerate, f".ci/lock no longer passes {option}"
    assert "--python-platform" not in regenerate, "a platform-specific resolution drops other platforms' markers"


def test_every_install_from_a_lock_installs_exactly_the_lock_then_checks() -> None:
    """README, .ci/run, the Dockerfile, deploy/ and docs/ all install a lock with --no-deps, then run pip check."""
    places = [ROOT / "README.md", ROOT / ".ci" / "run", ROOT / "Dockerfile", *sorted((ROOT / "deploy").rglob("*")),
              *sorted((ROOT / "docs").glob("*.md"))]
    installs: dict[str, int] = {}
    for path in places:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT).as_posix()
        for line in re.findall(r"^.*pip install .*$", text, re.MULTILINE):
            assert "requirements.txt" not in line and "requirements-dev.txt" not in line, (
                f"{name} installs from an input, not a lock: {line.strip()}")
        found = LOCKED_INSTALL.findall(text)
        assert len(found) == len(re.findall(r"pip install [^\n]*-r requirements", text)), (
            f"{name}: an install from a lock that is not `pip install --no-deps --require-hashes -r …lock` "
            "followed by pip check")
        if found:
            installs[name] = len(found)
    assert {"README.md", ".ci/run", "Dockerfile", "deploy/ci/github-actions.yml", "docs/DEPLOYMENT.md"} <= set(installs)
    quick_start = shell_blocks((ROOT / "README.md").read_text(encoding="utf-8"), "## Quick start")
    assert [block.count("\n") for block in quick_start[:2]] == [1, 1], "the README's two commands are one line each"
