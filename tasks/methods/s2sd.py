"""S2SD: Simultaneous Similarity-based Self-Distillation (Roth et al., "Simultaneous Similarity-based
Self-Distillation for Deep Metric Learning", ICML 2021), as ooDML runs it (Milbich, Roth et al., NeurIPS
2021: ``criteria/s2sd.py`` and the S2SD lines of ``OOD-Study_ZeroShot.sh`` in
CompVis/Characterizing_Generalization_in_DML).

The evaluated embedding (the model's own head) trains with a margin loss (the source criterion).
Alongside it, target heads, two-layer MLPs (feature_dim -> t -> t, ReLU) for t in the target
dimensions, embed the pooled backbone features; with pool aggregation those features are the average-
plus the max-pooled last feature map. Each target embedding (L2-normalised) trains with its own margin
criterion (own class boundaries, own sampler). With S = E E^T the cosine similarities of a batch,

    KL(S_s, S_t) = sum_ij p_t(ij) (log p_t(ij) - log p_s(ij)) T^2 / B,
    p_s(i.) = softmax(S_s(i.) / T), p_t(i.) = softmax(S_t(i.) / T), S_t detached,

(``F.kl_div(log p_s, p_t, reduction="sum")``, the original's direction and reduction) and the step's loss is

    (mean_t L_t + L_s) / 2 + w mean_t KL(S_s, S_t)  [+ feat_w KL(S_s, S_f) from step ``feat_delay`` on]

where S_f is the similarity of the normalised, detached aggregated features (feature distillation; the
step counter is part of the module's ``state_dict``). The targets only teach: evaluation uses the base
embedding. The target heads are built lazily (``nn.LazyLinear``): their input width is the backbone's
feature dimension, which the build call does not see; they exist, uninitialised, in :meth:`param_groups`
from construction, and the first training step (or a loaded state dict) initialises them.

Learning rates: the original puts the target heads and every margin criterion's class boundaries (source
and targets) in the optimizer at the network lr (1e-5), without weight decay: the margin criterion has no
optimizer group of its own inside S2SD, so its boundary lr (5e-4) does not apply there. ``loss_lr``
(boundaries, the first group) and ``head_lr`` (target heads) therefore follow ``training.lr`` unless set
(``MethodSpec.follows``); their declared defaults (1e-5) are the paper's network lr.

Paper settings (``OOD-Study_ZeroShot.sh``): CUB200 rho 0.4, beta 0.6, w = feat_w = 50, pool aggregation,
feature distillation from step 0, target dims 1024/1536/2048 (the defaults); CARS196 the same with rho 0.3;
SOP beta 0.9, w = feat_w = 5, plain distance-weighted sampling (``--batch_mining distance``: ``rho`` 0
here), no pool aggregation, feature distillation from step 1000.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Method, TrainBatch
from tasks.methods.composite import PartFactory
from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.margin import MarginLoss


def similarity_kl(source: Tensor, target: Tensor, temperature: float) -> Tensor:
    """Row-wise KL(softmax(target / T) || softmax(source / T)), summed, x T^2 / B (``criteria/s2sd.py``);
    gradients reach ``source`` only if the caller detaches ``target``."""
    log_p_source = F.log_softmax(source / temperature, dim=-1)
    p_target = F.softmax(target / temperature, dim=-1)
    return F.kl_div(log_p_source, p_target, reduction="sum") * temperature**2 / source.shape[0]


def target_head(dim: int) -> nn.Sequential:
    """feature_dim -> dim -> dim with a ReLU between. Both layers are initialised on the first call
    (feature_dim is inferred then), so building the method draws no random numbers."""
    return nn.Sequential(nn.LazyLinear(dim), nn.ReLU(), nn.LazyLinear(dim))


class S2SD(Method):
    """Source margin loss on the embedding, target heads with their own margin losses, similarity
    (and feature) distillation from the targets into the source."""

    def __init__(
        self,
        source: MarginLoss,
        targets: list[tuple[int, MarginLoss]],
        *,
        temperature: float,
        weight: float,
        feat_weight: float,
        feat_distill: bool,
        feat_delay: int,
        pool_aggr: bool,
        head_lr: float,
    ) -> None:
        super().__init__(source.loss_lr)
        if not targets:
            raise ValueError("S2SD needs at least one target head")
        self.source = source
        self.target_heads = nn.ModuleList([target_head(dim) for dim, _ in targets])
        self.target_criteria = nn.ModuleList([criterion for _, criterion in targets])
        self.temperature = temperature
        self.weight = weight
        self.feat_weight = feat_weight
        self.feat_distill = feat_distill
        self.feat_delay = feat_delay
        self.pool_aggr = pool_aggr
        self.wants_max_features = pool_aggr
        self.head_lr = head_lr
        self.iteration = 0  # training steps taken: feature distillation starts at feat_delay

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The source criterion alone (the loss on the evaluated embedding)."""
        return self.source(embeddings, labels)

    def target_features(self, batch: TrainBatch) -> Tensor:
        """What the target heads see: average- plus max-pooled features with pool aggregation."""
        if not self.pool_aggr:
            return batch.features
        if batch.max_features is None:
            raise ValueError("S2SD with pool aggregation needs the batch's max-pooled features")
        return batch.features + batch.max_features

    def training_loss(self, batch: TrainBatch) -> Tensor:
        embeddings, labels = batch.embeddings, batch.labels
        source_loss = self.source(embeddings, labels)
        source_sim = embeddings @ embeddings.T
        features = self.target_features(batch)
        target_losses, kls = [], []
        for head, criterion in zip(self.target_heads, self.target_criteria, strict=True):
            target = F.normalize(head(features), dim=-1)
            target_losses.append(criterion(target, labels))
            kls.append(similarity_kl(source_sim, (target @ target.T).detach(), self.temperature))
        terms = {
            "source": source_loss,
            "target": torch.stack(target_losses).mean(),
            "distill": torch.stack(kls).mean(),
        }
        loss = (terms["target"] + terms["source"]) / 2 + self.weight * terms["distill"]
        if self.feat_distill and self.iteration >= self.feat_delay:
            unit = F.normalize(features, dim=-1).detach()
            terms["feature_distill"] = similarity_kl(source_sim, unit @ unit.T, self.temperature)
            loss = loss + self.feat_weight * terms["feature_distill"]
        self.terms = {name: term.detach() for name, term in terms.items()}
        self.iteration += 1
        return loss

    def param_groups(self) -> list[dict]:
        """The class boundaries of every criterion at ``loss_lr`` (first), the target heads at
        ``head_lr``; neither with weight decay, as in the original."""
        criteria = [self.source, *self.target_criteria]
        boundaries = [p for c in criteria for p in c.parameters() if p.requires_grad]
        heads = [p for p in self.target_heads.parameters() if p.requires_grad]
        groups = [{"params": boundaries, "lr": self.loss_lr, "weight_decay": 0.0}] if boundaries else []
        return groups + [{"params": heads, "lr": self.head_lr, "weight_decay": 0.0}]

    def get_extra_state(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])


def build(
    num_classes: int,
    embedding_dim: int,
    *,
    criterion: PartFactory,
    rho: float,
    head_lr: float,
    temperature: float,
    weight: float,
    feat_weight: float,
    feat_distill: int,
    feat_delay: int,
    pool_aggr: int,
    target_dim1: int,
    target_dim2: int,
    target_dim3: int,
) -> S2SD:
    for name, flag in (("feat_distill", feat_distill), ("pool_aggr", pool_aggr)):
        if flag not in (0, 1):
            raise ValueError(f"s2sd: {name} is a switch, 0 or 1, got {flag}")

    def fresh() -> MarginLoss:
        # one miner per criterion, as the original selects one batch miner per criterion; rho 0 is its
        # plain distance-weighted sampling (--batch_mining distance)
        return criterion(miner=None if rho > 0 else DistanceWeightedSampler())

    return S2SD(
        fresh(),
        [(dim, fresh()) for dim in (target_dim1, target_dim2, target_dim3)],
        temperature=temperature,
        weight=weight,
        feat_weight=feat_weight,
        feat_distill=bool(feat_distill),
        feat_delay=feat_delay,
        pool_aggr=bool(pool_aggr),
        head_lr=head_lr,
    )
