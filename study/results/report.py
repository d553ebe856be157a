"""``oodml results STUDY_DIR``: the study's trials, AUC table, ranking, curves and few-shot gains as text."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from study.results.aggregate import (
    auc_summary,
    degradation_curves,
    fewshot_gain,
    ranking,
    shift_agreement,
)
from study.results.compare import DRAWS, EXACT_UP_TO, RESAMPLES, Comparison, json_records
from study.results.layout import DEFAULT_SPLIT_KEY, RESULTS_DIR
from study.results.names import FID
from study.results.oracle import oracle_lines
from study.results.robustness import effective_robustness, points, trends
from study.results.schema import SCHEMA, SUMMARY_COLUMNS
from study.results.storage import StudyPath, Where, locate
from study.results.store import leftover_temporary_files, read_folder


def format_summary(study_dir: Where, metric: str = "recall@1", shift: str = FID) -> str:
    """A plain-text report of a study's results folder; curves and AUC against the ``shift`` measure."""
    study_dir = locate(study_dir)
    table, skipped = read_study(study_dir)
    names = sorted(set(table["study"].drop_null().to_pylist()))
    lines = [f"Study {', '.join(names) or '(no results yet)'}: {study_dir / RESULTS_DIR}"]
    lines += _trial_counts(table)
    lines += [f"  unreadable, skipped: {path.name}: {why}" for path, why in skipped]
    leftovers = leftover_temporary_files(study_dir)
    if leftovers:
        lines.append(
            f"  {len(leftovers)} leftover .tmp files from interrupted writes (ignored; safe to delete)"
        )
    sections = [
        (
            f"Normalized AUC of test {metric} over {_named(shift)} (zero-shot)",
            auc_summary(table, metric, shift=shift),
        ),
        (
            f"Ranking by AUC over FID vs by {metric} on the default split (key {DEFAULT_SPLIT_KEY})",
            ranking(table, metric),
        ),
    ]
    hidden = ("shift",) if shift != FID else ("shift", "shift_min", "shift_max")  # the title names it
    for title, result in sections:
        lines += [
            "",
            f"{title}:",
            _text(result.drop_columns([c for c in ("metric", "shots", *hidden) if c in result.column_names])),
        ]
    lines += [
        "",
        f"Degradation curves, test {metric} (zero-shot, mean over seeds; split key @ {_named(shift)} "
        "(test classes)):",
    ]
    lines.append(_curves_text(degradation_curves(table, metric, shift=shift)))
    lines += ["", "Agreement of each shift measure's split order with FID's (Kendall tau-b, per dataset):"]
    agreement = shift_agreement(table)
    lines.append(
        _text(agreement) if agreement.num_rows else "(no shift measure besides FID stored with the splits)"
    )
    robustness = effective_robustness(table, metric)
    if robustness.num_rows:
        lines += [
            "",
            f"Effective robustness, test {metric}: mean height above the trend of every model's harder-split "
            f"{metric} against its default-split {metric} (logit axes), 95% bootstrap interval over models:",
            _text(robustness.drop_columns(["metric"])),
        ]
    gain = fewshot_gain(table, metric)
    if gain.num_rows:
        lines += ["", f"Few-shot gain in test {metric} (few-shot minus zero-shot on the episode queries):"]
        columns = [
            "dataset",
            "method",
            "split_key",
            "fid",
            "shots",
            "zeroshot",
            "fewshot",
            "gain",
            "gain_ci95",
        ]
        lines.append(_text(gain.select(columns)))
    lines += oracle_lines(table, metric)
    return "\n".join(lines)


def format_comparison(comparison: Comparison, metric: str = "recall@1", shift: str = FID) -> str:
    """The three tables of ``compare`` as plain text, each under a title that says what it holds."""
    sections = [
        (
            f"Paired differences in normalized AUC of test {metric} over {_named(shift)} (zero-shot; "
            "method_a minus method_b on "
            f"the (split, seed) cells both completed): 95% two-way bootstrap interval over seeds x splits "
            f"({RESAMPLES} resamples), sign-flip p-value flipping {comparison.unit}s (exact up to "
            f"{EXACT_UP_TO} of them, else {DRAWS} random patterns), Holm over the dataset's pairs",
            comparison.pairs,
        ),
        ("Per split: mean paired difference over seeds, bootstrap-over-seeds interval", comparison.splits),
        (
            f"Ranking: rank = 1 + the number of methods significantly better (Holm p < {comparison.alpha:g}); "
            "methods with the same number share a rank",
            comparison.ranking,
        ),
    ]
    lines = []
    for title, table in sections:
        if "note" in table.column_names:  # most pairs have no note: print nothing, not None
            table = table.set_column(
                table.schema.get_field_index("note"), "note", pc.fill_null(table["note"], "")
            )
        lines += ["", f"{title}:", _text(table.drop_columns(["metric", "shots", "shift"]))]
    return "\n".join(lines[1:])


def read_study(study_dir: StudyPath) -> tuple[pa.Table, list[tuple[StudyPath, str]]]:
    """The study's result rows, the columns the summaries read (not ``DESCRIPTIVE``), and the files skipped."""
    if not (study_dir / RESULTS_DIR).is_dir():
        raise FileNotFoundError(f"{study_dir} has no {RESULTS_DIR}/ folder: is it a study folder?")
    return read_folder(study_dir / RESULTS_DIR, SCHEMA, SUMMARY_COLUMNS)


def _trial_counts(table: pa.Table) -> list[str]:
    trials = table.select(["trial_id", "stage", "status", "error", "method", "dataset", "split_key", "seed"])
    frame = trials.to_pandas().drop_duplicates(["trial_id", "stage"])
    if frame.empty:
        return ["  no trials recorded"]
    counts = frame.groupby(["stage", "status"]).size()
    lines = [
        f"  {stage}: " + ", ".join(f"{n} {status}" for status, n in counts[stage].items())
        for stage in counts.index.get_level_values(0).unique()
    ]
    for row in frame[frame["status"] == "failed"].itertuples():
        reason = (row.error or "").strip().splitlines()[-1:] or ["(no message)"]
        lines.append(
            f"  FAILED {row.stage} {row.trial_id} {row.method} {row.dataset} split {row.split_key} "
            f"seed {row.seed}: {reason[0]}"
        )
    return lines


def _named(shift: str) -> str:
    return "FID" if shift == FID else shift


def _curves_text(curves: pa.Table) -> str:
    """One block per dataset: methods as rows, splits (key @ shift, in its order) as columns."""
    frame = curves.to_pandas()
    if frame.empty:
        return "(none)"
    frame["split"] = [
        f"{key} @ {x:.4g} ({n})"
        for key, x, n in zip(frame["split_key"], frame["shift_value"], frame["num_test_classes"], strict=True)
    ]
    blocks = []
    for dataset, part in frame.groupby("dataset"):
        order = part.sort_values("shift_value")["split"].unique()
        wide = part.pivot_table(index=["backbone", "method"], columns="split", values="mean")[order]
        blocks.append(f"{dataset}:\n{wide.to_string(float_format='{:.4f}'.format)}")
    return "\n".join(blocks)


def _text(table: pa.Table) -> str:
    frame: pd.DataFrame = table.to_pandas()
    if frame.empty:
        return "(none)"
    return frame.to_string(index=False, float_format="{:.4f}".format)


def summary_json(study_dir: Where, metric: str = "recall@1", shift: str = FID) -> str:
    """The summary's tables as one JSON object: ``auc``, ``ranking`` and ``effective_robustness`` rows,
    and the effective-robustness scatter: its ``robustness_points`` (per model and harder split, ``x`` on
    the default split and ``y`` on the harder one) and each split's fitted ``robustness_trends``
    (``logit y = intercept + slope logit x``); NaN written as null."""
    table, _ = read_study(locate(study_dir))
    scatter = points(table, metric)
    tables = {
        "auc": auc_summary(table, metric, shift=shift),
        "ranking": ranking(table, metric),
        "effective_robustness": effective_robustness(table, metric),
        "robustness_points": pa.Table.from_pandas(scatter, preserve_index=False),
        "robustness_trends": pa.Table.from_pandas(trends(scatter), preserve_index=False),
    }
    return json.dumps({name: json_records(result) for name, result in tables.items()}, allow_nan=False)
