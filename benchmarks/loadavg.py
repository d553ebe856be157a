"""The load average every benchmark prints beside its figures: on a loaded box a library can slow down
far more than our code, so a ratio means little without it (docs/performance.md)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def load() -> str:
    """``load average <1 min> <5 min> <15 min>``."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu() -> str:
    """The CPU model (``/proc/cpuinfo``) and its core count: figures from different boxes differ."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores"
