"""``build_report``: a study's dashboard, built from the tables of its study folder (``oodml report``:
``dashboards/cli.py``).

The page, its PNG figures and the Plotly.js file that draws their interactive charts go to
``<study>/dashboard/``. It can be built at any time: while a study
runs, with failed or partial results, and before any result exists (then it says so). It reads tables
only: the results dataset, the status tables and the projection tables (``study/results``).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from dashboards.charts import write_plotly_js
from dashboards.compare import compare_blocks
from dashboards.degradation import degradation_blocks
from dashboards.fewshot import fewshot_blocks
from dashboards.oracle import oracle_blocks
from dashboards.page import Block, Header, Image, Note, Section, render_page
from dashboards.projection import projection_blocks, study_datasets
from dashboards.ranking import ranking_blocks
from dashboards.shift import shift_blocks
from dashboards.splits import splits_blocks
from dashboards.status import StudyStatus, read_status, status_blocks
from study.results.files import write_text_atomic
from study.results.layout import DASHBOARD_DIR, DASHBOARD_PAGE, RESULTS_DIR
from study.results.schema import SCHEMA, SUMMARY_COLUMNS
from study.results.storage import StudyPath, Where, locate
from study.results.store import read_folder

RESULT_SECTIONS: list[tuple[str, str, Callable[[pa.Table, Path], list[Block]]]] = [
    ("degradation", "Degradation curves", degradation_blocks),
    ("ranking", "AUC ranking", ranking_blocks),
    ("compare", "Paired comparisons", compare_blocks),
    ("fewshot", "Few-shot gain", fewshot_blocks),
    ("oracle", "Shift vs difficulty, cross-dataset", oracle_blocks),
    ("splits", "Splits", splits_blocks),
    ("shift", "Shift measures beyond FID", shift_blocks),
]


def build_report(study_dir: Where) -> StudyPath:
    """Write ``<study>/dashboard/index.html``, its figures and Plotly.js (local, or on the object store:
    one PUT each); returns the page's path."""
    study_dir = locate(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"{study_dir} is not a folder: give a study folder (it holds results/)")
    out = study_dir / DASHBOARD_DIR
    out.mkdir(exist_ok=True)
    table, skipped = read_folder(study_dir / RESULTS_DIR, SCHEMA, SUMMARY_COLUMNS)
    status = read_status(study_dir, table, skipped)
    measured = table.filter(pc.and_(pc.equal(table["stage"], "eval"), pc.equal(table["status"], "completed")))
    if measured.num_rows:
        sections = [
            _guarded(anchor, title, partial(build, table, out)) for anchor, title, build in RESULT_SECTIONS
        ]
    else:
        sections = [Section("results", "Results", [Note(_no_results(status))])]
    datasets = sorted(set(table["dataset"].drop_null().to_pylist()) | set(study_datasets(study_dir)))
    if datasets:
        title = "Train vs test class means (2-D projection)"
        sections.append(_guarded("projection", title, partial(projection_blocks, study_dir, datasets, out)))
    sections.append(_guarded("status", "Study status", partial(status_blocks, status, out)))
    plotly_js = write_plotly_js(out)
    page = render_page(_header(study_dir, table, status), sections, _footer(len(table)), plotly_js)
    _remove_stale_figures(out, sections)
    return write_text_atomic(out / DASHBOARD_PAGE, page)


def _guarded(anchor: str, title: str, build: Callable[[], list[Block]]) -> Section:
    """A section, or a note saying why it could not be drawn: one bad chart must not hide the others."""
    try:
        return Section(anchor, title, build())
    except Exception as err:  # shown on the page, which still renders
        where = traceback.extract_tb(err.__traceback__)[-1]
        place = f"{Path(where.filename).name}:{where.lineno}"
        text = f"This section could not be drawn: {type(err).__name__}: {err} ({place})"
        return Section(anchor, title, [Note(text, warning=True)])


def _no_results(status: StudyStatus) -> str:
    counts = status.counts()
    text = "No results yet: no evaluation trial has completed."
    if sum(counts.values()):
        text += (
            " So far: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n) + " (see Study status)."
        )
    return text


def _header(study_dir: StudyPath, table: pa.Table, status: StudyStatus) -> Header:
    def names(column: str) -> str:
        return ", ".join(str(v) for v in sorted(set(table[column].drop_null().to_pylist()))) or "–"

    study = names("study") if table.num_rows else study_dir.name
    lines = [
        f"Study folder: {study_dir.resolve()}",
        f"Datasets: {names('dataset')} · Methods: {names('method')} · Seeds: {names('seed')}",
        f"Protocol: {_protocols(table)}",
    ]
    badges = [(f"{n} {what}", what) for what, n in status.counts().items() if n or what == "completed"]
    badges.append(("driver running" if status.driver else "no driver running", "neutral"))
    return Header(f"oodml study: {study}", lines, badges)


PROTOCOLS = {
    "validated": "validated (trained on the train/val division, epoch selected on validation classes)",
    "paper": "paper (trained on all train classes, epoch selected on test Recall@1, as the released ooDML code)",
}


def _protocols(table: pa.Table) -> str:
    """How the evaluated models were trained and selected; results written before protocols were
    recorded were all ``validated``."""
    evaluated = table.filter(pc.equal(table["stage"], "eval")) if table.num_rows else table
    found = sorted({p or "validated" for p in evaluated["protocol"].to_pylist()})
    return "; ".join(PROTOCOLS.get(p, p) for p in found) or "–"


def _footer(rows: int) -> str:
    return f"Built {time.strftime('%Y-%m-%d %H:%M:%S %Z')} by oodml from the results dataset ({rows} rows)."


def _remove_stale_figures(out: StudyPath, sections: list[Section]) -> None:
    """Figures of an earlier build that this one no longer draws (e.g. a dataset whose rows were removed)."""
    drawn = {b.path.name for s in sections for b in s.blocks if isinstance(b, Image)}
    for path in out.glob("*.png"):
        if path.name not in drawn:
            path.unlink(missing_ok=True)
