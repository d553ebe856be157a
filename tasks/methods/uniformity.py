"""The uniformity prior (Sinha et al., "Uniform Priors for Data-Efficient Transfer", 2020) as ooDML runs
it (Milbich, Roth et al., NeurIPS 2021: ``ood_main.py --with_entropy`` of
CompVis/Characterizing_Generalization_in_DML): the ``margin`` method (margin loss, distance-weighted
sampling) plus an adversarial prior that pushes the pooled backbone features towards a uniform
distribution.

The features (B, F) are cut into chunks of ``chunk_size`` values (``features.reshape(-1, chunk_size)``,
so a chunk may span rows when F is not a multiple of it). A discriminator (chunk -> latent -> latent ->
1, ReLU, sigmoid) learns to tell uniform samples in [-1, 1] (label 1) from detached chunks (label 0):
every ``disc_every``-th training step, before the step's loss, it takes one step of its own Adam
(lr = ``disc_lr_multiplier`` x ``network_lr``, betas (0.5, 0.999)) on the sum of both binary
cross-entropies; its learning rate follows its own step schedule (x ``disc_gamma`` at epoch
``disc_milestone``). The model is trained to fool it: the step's loss is the margin loss plus
``weight`` x BCE(D(chunks), 1).

``network_lr``: the discriminator's learning rate is relative to the network's, which a method's build
call does not see; it is a hyperparameter that follows ``training.lr`` unless set (``MethodSpec.follows``).

The discriminator is trained only by its own optimizer: its parameters are not in :meth:`param_groups`,
and the adversarial term is computed with detached copies of them, so the main backward pass leaves them
without gradients (the original zeroes those gradients before each discriminator step, which comes to
the same). Its optimizer, schedule and step counter are part of the module's ``state_dict``.

Paper settings (``OOD-Study_ZeroShot.sh``): CUB200 and CARS196 ``weight`` 0.2 (the defaults); SOP
``weight`` 0.02, ``disc_every`` 200, ``disc_latent`` 50.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from tasks.methods.base import Method, TrainBatch
from tasks.methods.composite import PartFactory


class Discriminator(nn.Module):
    """Chunk (N, in_dim) -> probability (N, 1) that it was drawn uniformly from [-1, 1]^in_dim."""

    def __init__(self, in_dim: int, latent: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, latent)
        self.fc2 = nn.Linear(latent, latent)
        self.fc3 = nn.Linear(latent, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


class UniformityPrior(Method):
    """``criterion``'s loss on the embeddings plus the adversarial uniformity prior on the features."""

    def __init__(
        self,
        criterion: Method,
        *,
        weight: float,
        disc_every: int,
        chunk_size: int,
        disc_latent: int,
        disc_lr: float,
        disc_milestone: int,
        disc_gamma: float,
    ) -> None:
        super().__init__(criterion.loss_lr)
        if disc_every < 1 or chunk_size < 1:
            raise ValueError(f"disc_every and chunk_size must be at least 1, got {disc_every}, {chunk_size}")
        self.criterion = criterion
        self.weight = weight
        self.disc_every = disc_every
        self.chunk_size = chunk_size
        self.discriminator = Discriminator(chunk_size, disc_latent)
        # Module.to() moves parameters in place (param.data), so these keep addressing them on any device.
        self.disc_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=disc_lr, betas=(0.5, 0.999)
        )
        self.disc_scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.disc_optimizer, milestones=[disc_milestone], gamma=disc_gamma
        )
        self.iteration = (
            0  # training steps taken; the discriminator steps when it is a multiple of disc_every
        )

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.criterion(embeddings, labels)

    def chunks(self, features: Tensor) -> Tensor:
        """The features as (N, chunk_size) rows, as the original views them."""
        if features.numel() % self.chunk_size:
            raise ValueError(
                f"uniformity prior: the batch's features {tuple(features.shape)} do not divide into chunks of "
                f"{self.chunk_size} values; set chunk_size to a divisor of the feature dimension"
            )
        return features.reshape(-1, self.chunk_size)

    def discriminator_step(self, chunks: Tensor) -> Tensor:
        """One Adam step of the discriminator: uniform samples are real, ``chunks`` (detached) fake."""
        chunks = chunks.detach()
        with torch.enable_grad():
            real = torch.rand(len(chunks), self.chunk_size, device=chunks.device, dtype=chunks.dtype) * 2 - 1
            pred_real = self.discriminator(real)
            pred_fake = self.discriminator(chunks)
            loss = F.binary_cross_entropy(pred_real, torch.ones_like(pred_real)) + F.binary_cross_entropy(
                pred_fake, torch.zeros_like(pred_fake)
            )
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.disc_optimizer.step()
        return loss.detach()

    def adversarial_loss(self, chunks: Tensor) -> Tensor:
        """BCE(D(chunks), 1): small when the discriminator takes the features for uniform samples. The
        gradient reaches the features only, never the discriminator."""
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        pred = functional_call(self.discriminator, frozen, (chunks,))
        return F.binary_cross_entropy(pred, torch.ones_like(pred))

    def training_loss(self, batch: TrainBatch) -> Tensor:
        chunks = self.chunks(batch.features)
        if self.iteration % self.disc_every == 0:
            self.discriminator_step(chunks)
        self.iteration += 1
        margin, prior = self.criterion(batch.embeddings, batch.labels), self.adversarial_loss(chunks)
        self.terms = {"margin": margin.detach(), "prior": prior.detach()}
        return margin + self.weight * prior

    def end_epoch(self) -> None:
        self.disc_scheduler.step()

    def param_groups(self) -> list[dict]:
        """The criterion's own parameters only: the discriminator has its own optimizer."""
        return self.criterion.param_groups()

    def get_extra_state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "disc_optimizer": self.disc_optimizer.state_dict(),
            "disc_scheduler": self.disc_scheduler.state_dict(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.disc_scheduler.load_state_dict(state["disc_scheduler"])


def build(
    num_classes: int,
    embedding_dim: int,
    *,
    criterion: PartFactory,
    weight: float,
    disc_every: int,
    disc_latent: int,
    chunk_size: int,
    disc_lr_multiplier: float,
    network_lr: float,
    disc_milestone: int,
    disc_gamma: float,
) -> UniformityPrior:
    return UniformityPrior(
        criterion(),
        weight=weight,
        disc_every=disc_every,
        chunk_size=chunk_size,
        disc_latent=disc_latent,
        disc_lr=disc_lr_multiplier * network_lr,
        disc_milestone=disc_milestone,
        disc_gamma=disc_gamma,
    )
