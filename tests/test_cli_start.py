"""The command line starts light: printing a command's help imports none of the heavy libraries its work
needs (study/cli.py imports a command's module only when it is named; each module imports torch, Ray,
MLflow, pandas, matplotlib, DuckDB and Plotly only inside the function that runs the command)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from study.cli import COMMANDS

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
