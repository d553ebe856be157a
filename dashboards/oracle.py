"""Shift vs difficulty, and cross-dataset evaluation: two tables (docs/oracle.md).

The first divides each method's drop in held-out Recall@1 from the easiest split into the part its oracle
also shows (the test classes are harder) and the rest (the shift part); the second lists what models trained on
one dataset score on another dataset's test classes, beside their own test value.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.page import Block, Note, Table
from dashboards.plotting import METRICS, PRIMARY_METRIC, with_ci
from study.results.oracle import cross_dataset, shift_decomposition


def oracle_blocks(table: pa.Table, out: Path) -> list[Block]:
    """The decomposition and cross-dataset tables, or a note saying the study ran neither."""
    label = METRICS[PRIMARY_METRIC]
    blocks: list[Block] = []
    parts = shift_decomposition(table, PRIMARY_METRIC).to_pandas()
    if not parts.empty:
        blocks.append(
            Table(
                decomposition_table(parts),
                f"Drop in held-out {label} from the easiest split (lowest FID) = difficulty (the oracle's own "
                "drop: the test classes are harder) + shift part (the growth of the gap between oracle and "
                "method); means over seeds, on the held-out half of the test classes.",
            )
        )
    cross = cross_dataset(table, PRIMARY_METRIC).to_pandas()
    if not cross.empty:
        blocks.append(
            Table(
                cross_table(cross),
                f"{label} of models trained on a dataset's split, on another dataset's test classes "
                "(its default split), beside their own test value; mean ± 95% CI over seeds.",
            )
        )
    if not blocks:
        blocks.append(
            Note(
                "This study ran no oracle and no cross-dataset evaluation (oracle.enabled, "
                "datasets[].evaluate_on: docs/oracle.md)."
            )
        )
    return blocks


def decomposition_table(parts: pd.DataFrame) -> pd.DataFrame:
    def share(value: float) -> str:
        return "–" if pd.isna(value) else f"{value:.0%}"

    return pd.DataFrame(
        {
            "dataset": parts["dataset"],
            "method": parts["method"],
            "split": parts["split_key"],
            "FID": parts["fid"].map("{:.1f}".format),
            "method (held-out)": parts["method_value"].map("{:.3f}".format),
            "oracle (held-out)": parts["oracle_value"].map("{:.3f}".format),
            "gap": parts["gap"].map("{:+.3f}".format),
            "drop": parts["drop"].map("{:+.3f}".format),
            "difficulty": parts["difficulty"].map("{:+.3f}".format),
            "shift part": parts["shift_part"].map("{:+.3f}".format),
            "shift share": parts["shift_share"].map(share),
            "seeds": parts["n_seeds"],
        }
    )


def cross_table(cross: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trained on": cross["dataset"],
            "method": cross["method"],
            "split": cross["split_key"],
            "FID": cross["fid"].map("{:.1f}".format),
            "evaluated on": cross["eval_dataset"],
            "value": [with_ci(v, c) for v, c in zip(cross["mean"], cross["ci95"], strict=True)],
            "own test": cross["own_test"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"),
            "seeds": cross["n_seeds"],
        }
    )
