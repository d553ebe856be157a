"""The one list of metric names (``tasks.metric_names``) against what the evaluation returns, and the
typed keys that name them in curves, Tune reports and MLflow."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluate import retrieval_metrics
from tasks.metric_names import TRAIN_LOSS, MetricKey, keyed, metric_names, subset_metrics, term_key


@pytest.mark.parametrize(("ks", "with_nmi"), [((1, 2, 4, 8), True), ((1, 10), False)])
def test_the_names_are_the_evaluations_keys_in_its_order(ks, with_nmi) -> None:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(24, 4)).astype(np.float32)
    labels = np.repeat(np.arange(6), 4)
    assert list(retrieval_metrics(embeddings, labels, ks, with_nmi=with_nmi)) == metric_names(ks, with_nmi)


def test_keys_are_subset_slash_metric() -> None:
    assert MetricKey("val", "recall@1").key == "val/recall@1"
    assert TRAIN_LOSS.key == "train/loss" and term_key("distill").key == "train/loss/distill"


def test_a_rows_subset_metrics_are_what_was_keyed() -> None:
    val, test = {"recall@1": 0.5, "map@r": 0.25}, {"recall@1": 0.75}
    row = {"epoch": 2, TRAIN_LOSS.key: 1.5, "lr": 1e-3, **keyed("val", val), **keyed("test", test)}
    assert row["val/map@r"] == 0.25
    assert subset_metrics(row, "val") == val and subset_metrics(row, "test") == test
    assert subset_metrics(row, "heldout") == {}
