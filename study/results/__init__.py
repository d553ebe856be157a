"""The Arrow/Parquet results dataset of a study and its aggregations (docs/results-schema.md).

Its names load their module on first use (as ``tasks.lazy``): importing ``study.results.storage`` or
``.layout`` does not import pandas and the aggregations with it. ``compare`` (the function) is imported
from ``study.results.compare``: a package attribute named like a submodule is that submodule once it is
imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "auc_summary": "aggregate",
    "degradation_curves": "aggregate",
    "fewshot_gain": "aggregate",
    "normalized_auc": "aggregate",
    "ranking": "aggregate",
    "shift_agreement": "aggregate",
    "Comparison": "compare",
    "ci95": "files",
    "DEFAULT_SPLIT_KEY": "layout",
    "add_results_arguments": "cli",
    "format_summary": "report",
    "results": "cli",
    "CURVES_SCHEMA": "schema",
    "SCHEMA": "schema",
    "SCHEMA_VERSION": "schema",
    "SupersededResults": "store",
    "UnreadableResultWarning": "store",
    "completed_trial_ids": "store",
    "read_curves": "store",
    "read_results": "store",
    "result_path": "store",
    "write_trial_result": "store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # tasks.lazy's mechanism, written out: this package imports no other
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
