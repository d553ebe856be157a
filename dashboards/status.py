"""Study status: trials done, failed (with their error) and in progress, and the time they took.

Done and failed come from the results dataset. Trials in progress come from the status tables the study
driver keeps (``study/results/status.py``): a trial it started that has no result row yet is running
while the driver is alive (its heartbeat is recent), and interrupted otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.charts import Spec, axes_of, axis_key, grid, numbers
from dashboards.page import Block, Details, Image, Note, Table
from dashboards.plotting import STATUS_COLOURS, figure
from study.results.status import DriverStatus, read_driver, read_trial_status

_TRIAL_COLUMNS = [
    "trial_id",
    "stage",
    "status",
    "error",
    "dataset",
    "method",
    "split_key",
    "seed",
    "trial_role",
    "time_train_s",
    "time_test_eval_s",
    "time_fewshot_s",
    "time_total_s",
    "finished_at",
]


@dataclass(frozen=True)
class StudyStatus:
    trials: pd.DataFrame  # one row per recorded trial and stage
    unrecorded: pd.DataFrame  # trials the driver started without a result row (running, or interrupted)
    driver: str | None  # the live ``oodml run`` driving the study, if any
    skipped: list[tuple[Path, str]]  # unreadable result files

    @property
    def in_progress(self) -> str:
        """How trials without a row count: ``running`` under a live driver, else ``interrupted``."""
        return "running" if self.driver else "interrupted"

    def counts(self) -> dict[str, int]:
        counts = self.trials["status"].value_counts()
        return {
            "completed": int(counts.get("completed", 0)),
            "failed": int(counts.get("failed", 0)),
            self.in_progress: len(self.unrecorded),
        }


def read_status(study_dir: Path, table: pa.Table, skipped: list[tuple[Path, str]]) -> StudyStatus:
    trials = table.select(_TRIAL_COLUMNS).to_pandas().drop_duplicates(["trial_id", "stage"])
    driver = live_driver(read_driver(study_dir))
    started = read_trial_status(study_dir).to_pandas()
    # Under a live driver, what it runs; else whatever was left without an end (its rerun is pending).
    started = started[started["status"].isin(["running"] if driver else ["running", "interrupted"])]
    recorded = set(zip(trials["trial_id"], trials["stage"], strict=True))
    keys = zip(started["trial_id"], started["stage"], strict=True)
    unrecorded = started[[key not in recorded for key in keys]].reset_index(drop=True)
    return StudyStatus(trials, unrecorded, driver, skipped)


def live_driver(driver: DriverStatus | None) -> str | None:
    """The driver in words if it is running (heard from recently), else None."""
    return driver.describe() if driver is not None and driver.alive() else None


def status_blocks(status: StudyStatus, out: Path) -> list[Block]:
    blocks: list = [Note(_summary(status))]
    blocks += [
        Note(f"Unreadable result file skipped: {p.name}: {why}", warning=True) for p, why in status.skipped
    ]
    if not status.trials.empty or len(status.unrecorded):
        path = out / "status.png"
        trials, times = _trial_counts(status), _compute_minutes(status)
        _plot(trials, times, path)
        blocks.append(
            Image(
                path,
                "Trials per stage by status, and compute time per method (sum of trial times; a method's "
                "oracle trials, where the study ran them, are their own part of its bar).",
                chart_status(trials, times),
            )
        )
    failed = status.trials[status.trials["status"] == "failed"]
    if not failed.empty:
        blocks.append(Table(_failed_table(failed), "Failed trials (click an error for its full text)"))
    if len(status.unrecorded):
        caption = f"Trials {status.in_progress}: started by the study driver, no result row yet"
        frame = status.unrecorded
        started = frame["started_at"].dt.strftime("%Y-%m-%d %H:%M:%S UTC")
        shown = pd.DataFrame(
            {
                "stage": frame["stage"],
                "trial id": frame["trial_id"],
                "trial": frame["label"],
                "started": started,
            }
        )
        blocks.append(Table(shown, caption))
    return blocks


def _summary(status: StudyStatus) -> str:
    counts = status.counts()
    text = ", ".join(f"{n} {what}" for what, n in counts.items() if n or what == "completed")
    driver = (
        f"A study driver is running ({status.driver})." if status.driver else "No study driver is running."
    )
    times = status.trials["time_total_s"].dropna()
    if times.empty:
        return f"Trials: {text}. {driver}"
    finished = status.trials["finished_at"].dropna()
    span = f" Results written {finished.min():%Y-%m-%d %H:%M} to {finished.max():%Y-%m-%d %H:%M} UTC."
    return f"Trials: {text}. Compute time in recorded trials: {_duration(times.sum())}.{span} {driver}"


def _failed_table(failed: pd.DataFrame) -> pd.DataFrame:
    errors = [Details(_last_line(e), e or "") for e in failed["error"]]
    return pd.DataFrame(
        {
            "stage": failed["stage"],
            "trial id": failed["trial_id"],
            "dataset": failed["dataset"],
            "method": failed["method"],
            "split": failed["split_key"],
            "seed": failed["seed"].astype("Int64"),
            "error": errors,
        }
    )


STATUSES = ("completed", "failed", "running", "interrupted")
STAGES = (
    ("tune", "#bbbbbb", "tune stage"),
    ("eval", "#0072B2", "eval stage"),
    ("oracle", "#CC79A7", "oracle trials"),
)


def _trial_counts(status: StudyStatus) -> dict[str, pd.Series]:
    """Per bar (``tune stage``, ``eval stage``, ``no row yet``), the number of trials in each status."""
    trials = status.trials
    rows = {stage: trials[trials["stage"] == stage]["status"].value_counts() for stage in ("tune", "eval")}
    rows = {f"{stage} stage": counts for stage, counts in rows.items() if counts.sum()}
    if len(status.unrecorded):
        rows["no row yet"] = pd.Series({status.in_progress: len(status.unrecorded)})
    return rows


def _compute_minutes(status: StudyStatus) -> pd.DataFrame:
    """Minutes of trial time per method (rows) and stage (columns: tune, eval, oracle)."""
    timed = status.trials.dropna(subset=["time_total_s"])  # an oracle's time is its own part
    part = timed["stage"].where(timed["trial_role"] != "oracle", "oracle")
    times = timed.groupby(["method", part.rename("stage")])["time_total_s"].sum() / 60
    return times.unstack("stage") if not times.empty else pd.DataFrame()


def _plot(rows: dict[str, pd.Series], wide: pd.DataFrame, path: Path) -> None:
    bars = max(len(rows), len(wide), 2)
    with figure(path, (10, 1.4 + 0.5 * bars), ncols=2) as (_, axes):
        ax = axes[0, 0]
        labels = list(rows)
        left = [0.0] * len(labels)
        for what in STATUSES:
            widths = [float(rows[label].get(what, 0)) for label in labels]
            if any(widths):
                ax.barh(labels, widths, left=left, color=STATUS_COLOURS[what], label=what, height=0.55)
                left = [a + b for a, b in zip(left, widths, strict=True)]
        _finish(ax, "Trials", "trials")
        ax = axes[0, 1]
        if wide.empty:
            ax.set_axis_off()
            return
        left = pd.Series(0.0, index=wide.index)
        for stage, colour, label in STAGES:
            if stage in wide:
                minutes = wide[stage].fillna(0)
                ax.barh(list(wide.index), minutes, left=left, color=colour, label=label, height=0.55)
                left += minutes
        _finish(ax, "Compute time per method", "minutes (sum over trials)")


def chart_status(rows: dict[str, pd.Series], wide: pd.DataFrame) -> Spec:
    """The figure of ``_plot`` as a Plotly spec: stacked bars of trials by status and minutes by stage."""
    titles = ["Trials", "Compute time per method"]
    layout = grid(
        1,
        2,
        titles,
        ["trials", "minutes (sum over trials)"],
        ["", ""],
        height=140 + 30 * max(len(rows), len(wide), 2),
    )
    layout["barmode"] = "stack"
    layout["margin"]["l"] = 120
    data = []
    for what in STATUSES:
        counts = [float(rows[label].get(what, 0)) for label in rows]
        if any(counts):
            data.append(_bars(counts, list(rows), what, STATUS_COLOURS[what], "trials", axes_of(0, 0, 2)))
    for stage, colour, label in STAGES:
        if stage in wide:
            minutes = wide[stage].fillna(0)
            data.append(_bars(minutes, list(wide.index), label, colour, "minutes", axes_of(0, 1, 2), ".1f"))
    for panel in (axes_of(0, 0, 2), axes_of(0, 1, 2)):
        layout[axis_key(panel["yaxis"])]["autorange"] = "reversed"
    return {"data": data, "layout": layout}


def _bars(
    values: Iterable[float], labels: list[str], name: str, colour: str, unit: str, panel: dict, fmt: str = "d"
) -> dict:
    return {
        "type": "bar",
        "orientation": "h",
        "x": numbers(values),
        "y": labels,
        "name": name,
        "marker": {"color": colour},
        "hovertemplate": f"%{{y}}: %{{x:{fmt}}} {unit}<extra>{name}</extra>",
        **panel,
    }


def _finish(ax, title: str, xlabel: str) -> None:
    ax.set_ylim(max(len(ax.get_yticks()), 2) - 0.5, -0.5)  # top down; a lone bar takes half the height
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="y", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncols=4)


def _last_line(error: str | None) -> str:
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no message)"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
