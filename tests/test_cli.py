"""`qd run`: bad settings fail before any notebook; a failing notebook stops the run, kept."""

from __future__ import annotations

import nbformat
import pytest

from qdlib.cli import main


def test_bad_override_fails_before_running(tmp_path, capsys):
    assert main(["run", "--run-dir", str(tmp_path / "r"), "-p", "lora.r", "0"]) == 2
    assert "lora.r must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_existing_run_is_never_overwritten(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("precious", encoding="utf-8")
    assert main(["run", "--run-dir", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "config.yaml").read_text(encoding="utf-8") == "precious"


@pytest.mark.slow
def test_failing_notebook_stops_the_run_and_is_kept_with_its_error(tmp_path, capsys):
    run = tmp_path / "r"
    code = main(
        [
            "run",
            "--run-dir",
            str(run),
            "--only",
            "01_data_format",
            "02_model_load",
            "-p",
            "data.train_file",
            "data/examples/broken.jsonl",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "01_data_format failed" in err and "broken.jsonl, line 3" in err
    executed = nbformat.read(run / "notebooks/01_data_format.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "error" and o.ename == "DataError" for o in outputs)
    assert not (run / "notebooks/02_model_load.ipynb").exists()
