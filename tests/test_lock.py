"""The locks: what `make` installs is what requirements/lock-*.txt says, on the platform it says.

scripts/lock.py reads the locks that `make lock` writes with uv; scripts/install.sh installs them.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import lock as lockfile  # noqa: E402  (scripts/lock.py)

LOCKS = {name: lockfile.read_lock(ROOT / "requirements" / f"lock-{name}.txt")
         for name in ("cpu", "cuda")}  # fmt: skip


def _requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and every extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [r for rs in project["optional-dependencies"].values() for r in rs]
    return [Requirement(r) for r in project["dependencies"] + extras]


@pytest.mark.skipif(
    os.environ.get("QDLIB_UPSTREAM_WATCH") == "1",
    reason="make test-latest installs the newest releases on purpose, and prints how they differ",
)
def test_the_installed_versions_are_the_locks():
    lock = LOCKS["cuda" if torch.version.cuda else "cpu"]
    assert lockfile.differences(lock, lockfile.installed_versions()) == []


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_each_lock_pins_every_dependency_inside_pyprojects_range(name):
    lock = LOCKS[name]
    for req in _requirements():
        if req.marker and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        version = lock.pins.get(lockfile.canonical(req.name))
        assert version is not None, f"lock-{name}.txt pins no {req.name}"
        assert req.specifier.contains(Version(version), prereleases=True), (req, version)


def test_the_cpu_and_cuda_locks_differ_only_in_torchs_build_and_its_cuda_libraries():
    cpu, cuda = LOCKS["cpu"].pins, LOCKS["cuda"].pins
    shared = set(cpu) & set(cuda) - {"torch"}
    assert {n: (cpu[n], cuda[n]) for n in shared if cpu[n] != cuda[n]} == {}
    assert set(cpu) - set(cuda) == set()
    assert all(lockfile.CHOSEN_BY_TORCH.match(n) for n in set(cuda) - set(cpu))
    assert Version(cpu["torch"]).public == Version(cuda["torch"]).public
    assert Version(cpu["torch"]).local == "cpu"


def test_every_pin_has_a_hash():
    for name, lock in LOCKS.items():
        text = lock.path.read_text(encoding="utf-8")
        blocks = text.split("\n", 2)[2].split("    # via")
        pinned = [b for b in blocks if "==" in b]
        assert all("--hash=sha256:" in b for b in pinned), f"lock-{name}.txt"


def test_the_lock_is_for_this_python_or_says_which():
    lock = LOCKS["cpu"]
    assert lockfile.platform_problem(lock) is None  # CI and the course: CPython 3.11, Linux x86_64
    other = lockfile.platform_problem(replace(lock, python_version="3.9"))
    assert other is not None
    assert "CPython 3.9" in other and "environment.yml" in other


def test_a_lock_line_that_is_not_a_pin_names_the_file_and_line(tmp_path):
    bad = tmp_path / "lock.txt"
    bad.write_text("# made by\n#    make lock (--python-version 3.11 --python-platform x86_64-"
                   "manylinux_2_28)\npeft>=0.21\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"lock\.txt, line 3: not a `name==version` pin"):
        lockfile.read_lock(bad)


def test_differences_name_a_missing_and_a_changed_package():
    lock = LOCKS["cpu"]
    installed = dict(lock.pins) | {"peft": "0.1.0"}
    del installed["datasets"]
    assert lockfile.differences(lock, installed) == [
        f"datasets: locked {lock.pins['datasets']}, installed nothing",
        f"peft: locked {lock.pins['peft']}, installed 0.1.0",
    ]


def test_one_packages_lines_are_a_requirements_file_with_its_hashes():
    lock = LOCKS["cpu"]
    lines = lockfile.pin_lines(lock, "torch").splitlines()
    assert lines[0] == f"torch=={lock.pins['torch']} \\"
    assert all(line.strip().startswith("--hash=sha256:") for line in lines[1:])
    assert not lines[-1].endswith("\\")
    with pytest.raises(SystemExit, match="no pin for not-a-package"):
        lockfile.pin_lines(lock, "not-a-package")
