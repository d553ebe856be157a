"""Effective robustness to graded shift: how far a method stays above the trend every model follows.

As Taori et al. ("Measuring Robustness to Natural Distribution Shifts in Image Classification", NeurIPS
2020) and Miller et al. ("Accuracy on the Line", ICML 2021) do for accuracy under shift: per dataset and
harder split (a split whose FID is above the default split's), every model, a (backbone, method, seed)
trained on the default split, is a point (Recall@1 on the default split, Recall@1 on the harder split).
The trend is the least-squares line through the points on logit-scaled axes, ``logit y = a + b logit x``
(Recall@1 clipped to [1e-4, 1 - 1e-4] before the logit). A model's effective robustness on that split is
its Recall@1 above the trend, ``y - expit(a + b logit x)``, in Recall@1 units; a method's is the mean over
its models and the harder splits. Its interval: 2.5th and 97.5th percentiles over ``RESAMPLES`` bootstrap
resamples of the dataset's models (drawn with replacement, every trend refitted).

A model is only a point where it has both values; a split needs ``MIN_MODELS`` models with 2 distinct
default-split values to fit a trend, and is left out otherwise (``n_splits`` counts the fitted ones).

Across studies (``oodml leaderboard``) a model is a (study, backbone, method, seed) and a method a (study,
backbone, method): the trend is fitted through the models of every study that shares the dataset's split
file (``robustness_frame`` over the studies' ``points``).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from study.results.aggregate import METHOD, arrow_table, per_seed_rows
from study.results.layout import DEFAULT_SPLIT_KEY

EPS = 1e-4  # Recall@1 is clipped to [EPS, 1 - EPS] before the logit (0 and 1 occur)
MIN_MODELS = 3  # points a trend needs (2 would leave no residual)
RESAMPLES = 1000
_MODEL = ["backbone", "method", "seed"]

ROBUSTNESS_OUT = pa.schema(
    list(zip(METHOD, [pa.string()] * 3, strict=True))
    + [("metric", pa.string()), ("effective_robustness", pa.float64())]
    + [
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n_models", pa.int64()),
        ("n_splits", pa.int64()),
    ]
)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def points(table: pa.Table, metric: str = "recall@1", default_key: str = DEFAULT_SPLIT_KEY) -> pd.DataFrame:
    """Per dataset, model and harder split: ``x`` (the model's value on the default split) and ``y`` (on
    the harder split), zero-shot on the test classes."""
    rows = per_seed_rows(table, metric, shots=[0], kinds=["zeroshot"])
    if rows.empty:
        return pd.DataFrame(columns=["dataset", *_MODEL, "split_id", "split_key", "x", "y"])
    default = rows[rows["split_key"] == default_key]
    default_fid = default.groupby("dataset")["fid"].max().rename("default_fid")
    rows = rows.merge(default_fid, on="dataset")
    harder = rows[rows["fid"] > rows["default_fid"]]
    x = default[["dataset", *_MODEL, "value"]].rename(columns={"value": "x"})
    columns = ["dataset", *_MODEL, "split_id", "split_key", "value"]
    found = harder[columns].rename(columns={"value": "y"}).merge(x)
    return found.reset_index(drop=True)


def trend_lines(lx: np.ndarray, ly: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per split (column): intercept and slope of the least-squares line ``ly = a + b lx`` through the rows
    ``has`` marks (closed form); NaN where a split has fewer than ``MIN_MODELS`` of them or a single
    distinct ``lx``."""
    lx = np.broadcast_to(lx, ly.shape)
    n = has.sum(axis=0)
    mx = np.where(has, lx, 0).sum(axis=0) / np.maximum(n, 1)
    my = np.where(has, ly, 0).sum(axis=0) / np.maximum(n, 1)
    dx = np.where(has, lx - mx, 0)
    sxx, sxy = (dx * dx).sum(axis=0), (dx * np.where(has, ly - my, 0)).sum(axis=0)
    fits = (n >= MIN_MODELS) & (sxx > 1e-12)
    slope = np.where(fits, sxy / np.where(fits, sxx, 1), np.nan)
    return my - slope * mx, slope


def residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Residuals above each split's trend: ``x`` (models,) default-split values, ``y`` (models, splits)
    harder-split values (NaN: no point); a split without a trend (``trend_lines``) gets NaN residuals."""
    lx, has = logit(x)[:, None], np.isfinite(y)
    intercept, slope = trend_lines(lx, logit(y), has)
    return np.where(has & np.isfinite(slope), y - expit(intercept + slope * lx), np.nan)


def effective_robustness(table: pa.Table, metric: str = "recall@1", resamples: int = RESAMPLES) -> pa.Table:
    """Per dataset x backbone x method: effective robustness (module docstring) with its bootstrap
    interval, the models and the harder splits it is measured on."""
    frame = robustness_frame(points(table, metric), metric, resamples)
    return arrow_table(frame.sort_values(METHOD), ROBUSTNESS_OUT)


def robustness_frame(
    found: pd.DataFrame,
    metric: str = "recall@1",
    resamples: int = RESAMPLES,
    method: Sequence[str] = ("backbone", "method"),
) -> pd.DataFrame:
    """Per ``dataset`` (the trend's scope) and ``method`` (the columns that name a method; a model is a
    method's ``seed``): effective robustness of ``found``'s points (``points``' columns, and ``method``'s),
    its interval, models and harder splits; the columns of ``ROBUSTNESS_OUT`` with ``method`` in place
    of backbone and method."""
    method, rows = list(method), []
    for dataset, part in found.groupby("dataset"):
        x, y, models = _wide(part, method)
        groups = list(models.droplevel("seed"))
        names = sorted(set(groups))
        member = np.array([[g == name for g in groups] for name in names])  # (methods, models)
        observed = residuals(x, y)
        means = _means(observed, member)  # each method's mean over its models and splits
        rng = np.random.default_rng(zlib.crc32(f"{dataset}/{metric}".encode()))
        draws = np.full((resamples, len(names)), np.nan)
        for b in range(resamples):
            chosen = rng.integers(0, len(x), len(x))
            draws[b] = _means(residuals(x[chosen], y[chosen]), member[:, chosen])
        for k, name in enumerate(names):
            er = observed[member[k]]
            if not np.isfinite(er).any():
                continue
            valid = draws[:, k][np.isfinite(draws[:, k])]
            low, high = np.percentile(valid, [2.5, 97.5]) if len(valid) >= resamples / 2 else (np.nan, np.nan)
            rows.append(
                {"dataset": dataset}
                | dict(zip(method, name if isinstance(name, tuple) else (name,), strict=True))
                | {
                    "metric": metric,
                    "effective_robustness": float(means[k]),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_models": int(np.isfinite(er).any(axis=1).sum()),
                    "n_splits": int(np.isfinite(er).any(axis=0).sum()),
                }
            )
    columns = ["dataset", *method, *ROBUSTNESS_OUT.names[len(METHOD) :]]
    return pd.DataFrame(rows, columns=columns)


def trends(found: pd.DataFrame, method: Sequence[str] = ("backbone", "method")) -> pd.DataFrame:
    """Per ``dataset`` and harder split of ``found`` (as ``robustness_frame`` reads it): the fitted trend
    ``logit y = intercept + slope logit x`` and the models it is fitted through; splits without a trend
    are left out."""
    rows = []
    for dataset, part in found.groupby("dataset"):
        x, y, _ = _wide(part, list(method))
        intercept, slope = trend_lines(logit(x)[:, None], logit(y), np.isfinite(y))
        keys = part.drop_duplicates("split_id").set_index("split_id")["split_key"]
        for split_id, a, b, n in zip(
            _split_ids(part), intercept, slope, np.isfinite(y).sum(axis=0), strict=True
        ):
            if np.isfinite(b):
                rows.append([dataset, split_id, keys[split_id], a, b, int(n)])
    return pd.DataFrame(rows, columns=["dataset", "split_id", "split_key", "intercept", "slope", "n_models"])


def _split_ids(part: pd.DataFrame) -> list:
    return sorted(part["split_id"].unique())


def _wide(part: pd.DataFrame, method: list[str]) -> tuple[np.ndarray, np.ndarray, pd.MultiIndex]:
    """One dataset's points as ``x`` (models,), ``y`` (models, harder splits in ``_split_ids`` order, NaN:
    no point) and the models (``method`` + seed)."""
    model = [*method, "seed"]
    wide = part.pivot_table(index=model, columns="split_id", values="y", aggfunc="first")
    wide = wide.reindex(columns=_split_ids(part))
    x = part.groupby(model)["x"].first().reindex(wide.index).to_numpy()
    return x, wide.to_numpy(dtype=np.float64), wide.index


def _means(r: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Each method's mean residual over its (resampled) models' finite residuals; NaN without any."""
    finite = np.isfinite(r)
    sums = member.astype(np.float64) @ np.where(finite, r, 0).sum(axis=1)
    counts = member.astype(np.float64) @ finite.sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
