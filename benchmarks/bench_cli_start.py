"""How fast ``oodml`` answers ``--help``, ``oodml list methods`` and ``oodml list``: each command as a
whole process, against a bare Python start (``python -c pass``) and ``python -c "import torch"``
measured in the same run.

The goals: every ``--help`` under 0.5 s (a command imports torch, Ray, MLflow and pandas only when it runs),
``oodml list methods`` and plain ``oodml list`` (every kind) under 1.5 s (they read the declarations,
import no torch and build nothing);
``tests/test_cli_start.py`` checks the imports, this the time.

    python benchmarks/bench_cli_start.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from loadavg import cpu, load

from study.cli import COMMANDS

GOAL_S = 0.5
LIST_GOAL_S = 1.5


def seconds(arguments: list[str], repeats: int) -> float:
    """The median wall time of ``python ARGUMENTS`` over ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{cpu()}; {load()}")
    bare = seconds(["-c", "pass"], args.repeats)
    torch = seconds(["-c", "import torch"], args.repeats)
    print(f"python -c pass: {bare:.3f} s; python -c 'import torch': {torch:.3f} s")
    worst = 0.0
    for command in [(), *sorted(COMMANDS)]:
        took = seconds(["-m", "study.cli", *command, "--help"], args.repeats)
        worst = max(worst, took)
        print(
            f"  oodml {' '.join(command) + ' ' if command else ''}--help: {took:.3f} s ({took / torch:.2f}x torch's import)"
        )
    verdict = "met" if worst < GOAL_S else "NOT met"
    print(f"slowest --help {worst:.3f} s: goal < {GOAL_S} s {verdict}; {load()}")
    for command in ("list methods", "list"):
        listing = seconds(["-m", "study.cli", *command.split()], args.repeats)
        verdict = "met" if listing < LIST_GOAL_S else "NOT met"
        print(f"oodml {command}: {listing:.3f} s: goal < {LIST_GOAL_S} s {verdict}; {load()}")


if __name__ == "__main__":
    main()
