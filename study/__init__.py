"""oodml study orchestration: specification, scheduling (Ray Tune + Optuna), tracking (MLflow), results.

``study.run(config, overrides=...)`` and ``study.resume(study_dir)`` are imported on first use, so
``import study`` stays light (no torch, Ray or MLflow).
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {"run": "study.api", "resume": "study.api", "StudyResult": "study.api", "load_spec": "study.spec"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'study' has no attribute {name!r}")
