"""What a miner and a mined loss are: a miner picks, without gradient, the index tuples of a batch a loss
is computed on (``mine(embeddings, labels)``; calling it mines); a :class:`MinedLoss` is a loss over the
tuples its miner picks. Wu et al. (ICCV 2017) call their miner a sampler; ooDML calls every one a batch
miner, and so does this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from torch import Tensor

from tasks.methods.base import Method

# (anchors, positives, negatives) index tensors
Triplets = tuple[Tensor, Tensor, Tensor]
# (anchors of positive pairs, positives, anchors of negative pairs, negatives) index tensors
Pairs = tuple[Tensor, Tensor, Tensor, Tensor]
Mined = TypeVar("Mined", Triplets, Pairs)


class Miner(Generic[Mined]):
    """Picks the tuples of a batch a loss is computed on, without gradient."""

    def mine(self, embeddings: Tensor, labels: Tensor) -> Mined:
        raise NotImplementedError

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Mined:
        return self.mine(embeddings, labels)


class MinedLoss(Method, Generic[Mined]):
    """A loss over the tuples ``miner(embeddings, labels)`` returns (a :class:`Miner`, or any function of
    the same shape); :meth:`compute_loss` is the loss over given tuples."""

    def __init__(self, miner: Callable[[Tensor, Tensor], Mined], loss_lr: float = 0.0) -> None:
        super().__init__(loss_lr)
        self.miner = miner

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.compute_loss(embeddings, labels, self.miner(embeddings, labels))

    def compute_loss(self, embeddings: Tensor, labels: Tensor, mined: Mined) -> Tensor:
        raise NotImplementedError
