"""The house stays in order: imports go down the layers (no loop), functions stay short, and no
block of code stands twice in qdlib. ARCHITECTURE's picture, checked from the code itself."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from qdlib.config import PROJECT_ROOT

QDLIB = PROJECT_ROOT / "qdlib"
# Lower never imports higher (the lessons in course order, the tools beside them).
LAYERS = {
    "qdlib.files": 0, "qdlib.notices": 0, "qdlib.figures": 0,
    "qdlib.config": 1,
    "qdlib.remote_code": 2, "qdlib.hub": 2, "qdlib.runs": 2,
    "qdlib.data": 3, "qdlib.weights": 3, "qdlib.memory": 3, "qdlib.doctor": 3,
    "qdlib.sources": 4, "qdlib.metrics": 4, "qdlib.prompts": 4,
    "qdlib.splits": 5, "qdlib.datacheck": 5, "qdlib.pictures": 5,
    "qdlib.model": 6,  # 02
    "qdlib.lora": 7,  # 03
    "qdlib.inference": 7,  # answering with a model: 02, 05, 06, qd decompose
    "qdlib.train": 8,  # 04
    "qdlib.evaluate": 9,  # 05
    "qdlib.export": 10,  # 06
    "qdlib.experiments": 10,
    "qdlib.baselines": 10,  # 05: what a tuned model's scores stand beside
    "qdlib.scorecard": 11,  # 05: every section beside every baseline
    "qdlib.course": 12,
    "qdlib.cli": 13,
}  # fmt: skip
MAX_FUNCTION_LINES = 60
DUPLICATE_LINES = 8


def modules() -> dict[str, Path]:
    """qdlib's modules by dotted name (the package face and the standalone worker left out: the
    worker must not import qdlib at all, and a test of its own checks that)."""
    return {
        ".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts): p
        for p in QDLIB.glob("*.py")
        if p.name != "__init__.py"
    }


def imports(path: Path) -> set[str]:
    """The qdlib modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qdlib"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("qdlib.")}
    return found & set(modules())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import loop, each as the path that closes it."""
    found, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
    return found


def test_every_module_has_a_layer():
    assert sorted(set(modules()) - set(LAYERS)) == [], "place the new module in LAYERS"


def test_no_import_loop():
    graph = {name: imports(path) for name, path in modules().items()}
    assert cycles(graph) == []


def test_the_loop_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_imports_go_down_the_layers():
    up = [
        f"{name} (layer {LAYERS[name]}) imports {other} (layer {LAYERS[other]})"
        for name, path in modules().items()
        for other in sorted(imports(path))
        if LAYERS.get(other, 99) >= LAYERS.get(name, -1) and other != name
    ]
    assert up == []


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_60_lines():
    assert [f for p in sorted(QDLIB.rglob("*.py")) for f in long_functions(p)] == []


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that carry code: stripped, without blank lines,
    comments, imports and lone brackets."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith(("#", "import ", "from ")) or text in ")]}),":
            continue
        out.append((n, text))
    return out


def repeated_blocks(paths: list[Path], size: int = DUPLICATE_LINES) -> list[str]:
    """Places where the same ``size`` code lines stand more than once."""
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in paths:
        lines = code_lines(path)
        for i in range(len(lines) - size + 1):
            window = tuple(text for _, text in lines[i : i + size])
            seen[window].append(f"{path.relative_to(PROJECT_ROOT)}:{lines[i][0]}")
    return sorted(" = ".join(places) for places in seen.values() if len(places) > 1)


def test_no_block_of_8_lines_stands_twice_in_qdlib():
    assert repeated_blocks(sorted(QDLIB.rglob("*.py"))) == []


def test_the_block_finder_finds_a_copy(tmp_path):
    body = "".join(f"    x{i} = f({i})\n" for i in range(DUPLICATE_LINES))
    (tmp_path / "a.py").write_text(f"def a():\n{body}", encoding="utf-8")
    (tmp_path / "b.py").write_text(f"def b():\n{body}", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(globals(), "PROJECT_ROOT", tmp_path)
        assert len(repeated_blocks(sorted(tmp_path.glob("*.py")))) == 1


# ---------------------------------------------------------------- one way to build a Trainer

# Every way of training, and the function in it that builds the Trainer.
TRAINING_ENTRY_POINTS = {
    "qdlib/course.py": "run_trainer",  # qd train
    "qdlib/experiments.py": "train_variant",  # lesson 03's rank experiment
    "tests/conftest.py": "short_run",  # the tests' trained runs
    "scripts/gpu_check.py": "measure",  # the GPU check
}
# Files that may call build_trainer directly: the builder itself, lesson 04 (which compares its
# hand-built Trainer with the builder's) and the builder's own tests (models with planted weights).
BUILD_TRAINER_CALLERS = {
    "qdlib/train.py", "notebooks/src/04_train.py", "tests/test_packing.py", "tests/test_train.py"
}  # fmt: skip


def called_names(node: ast.AST) -> set[str]:
    """Names of the functions called anywhere under ``node`` (``f(...)`` and ``x.f(...)``)."""
    found = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        func = call.func
        found.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return found


def function(path: Path, name: str) -> ast.AST:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("path, name", sorted(TRAINING_ENTRY_POINTS.items()))
def test_every_training_entry_point_builds_with_train_setup(path, name):
    calls = called_names(function(PROJECT_ROOT / path, name))
    assert "setup" in calls, f"{path}:{name} must build its Trainer with qdlib.train.setup"
    assert not calls & {"Trainer", "build_trainer", "attach_lora", "load_model"}, calls


def test_setup_is_the_only_wiring_and_lesson_04_checks_its_own_against_it():
    assert {"load_model", "attach_lora", "build_trainer"} <= called_names(
        function(QDLIB / "train.py", "setup")
    )
    folders = ("qdlib", "scripts", "tests", "notebooks/src")
    files = [p for f in folders for p in (PROJECT_ROOT / f).rglob("*.py")]
    calling = {
        str(p.relative_to(PROJECT_ROOT))
        for p in files
        if "build_trainer" in called_names(ast.parse(p.read_text(encoding="utf-8")))
    }
    assert calling == BUILD_TRAINER_CALLERS
    constructing = {
        str(p.relative_to(PROJECT_ROOT))
        for p in files
        if "Trainer" in called_names(ast.parse(p.read_text(encoding="utf-8")))
    }
    assert constructing == {"qdlib/train.py", "notebooks/src/04_train.py"}
    lesson = (PROJECT_ROOT / "notebooks/04_train.ipynb").read_text(encoding="utf-8")
    assert "the same as qdlib's build_trainer: True" in lesson
