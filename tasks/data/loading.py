"""DataLoader settings that keep an accelerator fed, and per-epoch seeding of persistent workers.

On CUDA the loaders of a trial pin their batches (so ``.to(device, non_blocking=True)`` overlaps the copy
with compute), and with ``num_workers > 0`` prefetch ``PREFETCH_FACTOR`` batches per worker; the training
loader keeps its workers across epochs (``persistent_workers``), so no epoch waits for worker start-up
(forking, re-importing, the first decodes). On CPU nothing changes: pinning is for host-to-device copies
and workers are started as before. ``benchmarks/bench_data_loading.py`` prints images/s per worker, to size
``data.num_workers``.

Persistent workers are seeded once by the DataLoader, so their augmentation would no longer follow the
per-epoch seed the training loop sets (what makes a resumed trial draw the same crops as an uninterrupted
one). ``EpochSeeded`` restores that: the loop writes each epoch's seed to shared memory before iterating,
and a worker that sees a new value reseeds ``torch``, ``random`` and ``numpy`` with it plus its worker id.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

PREFETCH_FACTOR = 4  # batches in flight per worker (DataLoader's default is 2)
_UNSEEDED = -1


def loader_options(device: torch.device, num_workers: int, *, persistent: bool = False) -> dict:
    """Keyword arguments for a ``DataLoader`` feeding ``device`` with ``num_workers`` workers.

    ``persistent``: keep the workers between iterations (a loader iterated once per epoch); it applies on
    CUDA with workers only, so CPU loaders behave as they always did.
    """
    options: dict = {"num_workers": num_workers}
    if device.type != "cuda":
        return options
    options["pin_memory"] = True
    if num_workers > 0:
        options["prefetch_factor"] = PREFETCH_FACTOR
        options["persistent_workers"] = persistent
    return options


class EpochSeeded(Dataset):
    """``dataset`` whose items are drawn, in a DataLoader worker, after seeding from ``set_seed``'s value.

    In the main process (``num_workers=0``) it only passes items through: the loop's own
    ``torch.manual_seed`` already seeds the augmentation there.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._seed = torch.full((1,), _UNSEEDED, dtype=torch.int64).share_memory_()
        self._seen = _UNSEEDED

    def set_seed(self, seed: int) -> None:
        """Seed of the next iteration's workers (call before ``iter(loader)``); non-negative."""
        self._seed[0] = int(seed) % (2**63)

    def __len__(self) -> int:
        return len(self.dataset)

    def _reseed(self) -> None:
        seed = int(self._seed[0])
        if seed == self._seen:
            return
        self._seen = seed
        worker = get_worker_info()
        if worker is None or seed == _UNSEEDED:
            return
        seed = (seed + worker.id) % (2**63)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % (2**32))

    def __getitem__(self, k: int):
        self._reseed()
        return self.dataset[k]

    def __getitems__(self, ks: Sequence[int]) -> list:
        self._reseed()
        many = getattr(self.dataset, "__getitems__", None)
        return many(ks) if many else [self.dataset[k] for k in ks]
