"""The command line starts light: printing a command's help imports none of the heavy libraries its work
needs (study/cli.py imports a command's module only when it is named; each module imports torch, Ray,
MLflow, pandas, matplotlib, DuckDB and Plotly only inside the function that runs the command), and
``oodml list`` reads every kind's declarations (tasks/methods/catalog.py, tasks/models/catalog.py,
tasks/data/registry.py, tasks/splits/extractors.py) without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from study.cli import COMMANDS
from study.listing import KINDS

HEAVY = ("torch", "torchvision", "ray", "mlflow", "pandas", "matplotlib", "faiss", "timm", "duckdb", "plotly")


def imported_modules(*arguments: str) -> set[str]:
    """The top-level packages a fresh ``python -m study.cli ARGUMENTS`` imports (``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "study.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("command", [(), *sorted(COMMANDS)], ids=lambda c: " ".join(c) or "oodml")
def test_help_imports_no_heavy_library(command: tuple[str, ...]) -> None:
    found = imported_modules(*command, "--help") & set(HEAVY)
    assert not found, f"oodml {' '.join(command)} --help imports {sorted(found)}"


@pytest.mark.parametrize("kind", [None, *KINDS], ids=lambda k: k or "everything")
def test_list_reads_declarations_without_torch(kind: str | None) -> None:
    """``oodml list [kind]`` reads the declarations and builds nothing: no torch, no Ray, no MLflow."""
    found = imported_modules("list", *([kind] if kind else [])) & {
        "torch",
        "torchvision",
        "timm",
        "ray",
        "mlflow",
        "pytorch_metric_learning",
        "matplotlib",
        "huggingface_hub",
    }
    assert not found, f"oodml list {kind or ''} imports {sorted(found)}"
