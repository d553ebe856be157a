"""Exact ranks of every query's same-class gallery items, without an N x N matrix, on any torch device.

Query = every image, gallery = the other images (the query is excluded by index). The retrieval
metrics only need where each *positive* (other image of the query's class) lands in the query's
ranking, so instead of top-k lists we count, for each positive, the non-positives ranked above it:

- The similarity matrix is symmetric (the query set is the gallery), so it is computed once per block
  pair (I, J >= I) and serves the rows of I and of J: half the products of a plain search (on the
  CPU a diagonal block's products are only computed above its diagonal, in strips).
- A non-positive can only push a positive down if it is at least as similar as that positive, so each
  query keeps a threshold, the similarity of its weakest positive still within ``depth``; only block
  entries at or above the threshold are looked at further (a comparison and a flat ``nonzero``).
- The candidates of a block are sorted by (query, similarity desc, index) and each positive's count
  grows by the number of candidates sorting before it (one ``searchsorted``).
- A positive whose rank already exceeds the depth is dropped from counting and the threshold rises
  to the next positive, which bounds the work for a poor embedding.

Everything runs on the device of the embeddings (CUDA in a trial with a GPU): the block products,
the comparisons and the bookkeeping. On the CPU the block products are numpy's (OpenBLAS, in strips
spread over a pool of threads) and the comparison and flat ``nonzero`` of a block go through numpy
views of the same memory (comparisons 3-4x faster than torch's CPU kernels here); every other step
is the same torch code on every device.

Ordering: similarity descending ("ip": inner product; "l2": minus squared Euclidean distance, by the
expansion ``2 x.y - |x|^2 - |y|^2`` as in faiss); ties are broken by gallery index, lower first, i.e.
the order of a stable sort. Every ordered pair gets exactly one float32 similarity.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from tasks.progress import tracked
from tasks.threads import torch_threads

METRICS = ("ip", "l2")
CPU_BLOCK = 4096  # rows of a block product on the CPU (64 MB of similarities; 2048 and 4096 measured alike)
CPU_STRIP = 2048  # rows of one single-threaded OpenBLAS call (CPU s: +0.9% vs one call, 1024 +2.9%)
CPU_DIAGONAL_STRIP = 512  # and on a diagonal block (+7%, but 56% of its products instead of 62.5%)
CPU_BUFFERS = 3  # block products in memory: one read by the caller, two being computed
CUDA_BLOCK = 8192  # and on a GPU: 256 MB, few enough blocks that per-block launches do not count


@dataclass(frozen=True)
class PositiveRanks:
    """Ranks of each query's positives, grouped by query (CSR layout), as int64 tensors on one device.

    Query ``i`` owns slots ``offsets[i]:offsets[i + 1]`` (``R_i`` = its class size minus one).
    ``ranks`` holds 1-based ranks in the query's ranking of the gallery, increasing within a query;
    a rank is exact up to ``depth[i]`` and any rank beyond it reads ``depth[i] + 1``.
    """

    offsets: torch.Tensor
    ranks: torch.Tensor
    depth: torch.Tensor

    @property
    def num_positives(self) -> torch.Tensor:
        """``R_i`` for every query."""
        return torch.diff(self.offsets)


def positive_ranks(
    embeddings: torch.Tensor,
    codes: np.ndarray | torch.Tensor,
    depth: int,
    *,
    metric: str = "ip",
    block: int | None = None,
    progress: bool = False,
) -> PositiveRanks:
    """Exact ranks of each query's positives up to ``max(depth, R_i)``, on ``embeddings.device``.

    ``embeddings`` (n x d float32, finite) may live on any torch device that has float64 (CPU, CUDA).
    ``codes`` are integer class codes (n,). ``block`` defaults to 4096 rows on the CPU and 8192 on a
    GPU. Memory: a few ``block`` x ``block`` products (three on the CPU) and a few numbers per (query,
    positive) pair, i.e. O(sum of squared class sizes). ``progress``: show the block pairs as they are
    ranked (``tasks.progress``).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    device = embeddings.device
    codes = torch.as_tensor(codes, dtype=torch.int64).to(device)
    n = len(codes)
    index_bits = max(1, (n - 1).bit_length())
    if block is None:
        block = CPU_BLOCK if device.type == "cpu" else CUDA_BLOCK
    # a candidate's key packs its row in the block, its similarity (32 bits) and index in an int64
    block = min(block, 1 << (31 - index_bits))
    numpy_kernels = _numpy_kernels(device)
    with _full_fp32(), one_thread_on_cpu(device):
        left, right = _operands(embeddings, metric)
        counts = _Counts(_Positives.build(left, right, codes, index_bits), codes, depth, index_bits)
        if counts.num_slots == 0:  # no query has a positive: nothing to rank
            return counts.result()
        theta = counts.thresholds(0, n)
        scratch = np.empty(block * block, bool) if numpy_kernels else None
        side = -(-n // block)
        blocks = _blocks(left, right, block, numpy_kernels)
        for i0, j0, sims in tracked(
            blocks, side * (side + 1) // 2, "ranking", unit="block", quiet=not progress
        ):
            i1, j1 = i0 + sims.shape[0], j0 + sims.shape[1]
            # rows serve the queries of I, columns those of J (on a diagonal block: the pairs above it)
            query, gallery, vals = _above(sims, theta[i0:i1, None], scratch)
            counts.add(query, gallery + j0, vals, i0, i1)
            theta[i0:i1] = counts.thresholds(i0, i1)
            gallery, query, vals = _above(sims, theta[None, j0:j1], scratch)
            counts.add(query, gallery + i0, vals, j0, j1)
            theta[j0:j1] = counts.thresholds(j0, j1)
    return counts.result()


@contextmanager
def one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    """torch's CPU ops on one thread (on another device: unchanged) while the block products run in
    numpy's own threads: the bookkeeping's small ops gain nothing from OpenMP threads that compete with
    the products (measured on a busy 2-core box: 10-20x slower with two threads)."""
    with torch_threads(1) if device.type == "cpu" else nullcontext():
        yield


@contextmanager
def _full_fp32() -> Iterator[None]:
    """Products in full float32 on CUDA (no TF32), so that every device ranks by the same values."""
    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32 = saved


def _operands(x: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrices whose products give the similarity: ``x x^T`` or ``-|x_i - x_j|^2`` via [x, |x|^2, 1]."""
    if metric == "ip":
        return x, x
    sq = (x * x).sum(1, keepdim=True)
    ones = torch.ones_like(sq)
    return torch.cat([x, sq, ones], 1), torch.cat([2 * x, -ones, -sq], 1)


def _numpy_kernels(device: torch.device) -> bool:
    """Whether the block products and comparisons go through numpy (the CPU); the tests switch this off
    to run the GPU's code path on the CPU."""
    return device.type == "cpu"


def _blocks(
    left: torch.Tensor, right: torch.Tensor, block: int, numpy_kernels: bool
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(i0, j0, left[I] @ right[J]^T)`` for the block pairs J >= I, as float32 tensors; a diagonal
    block (I = J) holds -inf on and below its diagonal, each pair of I once.

    On a GPU torch's product, queued like every other kernel. On the CPU numpy's (OpenBLAS), computed
    ahead by a pool of as many threads as OpenBLAS would use, each running single-threaded OpenBLAS on
    strips of rows (bit for bit the rows of the whole product; a diagonal block's strip only from its
    diagonal on) while the caller works on an earlier block: the strips go to whichever thread is free,
    so the caller's bookkeeping (torch, one thread) slows the products by its own CPU time shared over
    the cores, not by stalling OpenBLAS's fixed split of one product between its threads until the one
    sharing a core catches up.
    """
    starts = range(0, len(left), block)
    pairs = [(i0, j0) for i0 in starts for j0 in starts if j0 >= i0]
    if not numpy_kernels:
        side = min(block, len(left))
        lower = torch.ones(side, side, dtype=torch.bool, device=left.device).tril()
        for i0, j0 in pairs:
            sims = left[i0 : i0 + block] @ right[j0 : j0 + block].T
            if i0 == j0:
                sims.masked_fill_(lower[: len(sims), : len(sims)], -torch.inf)
            yield i0, j0, sims
        return
    a, b = left.numpy(), right.numpy()
    # output buffers taken in turn (a fresh 64 MB array per product would cost page faults): while the
    # caller reads one, the products of the next blocks fill the others
    buffers = [np.empty(min(block, len(a)) ** 2, np.float32) for _ in range(CPU_BUFFERS)]
    blas = ThreadpoolController().select(user_api="blas")
    workers = max([lib.num_threads for lib in blas.lib_controllers], default=1)

    def submit(pool: ThreadPoolExecutor, k: int) -> tuple[np.ndarray, list[Future]]:
        i0, j0 = pairs[k]
        rows, cols = a[i0 : i0 + block], b[j0 : j0 + block]
        out = buffers[k % CPU_BUFFERS][: len(rows) * len(cols)].reshape(len(rows), len(cols))
        futures = []
        height = CPU_DIAGONAL_STRIP if i0 == j0 else CPU_STRIP
        for r in range(0, len(rows), height):
            strip = slice(r, r + height)
            if i0 == j0:
                futures.append(pool.submit(_upper_strip, rows[strip], cols, out[strip], r))
            else:
                futures.append(pool.submit(np.matmul, rows[strip], cols.T, out=out[strip]))
        return out, futures

    with blas.limit(limits=1), ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [submit(pool, k) for k in range(min(CPU_BUFFERS - 1, len(pairs)))]
        for k, (i0, j0) in enumerate(pairs):
            out, futures = pending.pop(0)
            for future in futures:
                future.result()
            if k + CPU_BUFFERS - 1 < len(pairs):  # into the buffer the caller is done with
                pending.append(submit(pool, k + CPU_BUFFERS - 1))
            yield i0, j0, torch.from_numpy(out)


def _upper_strip(rows: np.ndarray, cols: np.ndarray, out: np.ndarray, first: int) -> None:
    """Rows ``first:first + len(rows)`` of a diagonal block: the products right of the diagonal, -inf
    on and left of it (the product of the columns from ``first`` on equals the whole one's, bit for bit)."""
    h = len(rows)
    np.matmul(rows, cols[first:].T, out=out[:, first:])
    out[:, :first] = -np.inf
    np.putmask(out[:, first : first + h], np.tri(h, dtype=bool), -np.inf)


def _above(
    sims: torch.Tensor, threshold: torch.Tensor, scratch: np.ndarray | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, column, value) of the block entries ``>= threshold`` (broadcast), in row-major order."""
    width = sims.shape[1]
    if scratch is not None:  # CPU: numpy views of the same memory, faster than torch's CPU kernels here
        s = sims.numpy()
        mask = np.greater_equal(s, threshold.numpy(), out=scratch[: s.size].reshape(s.shape))
        flat = np.flatnonzero(mask)
        rows = flat // width  # numpy divides by a scalar quickly, unlike divmod
        return (
            torch.from_numpy(rows),
            torch.from_numpy(flat - rows * width),
            torch.from_numpy(s.ravel()[flat]),
        )
    flat = torch.nonzero((sims >= threshold).view(-1)).squeeze(1)
    rows = flat // width
    return rows, flat - rows * width, sims.view(-1)[flat]


def _ranking_key(sim: torch.Tensor, index: torch.Tensor, index_bits: int) -> torch.Tensor:
    """int64 key increasing along a query's ranking: similarity descending, then gallery index."""
    bits = (-sim.to(torch.float32) + 0.0).view(torch.int32)  # + 0.0 maps -0.0 to 0.0
    order = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64) + 2**31  # float order as [0, 2^32)
    return (order << index_bits) | index


@dataclass(frozen=True)
class _Positives:
    """Every (query, positive) pair, grouped by query and in ranking order within a query."""

    offsets: torch.Tensor  # (n + 1,)
    key: torch.Tensor  # (P,) _ranking_key of the positive
    sim: torch.Tensor  # (P,) float32 similarity

    @classmethod
    def build(
        cls, left: torch.Tensor, right: torch.Tensor, codes: torch.Tensor, index_bits: int
    ) -> _Positives:
        """Within-class similarities, one batched product per distinct class size."""
        device = codes.device
        order = torch.argsort(codes, stable=True)
        _, sizes = torch.unique_consecutive(codes[order], return_counts=True)
        first = torch.cumsum(sizes, 0) - sizes
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        queries, positives, sims = [empty], [empty], [torch.zeros(0, device=device)]
        for size in torch.unique(sizes[sizes > 1]).tolist():
            members = order[
                first[sizes == size][:, None] + torch.arange(size, device=device)
            ]  # (classes, size)
            gram = torch.bmm(left[members], right[members].transpose(1, 2))
            a, b = torch.nonzero(~torch.eye(size, dtype=torch.bool, device=device), as_tuple=True)
            queries.append(members[:, a].reshape(-1))
            positives.append(members[:, b].reshape(-1))
            sims.append(gram[:, a, b].reshape(-1))
        query, sim = torch.cat(queries), torch.cat(sims)
        key = _ranking_key(sim, torch.cat(positives), index_bits)
        by_key = torch.argsort(key, stable=True)
        order = by_key[torch.argsort(query[by_key], stable=True)]  # by query, then key
        num = torch.bincount(query, minlength=len(codes))
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), torch.cumsum(num, 0)])
        return cls(offsets, key[order], sim[order])


class _Counts:
    """Running count, per positive slot, of the non-positives ranked above that positive."""

    def __init__(self, pos: _Positives, codes: torch.Tensor, depth: int, index_bits: int) -> None:
        offsets = pos.offsets
        num = torch.diff(offsets)
        self.pos = pos
        self.codes = codes
        self.bounds = offsets.cpu().numpy()  # slot ranges of query blocks, without a device sync each
        self.num_slots = len(pos.key)
        self.depth = torch.clamp(num, min=depth)
        self.index_bits = index_bits
        self.row_shift = 32 + index_bits
        self.slot_query = torch.repeat_interleave(torch.arange(len(codes), device=codes.device), num)
        self.slot_first = offsets[self.slot_query]  # first slot of the slot's query
        self.slot_pos = (
            torch.arange(self.num_slots, device=codes.device) - self.slot_first
        )  # 0-based in query
        self.above = torch.zeros(self.num_slots, dtype=torch.int64, device=codes.device)

    def add(self, query: torch.Tensor, gallery: torch.Tensor, sims: torch.Tensor, q0: int, q1: int) -> None:
        """Count candidates (query ``q0 + query``, gallery index, similarity) against the positives."""
        s0, s1 = int(self.bounds[q0]), int(self.bounds[q1])
        if s0 == s1 or len(query) == 0:
            return
        # positives are left out: their order among themselves is fixed by the key
        keep = self.codes.index_select(0, query + q0) != self.codes.index_select(0, gallery)
        cand = (query << self.row_shift) | _ranking_key(sims, gallery, self.index_bits)
        cand = torch.sort(cand.masked_select(keep)).values
        # the candidates of a query sort before each of its positives that they outrank
        row_key = (self.slot_query[s0:s1] - q0) << self.row_shift
        first = torch.searchsorted(cand, row_key)
        self.above[s0:s1] += torch.searchsorted(cand, row_key | self.pos.key[s0:s1]) - first

    def _ranks(self, s0: int, s1: int) -> torch.Tensor:
        return self.slot_pos[s0:s1] + 1 + self.above[s0:s1]

    def thresholds(self, q0: int, q1: int) -> torch.Tensor:
        """Similarity of each query's weakest positive still within depth (+inf if none)."""
        s0, s1 = int(self.bounds[q0]), int(self.bounds[q1])
        theta = torch.full((q1 - q0,), torch.inf, device=self.codes.device)
        if s0 == s1:
            return theta
        query = self.slot_query[s0:s1]
        within = (self._ranks(s0, s1) <= self.depth[query]).to(torch.int64)
        alive = torch.zeros(q1 - q0, dtype=torch.int64, device=theta.device).index_add_(0, query - q0, within)
        # ranks increase along a query's positives, so the ones within depth come first
        last = (self.pos.offsets[q0:q1] + alive - 1).clamp(min=0)
        return torch.where(alive > 0, self.pos.sim[last], theta)

    def result(self) -> PositiveRanks:
        ranks = torch.minimum(self._ranks(0, self.num_slots), self.depth[self.slot_query] + 1)
        return PositiveRanks(self.pos.offsets, ranks, self.depth)
