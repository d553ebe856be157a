"""The load average every benchmark prints beside its figures: on a loaded box a library can slow down
far more than our code, so a ratio means little without it (docs/performance.md)."""

from __future__ import annotations

import os


def load() -> str:
    """``load average <1 min> <5 min> <15 min>``."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
