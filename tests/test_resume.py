"""Resuming: a checkpoint cut off mid-write is skipped, and a killed run resumes to the adapter an
uninterrupted run makes (same seed, same data order)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from qdlib.config import PROJECT_ROOT
from qdlib.runs import RunDirError
from qdlib.train import checkpoint_problem, last_complete_checkpoint


def fake_checkpoint(root, step, world_size=1):
    """A checkpoint folder with every file the Trainer writes, each small but whole."""
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"lora_A": torch.zeros(2, 2)}, folder / "adapter_model.safetensors")
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    rng = (
        ["rng_state.pth"] if world_size == 1 else [f"rng_state_{i}.pth" for i in range(world_size)]
    )
    for name in rng:
        torch.save({"cpu": torch.zeros(4, dtype=torch.uint8)}, folder / name)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_byte(path):
    """One bit flipped inside the first zip member's data (what a failing disk does)."""
    import zipfile

    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    head = info.header_offset  # the local header: 30 bytes, the name, its own extra field
    field = lambda at: int.from_bytes(data[head + at : head + at + 2], "little")  # noqa: E731
    name_len, extra_len = field(26), field(28)
    data[head + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "trainer_state.json is missing": lambda f: (f / "trainer_state.json").unlink(),
    "trainer_state.json does not parse": lambda f: cut(f / "trainer_state.json"),
    "adapter_model.safetensors is cut": lambda f: cut(f / "adapter_model.safetensors"),
    "optimizer.pt is damaged": lambda f: flip_a_byte(f / "optimizer.pt"),
    "optimizer.pt is incomplete": lambda f: cut(f / "optimizer.pt"),
    "scheduler.pt is missing": lambda f: (f / "scheduler.pt").unlink(),
    "rng_state_1.pth is missing": lambda f: (f / "rng_state_1.pth").unlink(),
}


@pytest.mark.parametrize("reason", DAMAGE)
def test_a_damaged_newest_checkpoint_is_skipped_with_the_reason(tmp_path, reason):
    fake_checkpoint(tmp_path, 4, world_size=2)
    DAMAGE[reason](fake_checkpoint(tmp_path, 8, world_size=2))
    messages = []
    assert last_complete_checkpoint(tmp_path, 2, messages.append) == tmp_path / "checkpoint-4"
    assert len(messages) == 1
    assert f"checkpoint-8: {reason}" in messages[0]


def test_the_newest_complete_checkpoint_wins_by_step_number(tmp_path):
    for step in (9, 10, 2):
        fake_checkpoint(tmp_path, step)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert checkpoint_problem(tmp_path / "checkpoint-10") is None


@pytest.mark.parametrize("saved_by, now", [(2, 1), (1, 2), (4, 2)])
def test_a_checkpoint_of_another_process_count_is_an_error_not_a_restart(tmp_path, saved_by, now):
    folder = fake_checkpoint(tmp_path, 4, world_size=saved_by)
    with pytest.raises(RunDirError, match=f"saved by {saved_by} process"):
        last_complete_checkpoint(tmp_path, now)
    assert folder.is_dir()


def test_no_complete_checkpoint_means_none(tmp_path):
    (fake_checkpoint(tmp_path, 4) / "rng_state.pth").unlink()
    assert last_complete_checkpoint(tmp_path, log=None) is None
    assert last_complete_checkpoint(tmp_path / "not-there") is None


# ---------------------------------------------------------------- a real crash, then --resume

SMALL = {
    "training.max_steps": "12",
    "training.save_steps": "4",
    "training.save_total_limit": "5",
    "training.logging_steps": "1",
    "training.eval_steps": "null",
    "evaluation.generate_every": "null",
    "data.max_samples": "200",
}
ENV = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def qd_train(run_dir, *extra):
    params = [a for k, v in SMALL.items() for a in ("-p", k, v)]
    cmd = [sys.executable, "-m", "qdlib.cli", "train", "--profile", "cpu_tiny"]
    return [*cmd, "--run-dir", str(run_dir), *params, *extra]


def run_to_end(cmd):
    proc = subprocess.run(
        cmd, cwd=PROJECT_ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def losses(run_dir):
    history = json.loads((run_dir / "train/log_history.json").read_text(encoding="utf-8"))
    return [(h["step"], h["loss"]) for h in history if "loss" in h]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_complete_checkpoint_to_the_same_adapter(tmp_path):
    run_to_end(qd_train(tmp_path / "whole"))

    crashed = tmp_path / "crashed"
    log = tmp_path / "crashed.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(qd_train(crashed), cwd=PROJECT_ROOT, env=ENV, stdout=fh, stderr=fh)
        newest = crashed / "checkpoints/checkpoint-8"
        deadline = time.monotonic() + 300
        while not newest.exists() or checkpoint_problem(newest) is not None:
            assert proc.poll() is None, f"ended before the kill: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "checkpoint-8 never appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (crashed / "adapter").exists()
    cut(newest / "optimizer.pt")  # as if the kill had come while it was being written
    kept = (crashed / "checkpoints/checkpoint-4/trainer_state.json").stat().st_mtime_ns

    out = run_to_end(qd_train(crashed, "--resume"))
    assert "checkpoint-8: optimizer.pt is incomplete" in out
    assert f"resuming from {crashed / 'checkpoints/checkpoint-4'}" in out
    summary = json.loads((crashed / "train/summary.json").read_text(encoding="utf-8"))
    assert summary["resumed_from"] == "checkpoint-4"
    assert summary["global_step"] == 12
    # steps 1-4 were not trained again: their checkpoint is untouched
    assert (crashed / "checkpoints/checkpoint-4/trainer_state.json").stat().st_mtime_ns == kept
    # the same batches in the same order: the same loss at every step
    assert losses(crashed) == losses(tmp_path / "whole")
    whole = load_file(tmp_path / "whole/adapter/adapter_model.safetensors")
    resumed = load_file(crashed / "adapter/adapter_model.safetensors")
    assert whole.keys() == resumed.keys()
    for name, tensor in whole.items():
        assert torch.allclose(tensor, resumed[name]), name


def assert_still_at_step_4(run_dir, adapter: bytes) -> None:
    """A finished 4-step run, resumed: no step more, no new checkpoint, the same adapter."""
    assert json.loads((run_dir / "train/summary.json").read_text())["global_step"] == 4
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-4"]
    assert (run_dir / "adapter/adapter_model.safetensors").read_bytes() == adapter


@pytest.mark.slow
def test_resuming_a_finished_run_trains_no_step_more(tmp_path):
    run_dir = tmp_path / "run"
    args = ["-p", "training.max_steps", "4", "-p", "training.lr_scheduler", "constant"]
    run_to_end(qd_train(run_dir, *args))
    adapter = (run_dir / "adapter/adapter_model.safetensors").read_bytes()
    out = run_to_end(qd_train(run_dir, "--resume", *args))
    assert "nothing left to train" in out
    assert_still_at_step_4(run_dir, adapter)


@pytest.mark.slow
def test_resuming_a_finished_course_run_trains_no_step_more(tmp_path):
    """``qd run --resume`` goes through lesson 04's own Trainer, which must stop as ``qd train``
    does (the same StopWhenFinished), not train one step more."""
    run_dir = tmp_path / "run"
    params = [a for k, v in SMALL.items() for a in ("-p", k, v)]
    params += ["-p", "training.max_steps", "4", "-p", "training.lr_scheduler", "constant"]
    cmd = [sys.executable, "-m", "qdlib.cli", "run", "--profile", "cpu_tiny", "--run-dir"]
    lessons = ["--only", "01_data_format", "03_lora_config", "04_train"]
    run_to_end([*cmd, str(run_dir), *params, *lessons])
    adapter = (run_dir / "adapter/adapter_model.safetensors").read_bytes()
    run_to_end([*cmd, str(run_dir), *params, "--resume", "--only", "04_train"])
    executed = (run_dir / "notebooks/04_train.ipynb").read_text(encoding="utf-8")
    assert "nothing left to train" in executed
    assert_still_at_step_4(run_dir, adapter)


@pytest.mark.slow
def test_a_finished_run_is_extended_by_resuming_with_more_steps(tmp_path):
    """The common reason to resume: more steps. Applied, and recorded in config.yaml."""
    run_dir = tmp_path / "run"
    args = ["-p", "training.lr_scheduler", "constant"]
    run_to_end(qd_train(run_dir, *args, "-p", "training.max_steps", "4"))
    out = run_to_end(qd_train(run_dir, "--resume", *args, "-p", "training.max_steps", "6"))
    assert f"resuming from {run_dir / 'checkpoints/checkpoint-4'}" in out
    assert json.loads((run_dir / "train/summary.json").read_text())["global_step"] == 6
    assert "max_steps: 6" in (run_dir / "config.yaml").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_linked_run_directory_can_be_replaced_with_overwrite(tmp_path):
    """The link's real folder is the run: --overwrite replaces the run there, and the link still
    points at it (it used to train to the end, then fail on rmtree of a link)."""
    real, link = tmp_path / "disk/run", tmp_path / "run"
    real.mkdir(parents=True)  # an empty folder on another disk, linked
    link.symlink_to(real, target_is_directory=True)
    args = ["-p", "training.max_steps", "2", "-p", "training.save_steps", "2"]
    run_to_end(qd_train(link, *args))
    first = (real / "adapter/adapter_model.safetensors").stat().st_mtime_ns
    run_to_end(qd_train(link, *args, "--overwrite"))
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "adapter/adapter_model.safetensors").stat().st_mtime_ns != first
    assert sorted(p.name for p in real.parent.iterdir()) == [".run.lock", "run"]


@pytest.mark.slow
def test_a_second_writer_by_another_spelling_and_tmpdir_is_refused_while_the_first_runs(tmp_path):
    """Two real processes: the second names the run x/../run and has its own TMPDIR (another
    user, a scheduler); it must find the first one's lock and move nothing aside."""
    run, other_tmp = tmp_path / "run", tmp_path / "other-tmp"
    (tmp_path / "x").mkdir()
    other_tmp.mkdir()
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(qd_train(run, "-p", "training.max_steps", "200"), cwd=PROJECT_ROOT,
                             env=ENV, stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (run / ".qdlib-run.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first never started"
            time.sleep(0.05)
        second = subprocess.run(
            qd_train(tmp_path / "x" / ".." / "run", "--overwrite"), cwd=PROJECT_ROOT,
            env=ENV | {"TMPDIR": str(other_tmp)}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert "is being written by" in second.stderr
        assert not list(tmp_path.glob("run.replaced-*")) and first.poll() is None
    finally:
        first.kill()
        first.wait()
        log.close()
