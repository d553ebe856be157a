"""Reports and dashboards built from a study's results dataset.

``build_report(study_dir)`` writes ``<study>/dashboard/index.html`` (figures embedded as PNGs, drawn as
interactive charts by the Plotly.js file written beside it; nothing fetched from a network) and the same
figures as PNGs beside it; ``oodml report STUDY_DIR [--serve]``.
"""

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:  # on first use, so that `oodml report --help` imports no matplotlib
    if name != "build_report":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dashboards.report import build_report

    return build_report
