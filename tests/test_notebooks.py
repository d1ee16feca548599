"""The notebooks as files: sources and .ipynb agree, and every profile parameterizes every lesson.

The notebooks themselves are executed by nbval (``pytest notebooks --nbval-lax``, in `make test`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from conftest import finished

from qdlib.config import PROJECT_ROOT, available_profiles, load_config
from qdlib.runs import LESSONS

NOTEBOOKS = PROJECT_ROOT / "notebooks"
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import build_notebooks  # noqa: E402


def cells(nb):
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("lesson", LESSONS)
def test_notebook_matches_its_source(lesson):
    committed = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    built = build_notebooks.build(NOTEBOOKS / "src" / f"{lesson}.py")
    assert cells(committed) == cells(built), "run `make notebooks` after editing notebooks/src"


@pytest.mark.parametrize("lesson", LESSONS)
def test_committed_notebook_is_executed_without_errors(lesson):
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "commit the executed notebook (make notebooks)"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_notebook_has_a_parameters_cell_and_checked_outputs(lesson):
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert any("# NBVAL_CHECK_OUTPUT" in c.source for c in nb.cells)


def params_namespace(nb) -> dict:
    """Run the parameters and injected-parameters cells, as the kernel would, and return names."""
    ns: dict = {}
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "parameters" in tags or "injected-parameters" in tags:
            exec(c.source, ns)
    return ns


@pytest.mark.parametrize("profile", available_profiles())
@pytest.mark.parametrize("lesson", LESSONS)
def test_papermill_prepares_every_lesson_with_every_profile(tmp_path, lesson, profile):
    params = load_config(profile).to_dict()  # what `-f configs/<profile>.yaml` passes
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / f"{lesson}.ipynb"), str(out), parameters=params, prepare_only=True
    )
    ns = params_namespace(nbformat.read(out, as_version=4))
    sections = {
        k: ns[k] for k in ("seed", "data", "model", "lora", "training", "evaluation", "export")
    }
    assert load_config(ns["profile"], **sections) == load_config(profile)


def test_papermill_cli_prepare_only_with_a_profile_file(tmp_path):
    out = tmp_path / "04.ipynb"
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(NOTEBOOKS / "04_train.ipynb"),
        str(out),
        "-f",
        str(PROJECT_ROOT / "configs/rtx4060.yaml"),
        "--prepare-only",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "unknown parameter" not in result.stderr
    ns = params_namespace(nbformat.read(out, as_version=4))
    assert ns["model"]["name"] == "Qwen/Qwen2.5-3B-Instruct" and ns["profile"] == "rtx4060"


def test_notebook_sources_exist_for_every_lesson():
    assert sorted(p.stem for p in (NOTEBOOKS / "src").glob("*.py")) == list(LESSONS)
    assert all(Path(NOTEBOOKS / f"{n}.ipynb").exists() for n in LESSONS)


def stderr_cells(path: Path) -> list[int]:
    nb = nbformat.read(path, as_version=4)
    return [
        i
        for i, c in enumerate(nb.cells)
        if any(o.get("name") == "stderr" for o in c.get("outputs", []))
    ]


@pytest.mark.parametrize("lesson", LESSONS)
def test_committed_notebook_has_no_stderr_output(lesson):
    assert stderr_cells(NOTEBOOKS / f"{lesson}.ipynb") == []


@pytest.mark.slow
def test_qd_run_writes_notebooks_without_stderr_output(course_run):
    """On a CPU with AVX-512 BF16 (forced: see conftest.course_run), as on any other."""
    run = finished(course_run)
    executed = {
        lesson: stderr_cells(run.run_dir / f"notebooks/{lesson}.ipynb") for lesson in LESSONS
    }
    assert executed == {lesson: [] for lesson in LESSONS}


@pytest.mark.slow
def test_qd_run_console_shows_progress_not_library_noise(course_run):
    run = finished(course_run)
    assert "[6/6] 06_export" in run.stdout
    for noise in ("kernels-community", "Kernel is running over TCP", "WARNING"):
        assert noise not in run.stdout + run.stderr


@pytest.mark.slow
def test_lesson_01_runs_on_a_small_data_file_of_your_own(tmp_path):
    """32 records (data/examples/sample_train.jsonl): fewer than the 50 the exercise takes."""
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / "01_data_format.ipynb"), str(out), cwd=str(NOTEBOOKS),
        parameters={"profile": "cpu_tiny", "run_dir": str(tmp_path / "run"),
                    "data": {"train_file": "data/examples/sample_train.jsonl"}},
        kernel_name="python3", progress_bar=False,
    )  # fmt: skip
    assert "of 29 training examples fill all" in out.read_text(encoding="utf-8")  # 32 - 3 held


@pytest.mark.parametrize("lesson", LESSONS)
def test_committed_notebooks_keep_no_progress_bar_frozen_at_its_first_state(lesson):
    nb = nbformat.read(NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if build_notebooks.is_progress_bar(o)]


def test_a_progress_bar_is_told_from_a_widget_that_matters():
    bar = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
        "text/plain": "generating:   0%|          | 0/5 [00:00<?, ?it/s]"})  # fmt: skip
    box = nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "y"},
        "text/plain": "VBox(children=(Textarea(value='Which is older?'),))"})  # fmt: skip
    text = nbformat.v4.new_output("stream", name="stdout", text="100%|####| 5/5\n")
    assert [build_notebooks.is_progress_bar(o) for o in (bar, box, text)] == [True, False, False]
