"""The hashed locks as data: their pins, the Pythons they are for, and whether every requirement has a pin."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.environment import ROOT

LOCKS = {"requirements.txt": "requirements.lock", "requirements-dev.txt": "requirements-dev.lock"}

# The machines the locks are for, besides the Python version: Linux on either architecture the image is built for.
MACHINES = ("x86_64", "aarch64")

Environment = Mapping[str, str]


@dataclass(frozen=True)
class Pin:
    """One entry of a lock: a distribution at one version, the environments it is for, how many hashes it has."""

    name: str
    version: Version
    marker: Marker | None
    hashes: int

    def applies(self, environment: Environment) -> bool:
        """Whether pip installs this entry in that environment."""
        return self.marker is None or self.marker.evaluate(dict(environment, extra=""))


@dataclass(frozen=True)
class Unmet:
    """A requirement of a locked package (or of an input) that no locked pin meets in one environment."""

    requirer: str
    requirement: Requirement
    via_extra: str
    environment: str
    locked: Version | None

    def __str__(self) -> str:
        extra = f" (through its extra {self.via_extra!r})" if self.via_extra else ""
        have = f"the lock pins {self.locked}" if self.locked else "the lock has no pin for it"
        return f"{self.requirer} requires {self.requirement}{extra} on {self.environment}: {have}"


def read_lock(text: str) -> list[Pin]:
    """Every entry of a lock file as pip reads it: options and comments skipped, continuation lines joined."""
    pins = []
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry or entry.startswith("-"):
            continue
        spec, *hashes = re.split(r"\s+--hash=", entry)
        requirement = Requirement(spec)
        (pinned,) = requirement.specifier
        assert pinned.operator == "==", f"{spec!r} is not pinned with =="
        pins.append(Pin(canonicalize_name(requirement.name), Version(pinned.version), requirement.marker,
                        len(hashes)))
    return pins


def lock_options(text: str) -> list[str]:
    """The pip options a lock file carries on lines of their own (`--only-binary :all:`)."""
    return [line.strip() for line in text.splitlines() if line.startswith("--")]


def input_requirements(path: Path) -> list[Requirement]:
    """The requirements an input file asks for, extras included, following `-r` includes."""
    found: list[Requirement] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.extend(input_requirements(path.parent / line[3:].strip()))
        elif line:
            found.append(Requirement(line))
    return found


def supported_pythons() -> tuple[str, ...]:
    """The Python versions the README's quick start names, e.g. ("3.11", "3.12", "3.13")."""
    quick_start = (ROOT / "README.md").read_text(encoding="utf-8").partition("## Quick start")[2]
    said = re.search(r"with Python ((?:3\.\d+(?:, | or ))+3\.\d+) as `python3`", quick_start)
    assert said, "README's quick start no longer says which Python versions it is for"
    return tuple(re.findall(r"3\.\d+", said.group(1)))


def environments(pythons: Iterable[str]) -> dict[str, Environment]:
    """PEP 508 marker environments for CPython on Linux, one per Python version and machine."""
    found = {}
    for python in pythons:
        for machine in MACHINES:
            found[f"Python {python} Linux {machine}"] = {
                "python_version": python, "python_full_version": f"{python}.0", "implementation_version": f"{python}.0",
                "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": machine,
                "platform_release": "", "platform_version": ""}
    return found


def installed_requirements(pins: Iterable[Pin]) -> Callable[[str], list[Requirement]]:
    """Requires-Dist of each locked package, read from the distribution installed here (the locked version)."""
    versions = {pin.name: pin.version for pin in pins}

    def requires(name: str) -> list[Requirement]:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError as missing:
            raise AssertionError(f"{name} is locked but not installed here: install the lock first") from missing
        installed = Version(distribution.version)
        assert installed == versions[name], (
            f"{name} {installed} is installed, the lock pins {versions[name]}: reinstall from the lock")
        return [Requirement(line) for line in distribution.requires or ()]

    return requires


def unmet_requirements(pins: Iterable[Pin], source: str, roots: Iterable[Requirement],
                       requires: Callable[[str], list[Requirement]], where: Mapping[str, Environment]) -> list[Unmet]:
    """What no pin meets: the roots and, transitively, every requirement whose marker holds, extras followed."""
    pins, roots = list(pins), list(roots)
    unmet: list[Unmet] = []
    for label, environment in where.items():
        active = {pin.name: pin for pin in pins if pin.applies(environment)}
        expanded: dict[str, set[str]] = {}
        pending = [(source, "", root) for root in roots if holds(root, environment, "")]
        while pending or (unreached := [pin for name, pin in active.items() if name not in expanded]):
            if not pending:  # a pin nothing asks for: its own requirements must be met all the same
                pending = [(pin.name, "", Requirement(f"{pin.name}=={pin.version}")) for pin in unreached]
            requirer, via_extra, requirement = pending.pop()
            name = canonicalize_name(requirement.name)
            pin = active.get(name)
            if pin is None or not requirement.specifier.contains(pin.version, prereleases=True):
                unmet.append(Unmet(requirer, requirement, via_extra, label, pin.version if pin else None))
                continue
            wanted = {""} | {canonicalize_name(extra) for extra in requirement.extras}
            new = wanted - expanded.setdefault(name, set())
            expanded[name] |= new
            for extra in new:
                pending.extend((f"{name}=={pin.version}", extra, needed) for needed in requires(name)
                               if holds(needed, environment, extra))
    return unmet


def holds(requirement: Requirement, environment: Environment, extra: str) -> bool:
    """Whether a requirement applies there because of `extra` ("": the package itself, whatever extras it is asked)."""
    def evaluate(value: str) -> bool:
        return requirement.marker is None or requirement.marker.evaluate(dict(environment, extra=value))

    return evaluate(extra) and not (extra and evaluate(""))


def newer_release_wheels(pins: Iterable[Pin], folder: Path) -> list[Path]:
    """A post-release wheel of each pin (same name, version + .postN, no code): what a resolver would pick first."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for pin in pins:
        post = (pin.version.post or 0) + 1
        version = f"{pin.version.base_version}.post{post}"
        stem = f"{pin.name.replace('-', '_')}-{version}"
        path = folder / f"{stem}-py3-none-any.whl"
        info = f"{stem}.dist-info"
        files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {pin.name}\nVersion: {version}\n",
                 f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: bot-toolkit tests\nRoot-Is-Purelib: true\n"
                                  "Tag: py3-none-any\n"}
        files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
        with zipfile.ZipFile(path, "w") as wheel:
            for name, text in files.items():
                wheel.writestr(name, text)
        written.append(path)
    return written
