"""Shift vs difficulty: a table (docs/oracle.md).

It divides each method's drop in held-out Recall@1 from the easiest split into the part its oracle also
shows (the test classes are harder) and the rest (shift).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboards.page import Block, Note, Table
from dashboards.plotting import METRICS
from study.results.oracle import shift_decomposition

PRIMARY = "recall@1"


def oracle_blocks(table: pa.Table, out: Path) -> list[Block]:
    """The decomposition table, or a note saying the study ran no oracle."""
    label = METRICS[PRIMARY]
    blocks: list[Block] = []
    parts = shift_decomposition(table, PRIMARY).to_pandas()
    if not parts.empty:
        blocks.append(
            Table(
                decomposition_table(parts),
                f"Drop in held-out {label} from the easiest split (lowest FID) = difficulty (the oracle's own "
                "drop: the test classes are harder) + shift (the growth of the gap between oracle and "
                "method); means over seeds, on the held-out half of the test classes.",
            )
        )
    if not blocks:
        blocks.append(Note("This study ran no oracle (oracle.enabled: docs/oracle.md)."))
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
            "shift": parts["shift"].map("{:+.3f}".format),
            "shift share": parts["shift_share"].map(share),
            "seeds": parts["n_seeds"],
        }
    )
