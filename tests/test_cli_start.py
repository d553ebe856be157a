"""The command line starts light: printing a command's help imports none of the heavy libraries its work
needs (study/cli.py imports a command's module only when it is named; each module imports torch, Ray,
MLflow, pandas, matplotlib, DuckDB and Plotly only inside the function that runs the command), and
``oodml list methods`` reads the methods' declarations (tasks/methods/catalog.py) without importing torch."""

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


# the kinds whose registries are read without torch (backbones, datasets and extractors still import it)
TORCH_FREE_LISTS = ("methods", "episodes")


@pytest.mark.parametrize("kind", [None, *KINDS], ids=lambda k: k or "everything")
def test_list_imports_neither_ray_nor_mlflow(kind: str | None) -> None:
    found = imported_modules("list", *([kind] if kind else [])) & {"ray", "mlflow"}
    assert not found, f"oodml list {kind or ''} imports {sorted(found)}"


@pytest.mark.parametrize("kind", TORCH_FREE_LISTS)
def test_list_reads_declarations_without_torch(kind: str) -> None:
    """``oodml list methods`` reads the catalog's declarations (tasks/methods/catalog.py) and builds nothing."""
    found = imported_modules("list", kind) & {
        "torch",
        "torchvision",
        "ray",
        "mlflow",
        "pytorch_metric_learning",
    }
    assert not found, f"oodml list {kind} imports {sorted(found)}"
