"""A plain (non-editable) install of qdlib carries what it runs: the parity worker, templates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from qdlib.config import PROJECT_ROOT

PARITY = """
import json, sys
import qdlib
from qdlib.export import plain_transformers_ids
ids = plain_transformers_ids(sys.argv[1], [[1, 2, 3]], max_new_tokens=4, batch_size=1)
print(json.dumps({"qdlib": qdlib.__file__, "ids": ids}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` builds from a fresh clone (no egg-info left by an editable
    install, which would add files the package list leaves out)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(PROJECT_ROOT / "qdlib", source / "qdlib",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
           "-w", str(out), str(source)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return next(out.glob("qdlib-*.whl"))


@pytest.mark.slow
def test_the_wheel_carries_the_parity_worker_and_the_card_template(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "qdlib/standalone/greedy_ids.py" in names
    assert "qdlib/templates/model_card.md" in names


@pytest.mark.slow
def test_an_installed_qdlib_runs_the_parity_check(wheel, tmp_path, tiny_cfg):
    """Installed from the wheel (not this checkout), with site-packages for torch and the rest:
    ``python -S`` keeps the checkout's editable install out of the way."""
    from qdlib.model import build_tiny_model

    target = tmp_path / "installed"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, timeout=600)
    site = sysconfig.get_paths()["purelib"]
    done = subprocess.run(
        [sys.executable, "-S", "-c", PARITY, str(build_tiny_model(tiny_cfg))],
        env={"PYTHONPATH": f"{target}:{site}", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["qdlib"].startswith(str(target)) and len(result["ids"][0]) == 4
