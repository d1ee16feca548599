"""Build the course notebooks from their readable sources and execute them.

    python scripts/build_notebooks.py            # notebooks/src/*.py -> notebooks/*.ipynb, run
    python scripts/build_notebooks.py --no-run   # only convert (no outputs)

Sources are jupytext "percent" files; the committed ``.ipynb`` files carry the executed outputs
that nbval checks. ``tests/test_notebooks.py`` fails when a source and its notebook drift apart.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

from qdlib.course import private_kernel

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
OUT = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def build(src: Path) -> nbformat.NotebookNode:
    """The notebook for one source file, without outputs."""
    nb = jupytext.read(src)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("lines_to_next_cell", None)
    return nb


def execute(nb: nbformat.NotebookNode) -> None:
    client = NotebookClient(
        nb,
        timeout=1800,
        kernel_name="python3",
        resources={"metadata": {"path": str(OUT)}},
        **private_kernel(),
    )
    client.execute()
    for cell in nb.cells:  # keep diffs small: no timing metadata
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not is_progress_bar(o)]


PROGRESS = re.compile(r"\d+%\|.*\|\s*\d+/\d+")  # tqdm's "  0%|          | 0/5 [...]"


def is_progress_bar(output: nbformat.NotebookNode) -> bool:
    """A tqdm progress widget: live while a lesson runs, but saved in a notebook only its text
    stand-in survives, frozen at the state it was first drawn in (0%). Not kept."""
    data = output.get("data", {})
    return "application/vnd.jupyter.widget-view+json" in data and bool(
        PROGRESS.search(data.get("text/plain", ""))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true")
    parser.add_argument("names", nargs="*", help="only these sources (e.g. 01_data_format)")
    args = parser.parse_args()
    for src in sorted(SRC.glob("*.py")):
        if args.names and src.stem not in args.names:
            continue
        nb = build(src)
        print(f"{src.stem}: {'converting' if args.no_run else 'executing'}", flush=True)
        if not args.no_run:
            execute(nb)
        nbformat.write(nb, OUT / f"{src.stem}.ipynb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
