"""Reports and dashboards built from a study's results dataset.

``build_report(study_dir)`` writes ``<study>/dashboard/index.html`` (self-contained: figures embedded, no
scripts, no network) and the same figures as PNGs beside it; ``oodml report STUDY_DIR [--serve]``.
"""

from dashboards.report import build_report

__all__ = ["build_report"]
