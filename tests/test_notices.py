"""Library notices: the ones qdlib knows are kept off stderr on every CPU, the rest still show.

bitsandbytes logs its `kernels` notice at import time, and only on CPUs with AVX-512 BF16. Each
test runs a fresh Python with ``tests/avx512bf16`` on its path, which makes bitsandbytes take that
branch here too, whatever this CPU is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nbformat
import pytest
from conftest import FORCE_AVX512BF16

from qdlib.config import PROJECT_ROOT
from qdlib.course import private_kernel

KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"
TCP_WARNING = "Kernel is running over TCP without encryption"


def python(code: str, force_avx512bf16: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the project importable) and capture its output."""
    paths = [str(PROJECT_ROOT)] + ([str(FORCE_AVX512BF16)] if force_avx512bf16 else [])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_avx512bf16_branch_is_forced_on_this_cpu():
    """The control: without qdlib, bitsandbytes prints its notice here, so the tests below can
    fail on a CPU without AVX-512 BF16."""
    done = python("import bitsandbytes")
    assert KERNELS_NOTICE in done.stderr


def test_importing_qdlib_first_keeps_the_kernels_notice_off_stderr():
    done = python("import qdlib.model\nimport bitsandbytes, peft, transformers")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_notice_is_kept_at_debug_level():
    done = python(
        """
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s %(message)s")
        import qdlib, bitsandbytes
        """
    )
    assert f"DEBUG bitsandbytes.backends.cpu.ops {KERNELS_NOTICE}" in done.stderr


def test_other_warnings_of_the_same_logger_still_reach_stderr():
    done = python(
        """
        import logging
        import qdlib, bitsandbytes
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning("a real problem")
        """
    )
    assert done.stderr.strip() == "a real problem"


@pytest.mark.slow
def test_qd_doctor_prints_no_library_notice():
    """`qd doctor` loads bitsandbytes and runs its 4-bit and 8-bit code for real."""
    done = python("import sys\nfrom qdlib.cli import main\nmain(['doctor'])")
    assert KERNELS_NOTICE not in done.stderr, done.stderr
    assert "bnb_4bit" in done.stdout


def executed_stderr(tmp_path, private: bool) -> str:
    """stderr of a papermill run of a one-cell notebook, in a fresh Python."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)")])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "in.ipynb")
    done = python(
        f"""
        import papermill as pm
        from qdlib.course import private_kernel
        kw = private_kernel() if {private} else {{}}
        pm.execute_notebook({str(tmp_path / "in.ipynb")!r}, {str(tmp_path / "out.ipynb")!r},
                            kernel_name="python3", progress_bar=False, **kw)
        """,
        force_avx512bf16=False,
    )
    assert done.returncode == 0, done.stderr
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0].text == "2\n"
    return done.stderr


@pytest.mark.skipif(not private_kernel(), reason="pyzmq without CurveZMQ: plain TCP it is")
def test_the_notebook_kernel_traffic_is_encrypted_so_the_kernel_does_not_warn(tmp_path):
    assert TCP_WARNING in executed_stderr(tmp_path, private=False)  # the control: the default
    assert TCP_WARNING not in executed_stderr(tmp_path, private=True)


def test_without_curvezmq_the_kernel_settings_are_left_as_they_were(monkeypatch):
    import zmq

    monkeypatch.setattr(zmq, "has", lambda feature: False)
    assert private_kernel() == {}


def test_the_plain_peft_calls_of_the_lessons_print_no_deprecation_notice():
    """Lessons 03 and 06 call get_peft_model and PeftModel.from_pretrained outside qdlib."""
    code = (
        "import warnings, qdlib\n"
        "from qdlib.config import load_config\n"
        "from qdlib.model import load_model\n"
        "from peft import LoraConfig, get_peft_model\n"
        "model = load_model(load_config('cpu_tiny'))\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('default')\n"
        "    import qdlib.notices; qdlib.notices.install_notice_filters()\n"
        "    get_peft_model(model, LoraConfig(r=4, target_modules=['q_proj']))\n"
        "print([str(w.message)[:60] for w in seen])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "is_gradient_checkpointing" not in done.stdout + done.stderr
