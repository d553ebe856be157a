"""Exact ranks of every query's same-class gallery items, without an N x N matrix.

Query = every image, gallery = the other images (the query is excluded by index). The retrieval
metrics only need where each *positive* (other image of the query's class) lands in the query's
ranking, so instead of top-k lists we count, for each positive, the non-positives ranked above it:

- The similarity matrix is symmetric (the query set is the gallery), so it is computed once per block
  pair (I, J >= I) and serves the rows of I and of J.
- A non-positive can only push a positive down if it is at least as similar as that positive, so each
  query keeps a threshold, the similarity of its weakest positive still within ``depth``; only block
  entries at or above the threshold are looked at further (a comparison and a flat ``nonzero``).
  These candidates are sorted by (query, similarity desc, index) and each positive's count grows by
  the number of candidates sorting before it (one ``searchsorted``).
- A positive whose rank already exceeds the depth is dropped from counting and the threshold rises
  to the next positive, which bounds the work for a poor embedding.

Ordering: similarity descending ("ip": inner product; "l2": minus squared Euclidean distance, by the
expansion ``2 x.y - |x|^2 - |y|^2`` as in faiss); ties are broken by gallery index, lower first, i.e.
the order of a stable sort. Every ordered pair gets exactly one float32 similarity.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

METRICS = ("ip", "l2")


@dataclass(frozen=True)
class PositiveRanks:
    """Ranks of each query's positives, grouped by query (CSR layout).

    Query ``i`` owns slots ``offsets[i]:offsets[i + 1]`` (``R_i`` = its class size minus one).
    ``ranks`` holds 1-based ranks in the query's ranking of the gallery, increasing within a query;
    a rank is exact up to ``depth[i]`` and any rank beyond it reads ``depth[i] + 1``.
    """

    offsets: np.ndarray
    ranks: np.ndarray
    depth: np.ndarray

    @property
    def num_positives(self) -> np.ndarray:
        """``R_i`` for every query."""
        return np.diff(self.offsets)


def positive_ranks(
    embeddings: torch.Tensor,
    codes: np.ndarray,
    depth: int,
    *,
    metric: str = "ip",
    block: int = 2048,
) -> PositiveRanks:
    """Exact ranks of each query's positives up to ``max(depth, R_i)``.

    ``embeddings`` (n x d float32, finite) may live on any torch device: the block products run there,
    the bookkeeping on the CPU. ``codes`` are integer class codes (n,). Memory: two ``block`` x ``block``
    products and a few numbers per (query, positive) pair, i.e. O(sum of squared class sizes).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n = len(codes)
    index_bits = max(1, (n - 1).bit_length())
    # a candidate's sort key packs its row in the block, its similarity (32 bits) and index in an int64
    block = min(block, 1 << (31 - index_bits))
    left, right = _operands(embeddings, metric)
    counts = _Counts(_Positives.build(left, right, codes, index_bits), codes, depth, index_bits)
    theta = counts.thresholds(0, n)
    scratch = np.empty(block * block, bool)
    for i0, j0, sims in _blocks(left, right, block):
        i1, j1 = i0 + sims.shape[0], j0 + sims.shape[1]
        if i0 == j0:
            np.fill_diagonal(sims, -np.inf)
        query, gallery, vals = _above(sims, theta[i0:i1, None], scratch)
        counts.add(query, gallery + j0, vals, i0, i1)
        theta[i0:i1] = counts.thresholds(i0, i1)
        if i0 != j0:  # the same block, read by columns, serves the queries of J
            gallery, query, vals = _above(sims, theta[None, j0:j1], scratch)
            counts.add(query, gallery + i0, vals, j0, j1)
            theta[j0:j1] = counts.thresholds(j0, j1)
    return counts.result()


def _operands(x: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices whose products give the similarity: ``x x^T`` or ``-|x_i - x_j|^2`` via [x, |x|^2, 1]."""
    if metric == "ip":
        return x, x
    sq = (x * x).sum(1, keepdim=True)
    ones = torch.ones_like(sq)
    return torch.cat([x, sq, ones], 1), torch.cat([2 * x, -ones, -sq], 1)


def _blocks(left: torch.Tensor, right: torch.Tensor, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(i0, j0, left[I] @ right[J]^T)`` for the block pairs J >= I, as float32 numpy arrays.

    The next product is computed in a background thread while the caller works on the current one.
    """
    starts = range(0, len(left), block)
    pairs = [(i0, j0) for i0 in starts for j0 in starts if j0 >= i0]

    def product(i0: int, j0: int) -> np.ndarray:
        return (left[i0 : i0 + block] @ right[j0 : j0 + block].T).cpu().numpy()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(product, *pairs[0])
        for k, (i0, j0) in enumerate(pairs):
            sims = pending.result()
            if k + 1 < len(pairs):
                pending = pool.submit(product, *pairs[k + 1])
            yield i0, j0, sims


def _above(sims: np.ndarray, threshold: np.ndarray, scratch: np.ndarray) -> tuple[np.ndarray, ...]:
    """(row, column, value) of the block entries ``>= threshold`` (broadcast), in row-major order."""
    mask = np.greater_equal(sims, threshold, out=scratch[: sims.size].reshape(sims.shape))
    flat = np.flatnonzero(mask)
    rows = flat // sims.shape[1]  # numpy divides by a scalar quickly, unlike divmod
    return rows, flat - rows * sims.shape[1], sims.ravel()[flat]


def _ranking_key(sim: np.ndarray, index: np.ndarray, index_bits: int) -> np.ndarray:
    """int64 key increasing along a query's ranking: similarity descending, then gallery index."""
    bits = (-sim.astype(np.float32) + np.float32(0.0)).view(np.int32)  # + 0.0 maps -0.0 to 0.0
    order = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).astype(np.int64) + 2**31  # float order as [0, 2^32)
    return (order << index_bits) | index


@dataclass(frozen=True)
class _Positives:
    """Every (query, positive) pair, grouped by query and in ranking order within a query."""

    offsets: np.ndarray  # (n + 1,)
    key: np.ndarray  # (P,) _ranking_key of the positive
    sim: np.ndarray  # (P,) float32 similarity

    @classmethod
    def build(cls, left: torch.Tensor, right: torch.Tensor, codes: np.ndarray, index_bits: int) -> _Positives:
        """Within-class similarities, one batched product per distinct class size."""
        order = np.argsort(codes, kind="stable")
        _, first, sizes = np.unique(codes[order], return_index=True, return_counts=True)
        queries, positives, sims = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for size in np.unique(sizes[sizes > 1]):
            members = order[first[sizes == size][:, None] + np.arange(size)]  # (classes, size)
            idx = torch.from_numpy(members).to(left.device)
            gram = torch.bmm(left[idx], right[idx].transpose(1, 2)).cpu().numpy()
            c, a, b = np.nonzero(np.broadcast_to(~np.eye(size, dtype=bool), gram.shape))
            queries.append(members[c, a])
            positives.append(members[c, b])
            sims.append(gram[c, a, b])
        query, sim = np.concatenate(queries), np.concatenate(sims)
        key = _ranking_key(sim, np.concatenate(positives), index_bits)
        order = np.lexsort((key, query))
        num = np.bincount(query, minlength=len(codes))
        return cls(np.concatenate([[0], np.cumsum(num)]), key[order], sim[order])


class _Counts:
    """Running count, per positive slot, of the non-positives ranked above that positive."""

    def __init__(self, pos: _Positives, codes: np.ndarray, depth: int, index_bits: int) -> None:
        num = np.diff(pos.offsets)
        self.pos = pos
        self.codes = codes
        self.depth = np.maximum(depth, num)
        self.row_shift = 32 + index_bits
        self.slot_query = np.repeat(np.arange(len(codes)), num)
        self.slot_pos = np.arange(len(pos.key)) - np.repeat(pos.offsets[:-1], num)  # 0-based in query
        self.above = np.zeros(len(pos.key), np.int64)

    def add(self, query: np.ndarray, gallery: np.ndarray, sims: np.ndarray, q0: int, q1: int) -> None:
        """Count candidates (query ``q0 + query``, gallery index, similarity) against the positives."""
        # positives are left out: their order among themselves is fixed by the sort
        keep = self.codes[query + q0] != self.codes[gallery]
        cand = (query[keep] << self.row_shift) | _ranking_key(sims[keep], gallery[keep], self.row_shift - 32)
        cand.sort()
        s0, s1 = self.pos.offsets[q0], self.pos.offsets[q1]
        row_key = (self.slot_query[s0:s1] - q0) << self.row_shift
        self.above[s0:s1] += np.searchsorted(cand, row_key | self.pos.key[s0:s1]) - np.searchsorted(
            cand, row_key
        )

    def _ranks(self, s0: int, s1: int) -> np.ndarray:
        return self.slot_pos[s0:s1] + 1 + self.above[s0:s1]

    def thresholds(self, q0: int, q1: int) -> np.ndarray:
        """Similarity of each query's weakest positive still within depth (+inf if none)."""
        o = self.pos.offsets
        s0, s1 = o[q0], o[q1]
        query = self.slot_query[s0:s1]
        within = self._ranks(s0, s1) <= self.depth[query]
        alive = np.bincount(query[within] - q0, minlength=q1 - q0)
        theta = np.full(q1 - q0, np.inf, np.float32)
        has = alive > 0
        theta[has] = self.pos.sim[o[q0:q1][has] + alive[has] - 1]
        return theta

    def result(self) -> PositiveRanks:
        ranks = np.minimum(self._ranks(0, len(self.above)), self.depth[self.slot_query] + 1)
        return PositiveRanks(self.pos.offsets, ranks, self.depth)
