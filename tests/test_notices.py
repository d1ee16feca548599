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
import warnings

import nbformat
import pytest
from conftest import FORCE_AVX512BF16

from qdlib.config import PROJECT_ROOT
from qdlib.course import private_kernel
from qdlib.notices import install_notice_filters

KERNELS_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"
TCP_WARNING = "Kernel is running over TCP without encryption"


def python(
    code: str, force_avx512bf16: bool = True, **env_vars: str
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the project importable) and capture its output."""
    paths = [str(PROJECT_ROOT)] + ([str(FORCE_AVX512BF16)] if force_avx512bf16 else [])
    env = {k: v for k, v in os.environ.items() if k != "USE_HUB_KERNELS"}
    env |= {"PYTHONPATH": os.pathsep.join(paths), "HF_HUB_OFFLINE": "1"} | env_vars
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


# Stands in for the hub: records which kernel repository is asked for, and fetches nothing.
RECORD_GET_KERNEL = """
import kernels
asked = []
def get_kernel(repo_id, **kwargs):
    asked.append(repo_id)
    raise RuntimeError("recorded, not fetched")
kernels.get_kernel = get_kernel
"""
BNB_KERNEL_REPO = "kernels-community/quantization-bitsandbytes"


def test_without_qdlib_bitsandbytes_asks_the_hub_for_a_kernel():
    """The control: on this (forced) CPU branch bitsandbytes asks `kernels` for a hub kernel at
    import, which online would download and run it."""
    done = python(RECORD_GET_KERNEL + "import bitsandbytes\nprint(asked)")
    assert BNB_KERNEL_REPO in done.stdout


def test_after_import_qdlib_no_hub_kernel_is_asked_for():
    done = python(RECORD_GET_KERNEL + "import qdlib\nimport bitsandbytes, peft, transformers\n"
                  "print(asked)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""


def test_use_hub_kernels_yes_set_by_the_user_lets_the_kernel_through():
    done = python(RECORD_GET_KERNEL + "import qdlib\nimport bitsandbytes\nprint(asked)",
                  USE_HUB_KERNELS="YES")
    assert BNB_KERNEL_REPO in done.stdout


def test_transformers_own_switch_is_off_after_import_qdlib():
    done = python(
        """
        import qdlib
        from transformers.integrations.hub_kernels import _kernels_enabled
        print(_kernels_enabled())
        """
    )
    assert done.stdout.strip() == "False", done.stderr


def test_without_the_kernels_package_nothing_reaches_stderr():
    """Where `kernels` is not installed (transformers < 5.25, or removed), the same silence."""
    done = python(
        """
        import sys
        sys.modules["kernels"] = None  # as if not installed: `import kernels` raises ImportError
        import qdlib.model
        import bitsandbytes, peft, transformers
        """
    )
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


def test_an_unknown_future_warning_inside_a_load_still_reaches_the_learner():
    from qdlib.notices import KNOWN_WARNINGS, quiet_hf

    with pytest.warns(FutureWarning, match="a new deprecation"), quiet_hf():
        warnings.warn("a new deprecation, not in KNOWN_WARNINGS", FutureWarning, stacklevel=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        install_notice_filters()
        with quiet_hf():
            for known in KNOWN_WARNINGS:  # each named one is ignored, and only those
                warnings.warn(f"{known} (as the library says it)", FutureWarning, stacklevel=1)
    assert caught == []
