"""`qd doctor`: is this machine ready for the course? Each check: ok, warn or fail, and the fix.

Each check is a small function returning a :class:`Check`; :func:`run_checks` runs them all (a check
that crashes becomes a ``fail`` row with its error), :func:`report` renders a table a notebook can
print, :func:`to_dict` the same for JSON. ``warn`` is worth reading; only ``fail`` makes
``qd doctor`` exit 1. A check imports the package it checks (torch, bitsandbytes) inside itself:
a broken install is what it diagnoses, and it must fail its own row, not stop ``qd doctor``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from qdlib.config import PROJECT_ROOT
from qdlib.runs import runs_root

Status = Literal["ok", "warn", "fail"]
GiB = 2**30
PACKAGES = ("transformers", "peft", "bitsandbytes", "accelerate", "datasets")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # the same index the Makefile uses
DISK_FAIL_GIB, DISK_WARN_GIB = 2, 20  # a merged 7B export in 16-bit is about 15 GB
RAM_FAIL_GIB, RAM_WARN_GIB = 2, 8  # a 3B model in 16-bit is about 6 GiB
HUB_TIMEOUT_S = 3


@dataclass
class Check:
    """One finding: what was checked, ok / warn / fail, what was found, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _pip() -> str:
    """The pip of the Python running qd, as a command to copy (relative to here when shorter)."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    return f"{python} -m pip"


def _lower_bounds(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> dict[str, str]:
    """``{"torch": "2.13", ..., "python": "3.11"}``: each dependency's lower bound in
    pyproject.toml (an installed qdlib without the file: its package metadata)."""
    if pyproject.exists():
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        requirements, python = project["dependencies"], project.get("requires-python", "")
    else:
        requirements = metadata.requires("qdlib") or []
        python = metadata.metadata("qdlib").get("Requires-Python", "")
    bounds = {"python": _minimum(SpecifierSet(python))}
    for text in requirements:
        req = Requirement(text)
        bounds[canonicalize_name(req.name)] = _minimum(req.specifier)
    return {name: low for name, low in bounds.items() if low}


def _minimum(spec: SpecifierSet) -> str | None:
    """The lowest version a specifier allows by its own words (``>=2.13`` -> ``2.13``)."""
    return next((s.version for s in spec if s.operator in (">=", "==", "~=")), None)


def _older(installed: str, minimum: str) -> bool:
    """True when version ``installed`` is below ``minimum``."""
    return Version(installed) < Version(minimum)


def _installed(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _nvidia_smi() -> dict[str, Any] | None:
    """Driver, its CUDA version and each GPU (name, MiB) from ``nvidia-smi``; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = "--query-gpu=name,memory.total,driver_version"
    try:
        rows = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()  # fmt: skip
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = [[part.strip() for part in row.split(",")] for row in rows if row.strip()]
    if not gpus:
        return None
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return {
        "driver": gpus[0][2],
        "cuda": cuda[1] if cuda else "?",
        "gpus": [(name, int(float(mib))) for name, mib, _ in gpus],
    }


def check_python() -> Check:
    """The Python version against ``requires-python`` in pyproject.toml."""
    version = ".".join(map(str, sys.version_info[:3]))
    minimum = _lower_bounds().get("python") or "3.11"
    if _older(version, minimum):
        fix = f"install Python {minimum} or newer, then recreate .venv: rm -rf .venv && make"
        return Check("python", "fail", f"{version}; qdlib needs >= {minimum}", fix)
    return Check("python", "ok", f"{version} ({sys.executable})")


def check_torch() -> Check:
    """torch's version and build: CPU, CUDA x.y or ROCm, against the pyproject lower bound."""
    import torch

    build = (
        f"CUDA {torch.version.cuda}" if torch.version.cuda
        else f"ROCm {torch.version.hip}" if torch.version.hip
        else "CPU"
    )  # fmt: skip
    detail = f"{torch.__version__}, {build} build"
    minimum = _lower_bounds().get("torch", "0")
    if _older(torch.__version__.split("+")[0], minimum):
        index = f" --extra-index-url {TORCH_CPU_INDEX}" if build == "CPU" else ""
        fix = f'{_pip()} install -U{index} "torch>={minimum}"'
        return Check("torch", "fail", f"{detail}; qdlib is tested with >= {minimum}", fix)
    return Check("torch", "ok", detail)


def check_gpu() -> Check:
    """NVIDIA driver, each GPU and its memory, and whether torch's build matches the machine:
    a CUDA torch on a machine without a GPU, or a CPU torch on a machine with one."""
    import torch

    smi, built = _nvidia_smi(), torch.version.cuda
    version = torch.__version__.split("+")[0]
    if torch.cuda.is_available():
        gpus = []
        for i in range(torch.cuda.device_count()):
            total = torch.cuda.get_device_properties(i).total_memory / GiB
            gpus.append(f"GPU {i}: {torch.cuda.get_device_name(i)}, {total:.1f} GiB")
        driver = f"driver {smi['driver']} (CUDA {smi['cuda']})" if smi else "driver ?"
        return Check("gpu", "ok", f"{driver}; " + "; ".join(gpus))
    if smi and built:
        cu = smi["cuda"].replace(".", "")
        detail = (
            f"torch is built for CUDA {built} but cannot use the GPU; driver {smi['driver']} "
            f"supports CUDA up to {smi['cuda']}"
        )
        fix = (
            f"update the NVIDIA driver, or install a torch built for CUDA <= {smi['cuda']}, e.g. "
            f"{_pip()} install --force-reinstall torch=={version} "
            f"--index-url https://download.pytorch.org/whl/cu{cu}"
        )
        return Check("gpu", "fail", detail, fix)
    if smi:
        names = ", ".join(f"{name} ({mib / 1024:.0f} GiB)" for name, mib in smi["gpus"])
        detail = f"CPU-only torch on a machine with an NVIDIA GPU ({names}): training uses the CPU"
        fix = (
            f"{_pip()} install --force-reinstall torch=={version} (the Linux wheel on PyPI is the "
            "CUDA build, as `make` installs it when nvidia-smi works)"
        )
        return Check("gpu", "fail", detail, fix)
    if built:
        detail = f"CUDA {built} build of torch, no NVIDIA GPU: it runs on CPU but takes GBs of disk"
        fix = f"{_pip()} install --force-reinstall --index-url {TORCH_CPU_INDEX} torch=={version}"
        return Check("gpu", "warn", detail, fix)
    detail = "no NVIDIA GPU: CPU only"
    if torch.backends.mps.is_available():
        detail += " (an Apple GPU is here, but 4-bit and 8-bit training need CUDA)"
    fix = (
        "use --profile cpu_small (or cpu_tiny) on this machine; run rtx4060 / runpod on a "
        "machine with an "
        "NVIDIA GPU (check it with qd estimate --profile rtx4060)"
    )
    return Check("gpu", "warn", detail, fix)


def check_bf16() -> Check:
    """Native bfloat16 on each GPU (compute capability 8.0+); on CPU bf16 works but is slow."""
    import torch

    if not torch.cuda.is_available():
        x = torch.ones(4, 4, dtype=torch.bfloat16)
        if (x @ x).float().sum().item() != 64:
            return Check("bf16", "warn", "CPU: a bf16 matmul gave a wrong result", "use float32")
        return Check("bf16", "ok", "CPU: bf16 works in torch, but slowly; cpu_tiny trains in fp32")
    missing = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        if major < 8:
            missing.append(f"GPU {i} {torch.cuda.get_device_name(i)} (compute {major}.{minor})")
    if missing:
        fix = (
            "set model.dtype: float16 in your profile — this GPU has no bf16 (torch would "
            "emulate it, slowly; 'auto' picks float16 there)"
        )
        return Check("bf16", "warn", "no native bf16 on " + ", ".join(missing), fix)
    return Check("bf16", "ok", "every GPU has native bf16 (compute capability 8.0+)")


def check_bnb_4bit() -> Check:
    """Quantize a small Linear to NF4 as QLoRA does, run a forward, compare with the float layer."""
    fix = (
        f'{_pip()} install --force-reinstall "bitsandbytes>=0.50", or set '
        "model.quantization: none in your profile (16-bit weights: check qd estimate)"
    )
    try:
        import bitsandbytes as bnb
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        plain = torch.nn.Linear(256, 256, bias=False)
        quant = bnb.nn.Linear4bit(256, 256, bias=False, compute_dtype=torch.float32,
                                  quant_type="nf4")  # fmt: skip
        quant.load_state_dict(plain.state_dict())
        quant, plain = quant.to(device), plain.to(device)
        x = torch.randn(4, 256, device=device)
        with torch.no_grad():
            error = ((quant(x) - plain(x)).norm() / plain(x).norm()).item()
        if quant.weight.dtype != torch.uint8 or not error < 0.25:
            detail = (
                f"NF4 on {device}: weight dtype {quant.weight.dtype}, relative error {error:.2f}"
            )
            return Check("bnb_4bit", "fail", detail, fix)
    except Exception as exc:
        return Check("bnb_4bit", "fail", f"{type(exc).__name__}: {exc}", fix)
    detail = f"bnb {bnb.__version__}: NF4 Linear(256, 256) forward on {device}, error {error:.0%}"
    return Check("bnb_4bit", "ok", detail)


def check_bnb_8bit_optimizer() -> Check:
    """One step of ``AdamW8bit`` and of ``PagedAdamW8bit`` on a 4096-value parameter (smaller ones
    keep 32-bit state); the step must change the parameter and keep uint8 optimizer state."""
    fix = (
        f'{_pip()} install --force-reinstall "bitsandbytes>=0.50", or set '
        "training.optimizer: adamw_torch in your profile (32-bit state: check qd estimate)"
    )
    try:
        import bitsandbytes as bnb
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        for optimizer in (bnb.optim.AdamW8bit, bnb.optim.PagedAdamW8bit):
            param = torch.nn.Parameter(torch.ones(4096, device=device))
            opt = optimizer([param], lr=0.1)
            param.sum().backward()
            with warnings.catch_warnings():  # on CPU: "Paged optimizers are not supported"
                warnings.simplefilter("ignore")
                opt.step()
            state = opt.state[param]["state1"]
            if state.dtype != torch.uint8 or not param.detach().lt(1).all():
                detail = f"{optimizer.__name__} on {device}: state {state.dtype}, no update"
                return Check("bnb_8bit_optimizer", "fail", detail, fix)
    except Exception as exc:
        return Check("bnb_8bit_optimizer", "fail", f"{type(exc).__name__}: {exc}", fix)
    note = " (paged falls back to non-paged on CPU)" if device == "cpu" else ""
    return Check("bnb_8bit_optimizer", "ok", f"AdamW8bit and PagedAdamW8bit step on {device}{note}")


def _free_disk_gib(path: Path) -> float:
    """Free GiB on the disk holding ``path`` (its nearest existing folder)."""
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free / GiB


def check_disk() -> Check:
    """Free disk where run directories go (``QDLIB_RUNS``, else ``runs/`` in qdlib's home)."""
    root = runs_root()
    free = _free_disk_gib(root)
    detail = f"{free:.1f} GiB free at {root}"
    fix = (
        f"free space at {root} (old runs/ folders, checkpoints/), or point runs elsewhere: "
        "export QDLIB_RUNS=/a/bigger/disk; a merged 7B export in 16-bit needs about 15 GB"
    )
    return _by_threshold("disk", free, DISK_FAIL_GIB, DISK_WARN_GIB, detail, fix)


def _by_threshold(
    name: str, value: float, fail_below: float, warn_below: float, detail: str, fix: str
) -> Check:
    """fail under ``fail_below``, warn under ``warn_below``, else ok (the fix only on a problem)."""
    if value < fail_below:
        return Check(name, "fail", detail, fix)
    if value < warn_below:
        return Check(name, "warn", detail, fix)
    return Check(name, "ok", detail)


def _memory_gib() -> tuple[float, float]:
    """(total, available) RAM in GiB: ``/proc/meminfo`` on Linux, else ``os.sysconf``."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = {
            line.split(":")[0]: int(line.split()[1])
            for line in meminfo.read_text().splitlines()
            if line.split()[1:2] and line.split()[1].isdigit()
        }
        return kib["MemTotal"] / 2**20, kib.get("MemAvailable", kib["MemFree"]) / 2**20
    page = os.sysconf("SC_PAGE_SIZE")
    return os.sysconf("SC_PHYS_PAGES") * page / GiB, os.sysconf("SC_AVPHYS_PAGES") * page / GiB


def _container_limit_gib() -> tuple[float, float] | None:
    """(limit, used) GiB of a container's memory limit (cgroup v2), or None when there is none."""
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        used = (cgroup / "memory.current").read_text().strip()
    except OSError:
        return None
    return (int(limit) / GiB, int(used) / GiB) if limit.isdigit() else None


def check_memory() -> Check:
    """Available RAM (models are loaded, and merged on CPU, through it); a container's memory
    limit counts when it is lower than the machine's RAM."""
    total, available = _memory_gib()
    container = _container_limit_gib()
    if container and container[0] < total:
        total, available = container[0], min(available, container[0] - container[1])
    detail = f"{available:.1f} of {total:.1f} GiB RAM available"
    fix = (
        "close programs and notebook kernels you no longer use (Kernel > Shut Down Kernel); "
        "a 3B model in 16-bit is about 6 GiB, a 7B one about 15 GiB"
    )
    return _by_threshold("memory", available, RAM_FAIL_GIB, RAM_WARN_GIB, detail, fix)


def check_hub() -> Check:
    """A HEAD request to the Hugging Face hub (``HF_ENDPOINT``), skipped when HF_HUB_OFFLINE=1."""
    from huggingface_hub import is_offline_mode  # here: the doctor runs on a broken install too

    if is_offline_mode():
        detail = "skipped: HF_HUB_OFFLINE=1 (hub models load only from the local cache)"
        return Check("hub", "ok", detail)
    url = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    start = time.monotonic()
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=HUB_TIMEOUT_S) as response:
            code = response.status
    except urllib.error.HTTPError as exc:  # the server answered: reachable
        code = exc.code
    except (OSError, ValueError) as exc:
        fix = (
            "check the network or proxy (HTTPS_PROXY), or set HF_ENDPOINT to a mirror; offline, "
            "use --profile cpu_tiny or a local model folder, with HF_HUB_OFFLINE=1"
        )
        reason = getattr(exc, "reason", exc)
        return Check(
            "hub", "warn", f"{url} not reachable (timeout {HUB_TIMEOUT_S} s): {reason}", fix
        )
    return Check("hub", "ok", f"{url} answered HTTP {code} in {time.monotonic() - start:.1f} s")


def check_package(dist: str) -> Check:
    """An installed package against its lower bound in pyproject.toml."""
    minimum = _lower_bounds().get(dist, "0")
    installed = _installed(dist)
    fix = f'{_pip()} install -U "{dist}>={minimum}"'
    if installed is None:
        return Check(dist, "fail", f"not installed; qdlib needs >= {minimum}", fix)
    if _older(installed, minimum):
        return Check(dist, "fail", f"{installed}; qdlib is tested with >= {minimum}", fix)
    return Check(dist, "ok", f"{installed} (>= {minimum})")


def _guarded(check: Callable[..., Check], *args: str) -> Check:
    """Run one check; if the check itself crashes, report it as a failed row, never raise."""
    try:
        return check(*args)
    except Exception as exc:
        name = args[0] if args else check.__name__.removeprefix("check_")
        call = f"{check.__name__}({', '.join(map(repr, args))})"
        fix = f"run it alone to see the traceback: python -c 'import qdlib.doctor as d; d.{call}'"
        return Check(name, "fail", f"the check crashed: {type(exc).__name__}: {exc}", fix)


def run_checks() -> list[Check]:
    """Every check, in the order a learner fixes things: Python, torch, GPU, then the rest."""
    checks = [check_python, check_torch, check_gpu, check_bf16, check_bnb_4bit,
              check_bnb_8bit_optimizer, check_disk, check_memory, check_hub]  # fmt: skip
    return [_guarded(c) for c in checks] + [_guarded(check_package, d) for d in PACKAGES]


def report(checks: list[Check]) -> str:
    """A markdown table (readable as plain text), then what to do about each warn and fail."""
    rows = [f"| {c.name} | {c.status} | {c.detail.replace('|', '/')} |" for c in checks]
    problems = [c for c in checks if c.status != "ok"]
    counts = ", ".join(f"{sum(c.status == s for c in checks)} {s}" for s in ("ok", "warn", "fail"))
    lines = ["| check | status | finding |", "|---|---|---|", *rows, "", counts]
    if problems:
        lines += ["", "What to do:", *(f"- {c.name} ({c.status}): {c.fix}" for c in problems)]
    return "\n".join(lines)


def to_dict(checks: list[Check]) -> dict[str, Any]:
    """The checks as JSON-ready data; ``ok`` is False when any check failed."""
    return {
        "ok": not any(c.status == "fail" for c in checks),
        "checks": [asdict(c) for c in checks],
    }
