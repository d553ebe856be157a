"""The names a trial's metrics travel under, from the evaluation to the record.

``metric_names`` is the one list of the retrieval metrics' names (``tasks.evaluate.retrieval_metrics``'s
keys, in its order); ``MetricKey`` names one metric on one subset of classes, and its ``key``
(``val/recall@1``) is the string curves, Tune reports and MLflow keep. A per-epoch row of
``tasks.train``'s history is ``{"epoch": e, "train/loss": ..., "lr": ..., "<subset>/<metric>": ...}``;
``subset_metrics`` is the one place that reads such a row back by subset (rows are what checkpoints
store, so a resumed training reads them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

VAL, TEST = "val", "test"  # the split's validation and test classes (``tasks.record.SUBSETS``)
MAP_AT_R, MAP_AT_1000, NMI = "map@r", "map@1000", "nmi"
SELECTION_SCORE = "selection_score"  # the score an epoch is selected on (``tasks.selection``)
LEARNING_RATE = "lr"  # a row's learning rate (of the optimizer's first group), not a subset's metric


def recall_name(k: int) -> str:
    return f"recall@{k}"


def metric_names(ks: Sequence[int], with_nmi: bool) -> list[str]:
    """The retrieval metrics' names: Recall@k for each k, mAP@R, mAP@1000 (ooDML) and NMI (if computed)."""
    return [recall_name(k) for k in ks] + [MAP_AT_R, MAP_AT_1000] + ([NMI] if with_nmi else [])


class MetricKey(NamedTuple):
    """One metric of one subset: ``train`` (the loss), ``val`` or ``test`` classes."""

    subset: str
    metric: str

    @property
    def key(self) -> str:
        """The name curves, Tune and MLflow keep (``val/recall@1``)."""
        return f"{self.subset}/{self.metric}"


TRAIN_LOSS = MetricKey("train", "loss")


def term_key(term: str) -> MetricKey:
    """A composite method's named loss term (``train/loss/<term>``)."""
    return MetricKey(TRAIN_LOSS.subset, f"{TRAIN_LOSS.metric}/{term}")


def keyed(subset: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` of ``subset`` under their row keys, in their order."""
    return {MetricKey(subset, name).key: value for name, value in metrics.items()}


def subset_metrics(row: Mapping[str, float], subset: str) -> dict[str, float]:
    """The metrics of ``subset`` in a history row, by metric name (the inverse of ``keyed``)."""
    prefix = MetricKey(subset, "").key
    return {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
