"""benchmarks/gpu_acceptance.py's dry run: every check's code on the CPU at tiny sizes, each one PASS, exit
code 0; a failing check makes the exit code non-zero without hiding the other checks' verdicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_acceptance.py"
CHECKS = ("evaluate", "kmeans", "trial", "study")


def _dry_run(*options: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--dry-run", *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def _verdicts(output: str) -> dict[str, str]:
    """``{check: PASS|FAIL|SKIP}`` from the lines ``<VERDICT> <check>: <figures>``."""
    verdicts = {}
    for line in output.splitlines():
        verdict, _, rest = line.partition(" ")
        name = rest.split(":", 1)[0]
        if verdict in ("PASS", "FAIL", "SKIP") and name in CHECKS:
            verdicts[name] = verdict
    return verdicts


def test_the_dry_run_passes_every_check(tmp_path: Path) -> None:
    run = _dry_run(cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _verdicts(run.stdout) == dict.fromkeys(CHECKS, "PASS"), run.stdout
    head = run.stdout.splitlines()[:2]
    assert head[0].startswith("device: CPU (dry run") and "load average" in head[1], head


def test_a_failing_check_makes_the_exit_code_non_zero(tmp_path: Path) -> None:
    run = _dry_run("--only", "kmeans,evaluate", "--force-fail", "kmeans", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert _verdicts(run.stdout) == {"kmeans": "FAIL", "evaluate": "PASS"}, run.stdout
    assert "forced by --force-fail" in run.stdout


def test_without_cuda_a_full_run_refuses_and_names_the_dry_run(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the full run would start")
    run = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 2 and "no CUDA device" in run.stderr and "--dry-run" in run.stderr, run.stderr
    assert "PASS" not in run.stdout and "FAIL" not in run.stdout
