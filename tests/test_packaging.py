"""A plain (non-editable) install of qdlib carries what it runs: the parity worker, templates, the
profiles and the data they name; it writes runs and caches where it is run, never into itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from qdlib.config import PROJECT_ROOT
from qdlib.model import TINY_CORPUS

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
    for name in ("qdlib", "configs", "data"):
        shutil.copytree(PROJECT_ROOT / name, source / name,
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
def test_the_wheel_carries_the_profiles_and_the_data_they_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for profile in sorted((PROJECT_ROOT / "configs").glob("*.yaml")):
        assert f"qdlib/bundled/configs/{profile.name}" in names
        settings = yaml.safe_load(profile.read_text(encoding="utf-8"))
        data, evaluation = settings["data"], settings["evaluation"]
        files = [data["train_file"], data["eval_file"], evaluation.get("test_file")]
        files += [evaluation.get("test_predictions"), *(s["spec"] for s in data.get("sources", []))]
        named = [f for f in files if f]
        assert named, f"{profile.name} names no data"
        assert [f for f in named if f"qdlib/bundled/{f}" not in names] == []
    for rel in TINY_CORPUS:
        assert f"qdlib/bundled/{rel}" in names


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


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed (its own ``qd``), offline: pip gets
    neither an index nor dependencies, and a ``.pth`` file lends it this environment's
    site-packages (torch and the rest) without the checkout's editable install, whose finder
    only a site-packages' own ``.pth`` files would start."""
    env = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin/python"), "install",
           "--no-deps", "--no-index", "-q", str(wheel)]  # fmt: skip
    subprocess.run(pip, check=True, capture_output=True, timeout=600)
    (site_packages(env) / "lent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", "utf-8")
    return env


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def qd_in(env: Path, cwd: Path, *args: str, home: Path | None = None) -> str:
    """``qd ARGS`` (or ``python ARGS`` when the first is ``-c``) of ``env`` run in ``cwd``:
    no ``QDLIB_*`` variable but ``home`` as ``QDLIB_HOME``, offline, writing no bytecode."""
    keep = ("LANG", "LC_ALL", "TMPDIR")
    environ = {k: os.environ[k] for k in keep if k in os.environ} | {
        "PATH": f"{env / 'bin'}:/usr/bin:/bin", "HOME": str(cwd.parent / "user"),
        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "2",
        "PYTHONDONTWRITEBYTECODE": "1", **({"QDLIB_HOME": str(home)} if home else {}),
    }  # fmt: skip
    program = env / "bin" / ("python" if args[0] == "-c" else "qd")
    done = subprocess.run([str(program), *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


WHERE = "import qdlib, qdlib.config as c; print(qdlib.__file__, c.PROJECT_ROOT, c.qdlib_home())"
SHORT_RUN = {"training.max_steps": "2", "training.batch_size": "2", "training.logging_steps": "1",
             "data.max_samples": "64", "training.eval_steps": "null",
             "evaluation.generate_every": "null"}  # fmt: skip


@pytest.mark.slow
def test_an_installed_qd_checks_estimates_and_trains_where_it_is_run(venv, tmp_path):
    """From an empty folder, the wheel's ``qd`` reads its packaged profiles and data, and writes
    the run and the tiny model's cache there; site-packages is left as it was installed."""
    work, site = tmp_path / "work", site_packages(venv)
    work.mkdir()
    before = files_under(site)
    module, root, home = qd_in(venv, work, "-c", WHERE).split()
    assert module.startswith(str(site)) and root.startswith(str(site)) and home == str(work)
    shutil.copy(PROJECT_ROOT / "data/examples/sample_train.jsonl", work / "mine.jsonl")
    assert "records" in qd_in(venv, work, "data", "check", "mine.jsonl", "--profile", "cpu_tiny")
    assert "fits" in qd_in(venv, work, "estimate", "--profile", "cpu_tiny")
    overrides = [a for k, v in SHORT_RUN.items() for a in ("-p", k, v)]
    qd_in(venv, work, "train", "--profile", "cpu_tiny", *overrides)
    (run,) = (work / "runs").glob("cpu_tiny-*")
    assert (run / "adapter/adapter_config.json").is_file()
    assert list((work / ".cache/qdlib").glob("tiny-*/config.json"))
    assert files_under(site) == before


@pytest.mark.slow
def test_an_installed_qdlib_writes_under_qdlib_home(venv, tmp_path):
    where = "from qdlib.runs import runs_root; from qdlib.weights import cache_dir; " + (
        "print(runs_root(), cache_dir())"
    )
    out = qd_in(venv, tmp_path, "-c", where, home=tmp_path / "home").split()
    assert out == [str(tmp_path / "home/runs"), str(tmp_path / "home/.cache/qdlib")]
