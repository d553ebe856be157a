"""Slow, obviously-correct references for the evaluation tests: a loop over queries on the full matrix."""

from __future__ import annotations

import numpy as np


def similarity_matrix(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if metric == "ip":
        return x @ x.T
    return -((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)


def ranked_relevance(x: np.ndarray, labels: np.ndarray, metric: str) -> list[np.ndarray]:
    """Per query: is the i-th gallery item (the others, by similarity desc, then index) same-class?"""
    sim = similarity_matrix(x, metric)
    labels = np.asarray(labels)
    n = len(labels)
    out = []
    for i in range(n):
        gallery = np.array([g for g in range(n) if g != i])
        ranked = gallery[np.lexsort((gallery, -sim[i, gallery]))]
        out.append(labels[ranked] == labels[i])
    return out


def reference_metrics(x: np.ndarray, labels: np.ndarray, ks, metric: str = "ip") -> dict[str, float]:
    recall = {k: [] for k in ks}
    map_r, map_1000 = [], []
    for rel in ranked_relevance(x, labels, metric):
        r = int(rel.sum())
        precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        for k in ks:
            recall[k].append(bool(rel[:k].any()))
        if r > 0:  # queries without positives are left out, as in pytorch-metric-learning
            map_r.append(precision[:r][rel[:r]].sum() / r)
        map_1000.append(precision[:1000][rel[:1000]].sum() / (r + 1))
    out = {f"recall@{k}": float(np.mean(v)) for k, v in recall.items()}
    out["map@r"] = float(np.mean(map_r)) if map_r else float("nan")
    out["map@1000"] = float(np.mean(map_1000))
    return out


def reference_nmi(a: np.ndarray, b: np.ndarray) -> float:
    """NMI from the definition, arithmetic-mean normalisation, by loops over the contingency table."""
    n = len(a)
    ua, ub = sorted(set(a.tolist())), sorted(set(b.tolist()))
    if len(ua) == 1 and len(ub) == 1:
        return 1.0
    pa = {u: np.mean(a == u) for u in ua}
    pb = {v: np.mean(b == v) for v in ub}
    mi = 0.0
    for u in ua:
        for v in ub:
            p = np.sum((a == u) & (b == v)) / n
            if p > 0:
                mi += p * np.log(p / (pa[u] * pb[v]))
    ha = -sum(p * np.log(p) for p in pa.values())
    hb = -sum(p * np.log(p) for p in pb.values())
    return mi / ((ha + hb) / 2)
