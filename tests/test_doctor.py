"""`qd doctor`: the real checks on this machine, and simulated problems with their fixes."""

from __future__ import annotations

import json
import sys
import urllib.error
from collections import namedtuple

import pytest
import torch

from qdlib import doctor
from qdlib.cli import main
from qdlib.doctor import Check

Usage = namedtuple("Usage", "total used free")
GPU_MACHINE = {"driver": "550.54.15", "cuda": "12.4", "gpus": [("NVIDIA GeForce RTX 4060", 8188)]}


@pytest.fixture(scope="module")
def here() -> dict[str, Check]:
    """The real checks on this machine, by name."""
    return {c.name: c for c in doctor.run_checks()}


def test_every_check_runs_once_and_each_problem_has_a_fix(here):
    assert len(here) == 9 + len(doctor.PACKAGES)
    assert all(c.status in ("ok", "warn", "fail") for c in here.values())
    assert all(c.fix for c in here.values() if c.status != "ok")


def test_python_torch_and_packages_are_ok_here(here):
    assert here["python"].status == "ok"
    assert here["torch"].status == "ok"
    assert torch.__version__ in here["torch"].detail
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    assert f"{build} build" in here["torch"].detail
    assert {here[p].status for p in doctor.PACKAGES} == {"ok"}


def test_gpu_check_matches_this_machine(here):
    gpu = here["gpu"]
    if torch.cuda.is_available():
        assert gpu.status == "ok" and "GPU 0:" in gpu.detail and "GiB" in gpu.detail
    else:
        assert gpu.status == "warn" and "CPU only" in gpu.detail
        assert "--profile cpu_tiny" in gpu.fix


def test_bitsandbytes_4bit_and_8bit_optimizer_work_here(here):
    assert here["bnb_4bit"].status == "ok", here["bnb_4bit"].detail
    assert "NF4" in here["bnb_4bit"].detail
    assert here["bnb_8bit_optimizer"].status == "ok", here["bnb_8bit_optimizer"].detail


def test_hub_is_skipped_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = doctor.check_hub()
    assert hub.status == "ok" and "skipped: HF_HUB_OFFLINE=1" in hub.detail


def test_lower_bounds_come_from_pyproject():
    import tomllib

    from qdlib.config import PROJECT_ROOT

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    expected = {d.split(">=")[0]: d.split(">=")[1] for d in project["dependencies"] if ">=" in d}
    bounds = doctor._lower_bounds()
    assert bounds["python"] == project["requires-python"].removeprefix(">=")
    for name in ("transformers", "torch", "peft", "bitsandbytes"):
        assert bounds[name] == expected[name]


@pytest.mark.parametrize("with_packaging", [True, False])
def test_version_comparison_is_numeric(monkeypatch, with_packaging):
    if not with_packaging:
        monkeypatch.setitem(sys.modules, "packaging.version", None)
    assert doctor._older("0.9.1", "0.21")
    assert not doctor._older("5.24.0", "5.24")
    assert doctor._older("4.46.0", "5.24")


def test_old_transformers_fails_with_the_upgrade_command(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda dist: "4.46.0")
    check = doctor.check_package("transformers")
    assert check.status == "fail" and "4.46.0" in check.detail
    assert 'install -U "transformers>=5.24"' in check.fix


def test_missing_package_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda dist: None)
    check = doctor.check_package("peft")
    assert check.status == "fail" and "not installed" in check.detail
    assert 'install -U "peft>=0.21"' in check.fix


def test_python_below_requires_python_fails(monkeypatch):
    monkeypatch.setattr(doctor, "_lower_bounds", lambda: {"python": "3.99"})
    check = doctor.check_python()
    assert check.status == "fail" and "Python 3.99 or newer" in check.fix


def test_old_torch_fails_with_the_upgrade_command(monkeypatch):
    monkeypatch.setattr(doctor, "_lower_bounds", lambda: {"torch": "99.0"})
    check = doctor.check_torch()
    assert check.status == "fail" and "install -U" in check.fix and '"torch>=99.0"' in check.fix


def _fake_gpu(monkeypatch, capability: tuple[int, int], name: str = "Tesla T4") -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)


def test_gpu_without_bf16_warns_to_use_float16(monkeypatch):
    _fake_gpu(monkeypatch, (7, 5))
    check = doctor.check_bf16()
    assert check.status == "warn" and "Tesla T4 (compute 7.5)" in check.detail
    assert "set model.dtype: float16 in your profile" in check.fix


def test_gpu_with_bf16_is_ok(monkeypatch):
    _fake_gpu(monkeypatch, (8, 9), "NVIDIA GeForce RTX 4060")
    assert doctor.check_bf16().status == "ok"


def test_cpu_torch_on_a_gpu_machine_fails_with_the_cuda_install(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: GPU_MACHINE)
    check = doctor.check_gpu()
    assert check.status == "fail" and "RTX 4060 (8 GiB)" in check.detail
    version = torch.__version__.split("+")[0]
    assert f"install --force-reinstall torch=={version}" in check.fix


def test_cuda_torch_without_a_gpu_warns_with_the_cpu_install(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: None)
    check = doctor.check_gpu()
    assert check.status == "warn" and "CUDA 12.4 build" in check.detail
    assert "--index-url https://download.pytorch.org/whl/cpu torch==" in check.fix


def test_cuda_torch_newer_than_the_driver_fails(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: GPU_MACHINE)
    check = doctor.check_gpu()
    assert check.status == "fail" and "supports CUDA up to 12.4" in check.detail
    assert "update the NVIDIA driver" in check.fix and "whl/cu124" in check.fix


def test_failing_bitsandbytes_import_fails_both_bnb_checks(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` raises
    four, eight = doctor.check_bnb_4bit(), doctor.check_bnb_8bit_optimizer()
    assert four.status == eight.status == "fail"
    assert four.detail.startswith("ModuleNotFoundError") and "bitsandbytes" in eight.detail
    assert '"bitsandbytes>=0.50"' in four.fix and "model.quantization: none" in four.fix
    assert "training.optimizer: adamw_torch" in eight.fix


@pytest.mark.parametrize(("free_gib", "status"), [(1, "fail"), (10, "warn"), (100, "ok")])
def test_disk_space_thresholds(monkeypatch, free_gib, status):
    usage = Usage(500 * doctor.GiB, 0, free_gib * doctor.GiB)
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage)
    check = doctor.check_disk()
    assert check.status == status and f"{free_gib:.1f} GiB free" in check.detail
    assert ("QDLIB_RUNS" in check.fix) == (status != "ok")


@pytest.mark.parametrize(("available", "status"), [(1.0, "fail"), (4.0, "warn"), (12.0, "ok")])
def test_memory_thresholds(monkeypatch, available, status):
    monkeypatch.setattr(doctor, "_memory_gib", lambda: (16.0, available))
    monkeypatch.setattr(doctor, "_container_limit_gib", lambda: None)
    assert doctor.check_memory().status == status


def test_a_container_limit_below_the_ram_counts(monkeypatch):
    monkeypatch.setattr(doctor, "_memory_gib", lambda: (64.0, 60.0))
    monkeypatch.setattr(doctor, "_container_limit_gib", lambda: (4.0, 3.0))
    check = doctor.check_memory()
    assert check.status == "fail" and "1.0 of 4.0 GiB" in check.detail


def test_memory_reading_is_plausible():
    total, available = doctor._memory_gib()
    assert 0 < available <= total


def test_unreachable_hub_warns(monkeypatch):
    def no_network(request, timeout):
        assert request.get_method() == "HEAD" and timeout == doctor.HUB_TIMEOUT_S
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(doctor.urllib.request, "urlopen", no_network)
    check = doctor.check_hub()
    assert check.status == "warn" and "Name or service not known" in check.detail
    assert "HF_ENDPOINT" in check.fix and "HF_HUB_OFFLINE=1" in check.fix


def test_hub_that_answers_with_an_http_error_is_reachable(monkeypatch):
    def answers_405(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 405, "Method Not Allowed", {}, None)

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(doctor.urllib.request, "urlopen", answers_405)
    check = doctor.check_hub()
    assert check.status == "ok" and "HTTP 405" in check.detail


def test_a_crashing_check_becomes_a_failed_row(monkeypatch):
    def check_memory() -> Check:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "check_memory", check_memory)
    rows = {c.name: c for c in doctor.run_checks()}
    assert rows["memory"].status == "fail" and "RuntimeError: boom" in rows["memory"].detail
    assert "d.check_memory()" in rows["memory"].fix
    assert rows["python"].status == "ok" and "datasets" in rows  # the other checks still ran


def test_report_is_a_table_followed_by_what_to_do():
    checks = [
        Check("python", "ok", "3.11.7"),
        Check("disk", "fail", "1.0 GiB free at runs", "export QDLIB_RUNS=/big"),
    ]
    text = doctor.report(checks)
    assert text.startswith("| check | status | finding |\n|---|---|---|\n| python | ok | 3.11.7 |")
    assert "1 ok, 0 warn, 1 fail" in text
    assert "- disk (fail): export QDLIB_RUNS=/big" in text
    assert "What to do" not in doctor.report(checks[:1])
    assert doctor.to_dict(checks)["ok"] is False and doctor.to_dict(checks[:1])["ok"] is True


def test_qd_doctor_json_exits_0_here(capsys):
    assert main(["doctor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert [c["name"] for c in out["checks"]][:3] == ["python", "torch", "gpu"]


def test_qd_doctor_exits_1_when_a_check_fails(monkeypatch, capsys):
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: Usage(1, 1, 0))
    assert main(["doctor", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert [c["status"] for c in out["checks"] if c["name"] == "disk"] == ["fail"]


def test_qd_doctor_warn_alone_does_not_fail(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "check_gpu", lambda: Check("gpu", "warn", "CPU only", "use x"))
    assert main(["doctor"]) == 0
    assert "- gpu (warn): use x" in capsys.readouterr().out
