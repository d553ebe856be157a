"""DiVA: Diverse Visual Feature Aggregation (Milbich et al., "DiVA: Diverse Visual Feature Aggregation for
Deep Metric Learning", ECCV 2020), as the ooDML code runs it (``ood_diva_main.py``, docs/protocol.md section 10).

Four embeddings of ``embedding_dim / 4`` dimensions each (4 x 128 = 512 in the paper's configs), each a
linear map of the pooled backbone feature, L2-normalised:

- ``discriminative``: margin loss with distance-weighted sampling on the class labels;
- ``shared`` and ``intra``: margin loss with the miner ``ood_diva_main.py`` selects for both,
  ``random_distance`` (:class:`RandomLabelDistanceSampler`: the batch's labels randomly permuted, then
  one random positive and one distance-weighted negative per anchor under the permuted labels). The
  DiVA paper's own miners (shared: negatives of two other classes; intra: triplets within a class) are
  in the repository but not what the ooDML runs used;
- ``selfsimilarity``: "fast MoCo" (:func:`fast_moco_loss`): the query is this embedding of the image,
  the positive key the same embedding of a second augmentation computed by a momentum (EMA) copy of the
  whole network, the negatives a memory queue of earlier keys whose logits are scaled by a
  distance weighting; temperature 0.01, momentum 0.9, queue of ``n_key_batches`` batches of keys.

They are decorrelated by adversarial separation (:class:`AdversarialSeparation`) for the pairs
selfsimilarity -> discriminative, shared -> discriminative and intra -> discriminative: a small MLP per
pair (128 -> 512 -> 128, trained at the backbone's learning rate) projects the source embedding onto the
target, trained to maximise their squared elementwise correlation, and the reversed gradient makes the
embeddings minimise it. The training loss is

    discriminative + alpha_ssl * selfsimilarity + alpha_shared * shared + alpha_intra * intra
      - sum_pairs rho_pair * mean((target * normalize(mlp_pair(source)))^2)

and the evaluated embedding is the ooDML code's ``Combined_discriminative_shared_selfsimilarity_intra-
w-(2-w)-(2-w)-(2-w)``: the four normalised embeddings concatenated, the discriminative one scaled by
``w = discriminative_weight`` and the other three by ``2 - w``, then L2-normalised. The original evaluates
three weightings (:data:`WEIGHTINGS`: w = 1, 0.75, 0.5) and its few-shot script selects and reports the
epoch on one per dataset (CUB200 0.75, CARS196 0.5, SOP 1), which the paper configs set; a trial reports
``discriminative_weight``'s and records all three apart (``Measurement.weighting``). The weighting is of
the embedding only: every loss reads the renormalised blocks, so training is the same under any.

Paper settings per dataset (``OOD-Study_ZeroShot.sh``; the defaults are CUB200's but for the weighting,
1-1-1-1 by default): see :data:`PAPER_SETTINGS`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.methods.base import Method, TrainBatch
from tasks.methods.composite import PartFactory
from tasks.methods.distances import floored_sphere_log_weights, pairwise_distances
from tasks.methods.miners import Miner, Triplets
from tasks.models.embedding import BlockHead

# The order of the original's ``diva_features``, which is the order of the evaluated concatenation.
TASKS = ("discriminative", "shared", "selfsimilarity", "intra")
# The original's evaluation types (``opt.evaltypes`` of ``ood_diva_main.py``): weights in TASKS order.
WEIGHTINGS = ((1.0, 1.0, 1.0, 1.0), (0.75, 1.25, 1.25, 1.25), (0.5, 1.5, 1.5, 1.5))
# (source, target) pairs the original decorrelates (its ``diva_decorrelations``).
DECORRELATIONS = (
    ("selfsimilarity", "discriminative"),
    ("shared", "discriminative"),
    ("intra", "discriminative"),
)

# Distance cut-offs of the samplers and of the fast-MoCo weighting (``miner_distance_*``,
# ``diva_moco_*_cutoff``): distances are clipped below at 0.5; MoCo drops negatives beyond 1.4.
LOWER_CUTOFF = 0.5
MOCO_UPPER_CUTOFF = 1.4

# Per-dataset settings of the ooDML DiVA runs (OOD-Study_ZeroShot.sh; n_key_batches from ood_diva_main.py;
# the reported weighting from fewshot_diva_ood_main.py, which selects and reports on it).
PAPER_SETTINGS: dict[str, dict[str, float | int]] = {
    "cub200": {"alpha_ssl": 0.3, "alpha_shared": 0.3, "alpha_intra": 0.3, "rho_ssl": 1500.0}
    | {"rho_shared": 1500.0, "rho_intra": 1500.0, "n_key_batches": 30, "discriminative_weight": 0.75},
    "cars196": {"alpha_ssl": 0.15, "alpha_shared": 0.15, "alpha_intra": 0.15, "rho_ssl": 100.0}
    | {"rho_shared": 100.0, "rho_intra": 100.0, "n_key_batches": 30, "discriminative_weight": 0.5},
    "sop": {"alpha_ssl": 0.2, "alpha_shared": 0.2, "alpha_intra": 0.2, "rho_ssl": 150.0}
    | {"rho_shared": 150.0, "rho_intra": 150.0, "n_key_batches": 70, "discriminative_weight": 1.0},
}


class RandomLabelDistanceSampler(Miner[Triplets]):
    """The ooDML ``random_distance`` miner, DiVA's shared and intra-class miner in ``ood_diva_main.py``.

    The batch's labels are randomly permuted (pseudo-classes of the same sizes, mostly mixing images of
    different classes); every image whose pseudo-class has another member is an anchor, with one
    uniformly drawn positive of its pseudo-class and one negative outside it drawn with probability
    ∝ q(d)^-1 (:func:`~tasks.methods.distances.floored_sphere_log_weights`, distances clipped below at
    ``lower_cutoff``, no upper cut-off).
    """

    def __init__(self, lower_cutoff: float = LOWER_CUTOFF) -> None:
        self.lower_cutoff = lower_cutoff

    @torch.no_grad()
    def mine(self, embeddings: Tensor, labels: Tensor) -> Triplets:
        """Index tensors (anchors, positives, negatives) under a fresh random permutation of ``labels``."""
        permutation = torch.randperm(len(labels), device=labels.device)
        return self.sample(embeddings, labels[permutation])

    @torch.no_grad()
    def sample(self, embeddings: Tensor, pseudo_labels: Tensor) -> Triplets:
        """Index tensors (anchors, positives, negatives) under the given pseudo-labels."""
        embeddings = embeddings.detach().float()
        same = pseudo_labels[:, None] == pseudo_labels[None, :]
        others = same & ~torch.eye(len(same), dtype=torch.bool, device=same.device)
        anchors = (others.any(1) & ~same.all(1)).nonzero().squeeze(1)
        if not len(anchors):
            return anchors, anchors, anchors
        positives = torch.multinomial(others[anchors].float(), 1).squeeze(1)
        d = pairwise_distances(embeddings).clamp_min(self.lower_cutoff)
        log_w = floored_sphere_log_weights(d, embeddings.shape[1]).masked_fill(same, float("-inf"))
        negatives = torch.multinomial(torch.softmax(log_w[anchors], dim=1), 1).squeeze(1)
        return anchors, positives, negatives


def fast_moco_weights(
    queries: Tensor,
    queue: Tensor,
    lower_cutoff: float = LOWER_CUTOFF,
    upper_cutoff: float = MOCO_UPPER_CUTOFF,
) -> Tensor:
    """The fast-MoCo distance weighting (B, N) of the negative logits, as ``criteria/fast_moco.py``:
    q(d)^-1 of the query-to-queue distances (clipped below at ``lower_cutoff``), scaled by the maximum
    over the whole matrix, zero beyond ``upper_cutoff``, floored at 1e-45, then normalised to sum 1 over
    the queries of each queue entry (dim 0)."""
    with torch.no_grad():
        queries, queue = queries.detach().float(), queue.float()
        # the original's squared norms are cosine self-similarities, 1 for unit rows
        d_sq = 2.0 - 2.0 * queries @ queue.T
        d = d_sq.clamp_min(0).sqrt().clamp_min(lower_cutoff)
        log_w = floored_sphere_log_weights(d, queries.shape[1])
        w = torch.exp(log_w - log_w.max())
        w = w.masked_fill(d > upper_cutoff, 0.0).clamp_min(1e-45)
        return w / w.sum(0, keepdim=True)


def fast_moco_loss(queries: Tensor, keys: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """DiVA's self-similarity loss (``criteria/fast_moco.py``): cross-entropy picking the positive key
    among ``[q.k, (q.queue_j) * w_j]`` at ``temperature``, ``w`` from :func:`fast_moco_weights`; rows are
    L2-normalised, ``keys`` and ``queue`` carry no gradient."""
    positive = (queries * keys.detach()).sum(1, keepdim=True)
    if len(queue):
        negatives = queries @ queue.detach().T * fast_moco_weights(queries, queue)
    else:  # no queue yet (a loop that never called start): the positive alone
        negatives = queries.new_zeros(len(queries), 0)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(queries), dtype=torch.long, device=queries.device))


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return -grad


def reverse_gradient(x: Tensor) -> Tensor:
    """Identity forward, negated gradient backward (Ganin & Lempitsky, ICML 2015)."""
    return _ReverseGradient.apply(x)


class AdversarialSeparation(nn.Module):
    """DiVA's decorrelation (``criteria/adversarial_separation.py``): for each (source, target) pair with
    weight rho, ``-rho * mean((t * normalize(mlp(s)))^2)`` over batch and dimensions, ``s`` and ``t`` the
    L2-normalised embeddings behind a gradient reversal: the MLPs (dim -> hidden -> dim, ReLU) learn to
    predict the target from the source, the embeddings learn to defeat them."""

    def __init__(self, dim: int, hidden_dim: int, weights: dict[tuple[str, str], float]) -> None:
        super().__init__()
        self.weights = dict(weights)
        self.regressors = nn.ModuleDict(
            {
                f"{source}-{target}": nn.Sequential(
                    nn.Linear(dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, dim)
                )
                for source, target in self.weights
            }
        )

    def forward(self, embeddings: dict[str, Tensor]) -> Tensor:
        reversed_ = {k: F.normalize(reverse_gradient(v), dim=-1) for k, v in embeddings.items()}
        total = embeddings[next(iter(embeddings))].new_zeros(())
        for (source, target), rho in self.weights.items():
            projected = F.normalize(self.regressors[f"{source}-{target}"](reversed_[source]), dim=-1)
            total = total - rho * (reversed_[target] * projected).pow(2).mean()
        return total


def task_weights(discriminative_weight: float) -> tuple[float, ...]:
    """The weights in :data:`TASKS` order of the original's evaluation type for ``discriminative_weight``
    w: (w, 2 - w, 2 - w, 2 - w), so that w = 1, 0.75, 0.5 give its three :data:`WEIGHTINGS`."""
    rest = 2.0 - discriminative_weight
    return (float(discriminative_weight), rest, rest, rest)


class DivaHead(BlockHead):
    """Pooled features -> the four DiVA embeddings, each L2-normalised, concatenated in :data:`TASKS`
    order and weighted by ``weights`` (B, 4 * task_dim); the original's three :data:`WEIGHTINGS` are
    evaluated too.

    The model L2-normalises this output for evaluation, which gives exactly the original's evaluated
    embedding (weighted blocks concatenated, then normalised).
    """

    weightings = WEIGHTINGS

    def __init__(self, in_features: int, task_dim: int, weights: tuple[float, ...] = WEIGHTINGS[0]) -> None:
        super().__init__()
        self.in_features, self.task_dim = in_features, task_dim
        self.out_features = task_dim * len(TASKS)
        self.weights = tuple(weights)
        self.branches = nn.ModuleDict({task: nn.Linear(in_features, task_dim) for task in TASKS})

    def blocks(self, features: Tensor) -> Tensor:
        return torch.cat([F.normalize(branch(features), dim=-1) for branch in self.branches.values()], dim=-1)


def split_embeddings(outputs: Tensor) -> dict[str, Tensor]:
    """The four task embeddings (each L2-normalised) of a :class:`DivaHead` output, or of its
    normalised concatenation (renormalising each block undoes the overall normalisation)."""
    return {
        task: F.normalize(block, dim=-1)
        for task, block in zip(TASKS, outputs.chunk(len(TASKS), dim=-1), strict=True)
    }


class Diva(Method):
    """DiVA as ooDML trains it; see the module docstring. ``criterion`` builds its three margin losses
    (the registered ``margin`` method, its part), the shared and intra ones with random-label miners.

    The momentum encoder (``key_encoder``, a frozen copy of the whole embedding model made in
    :meth:`start`) and the memory queue (``queue``, a buffer) are part of the ``state_dict``. The
    main optimizer never sees the momentum encoder: :meth:`param_groups` holds the three margin losses'
    class margins (at ``loss_lr``) and the separation MLPs (at ``decorrnet_lr``), as the original.

    On resuming from a checkpoint the training loop does not call :meth:`start`, and no hook hands the
    method the model before the first step; the saved momentum encoder is restored at the first
    :meth:`after_step`, so the first resumed step trains without the self-similarity term.
    """

    wants_second_view = True

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        alpha_ssl: float,
        alpha_shared: float,
        alpha_intra: float,
        rho_ssl: float,
        rho_shared: float,
        rho_intra: float,
        decorrnet_dim: int,
        decorrnet_lr: float,
        temperature: float,
        momentum: float,
        n_key_batches: int,
        discriminative_weight: float,
        criterion: PartFactory,
    ) -> None:
        # the three margin criteria: distance-weighted sampling on the labels, random-label for the others
        discriminative = criterion()
        super().__init__(discriminative.loss_lr)
        if not 0 < discriminative_weight < 2:
            raise ValueError(
                f"diva: discriminative_weight must lie in (0, 2) (the other blocks weigh 2 - w), got "
                f"{discriminative_weight}"
            )
        self.weights = task_weights(discriminative_weight)
        if embedding_dim % len(TASKS):
            raise ValueError(
                f"diva: embedding_dim {embedding_dim} must be divisible by {len(TASKS)}: it is the concatenation "
                f"of the {len(TASKS)} task embeddings (512 = 4 x 128 in the paper)"
            )
        if n_key_batches < 1:
            raise ValueError(f"diva: n_key_batches must be at least 1, got {n_key_batches}")
        self.embedding_dim, self.task_dim = embedding_dim, embedding_dim // len(TASKS)
        self.alphas = {"selfsimilarity": alpha_ssl, "shared": alpha_shared, "intra": alpha_intra}
        self.decorrnet_lr = decorrnet_lr
        self.temperature, self.momentum, self.n_key_batches = temperature, momentum, n_key_batches
        self.discriminative = discriminative
        self.shared = criterion(miner=RandomLabelDistanceSampler())
        self.intra = criterion(miner=RandomLabelDistanceSampler())
        rhos = dict(zip(DECORRELATIONS, (rho_ssl, rho_shared, rho_intra), strict=True))
        self.separation = AdversarialSeparation(self.task_dim, decorrnet_dim, rhos)
        self.register_module("key_encoder", None)
        self.register_buffer("queue", torch.zeros(0, self.task_dim))
        self._saved_key_encoder: dict[str, Tensor] | None = None
        self._new_keys: Tensor | None = None

    def embedding_head(self, feature_dim: int, embedding_dim: int) -> DivaHead:
        if embedding_dim != self.embedding_dim:
            raise ValueError(
                f"diva was built for embedding_dim {self.embedding_dim}, the model has {embedding_dim}"
            )
        return DivaHead(feature_dim, self.task_dim, self.weights)

    def param_groups(self) -> list[dict]:
        groups = [g for loss in (self.discriminative, self.shared, self.intra) for g in loss.param_groups()]
        separation = [p for p in self.separation.parameters() if p.requires_grad]
        return groups + [{"params": separation, "lr": self.decorrnet_lr, "weight_decay": 0.0}]

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The label-supervised part of DiVA on a (normalised) concatenated embedding: discriminative +
        alpha_shared * shared + alpha_intra * intra. Training uses :meth:`training_loss`, which adds the
        self-similarity term (it needs the momentum encoder and a second view) and the separation (a
        min-max game, not a loss to lower)."""
        parts = self._label_parts(split_embeddings(embeddings), labels)
        return parts["discriminative"] + sum(self.alphas[k] * parts[k] for k in ("shared", "intra"))

    def _label_parts(self, embeddings: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
        return {
            task: getattr(self, task)(embeddings[task], labels)
            for task in ("discriminative", "shared", "intra")
        }

    def loss_parts(self, batch: TrainBatch) -> dict[str, Tensor]:
        """Each term of the training loss, unweighted; ``selfsimilarity`` only once a momentum encoder
        exists and the batch has a second view. Keeps the step's keys for the queue update."""
        embeddings = split_embeddings(batch.outputs)
        parts = self._label_parts(embeddings, batch.labels)
        if self.key_encoder is not None and batch.second_view is not None:
            keys = self.keys(batch.second_view)
            parts["selfsimilarity"] = fast_moco_loss(
                embeddings["selfsimilarity"], keys, self.queue, self.temperature
            )
            self._new_keys = keys
        parts["separation"] = self.separation(embeddings)
        return parts

    def combine(self, parts: dict[str, Tensor]) -> Tensor:
        """The weighted sum of :meth:`loss_parts`."""
        weighted = sum(self.alphas[k] * parts[k] for k in ("selfsimilarity", "shared", "intra") if k in parts)
        return parts["discriminative"] + weighted + parts["separation"]

    def training_loss(self, batch: TrainBatch) -> Tensor:
        parts = self.loss_parts(batch)
        self.terms = {name: part.detach() for name, part in parts.items()}
        return self.combine(parts)

    @torch.no_grad()
    def keys(self, images: Tensor) -> Tensor:
        """The momentum encoder's self-similarity embeddings of ``images`` (L2-normalised), in eval mode
        as the original's copy runs (the ResNet protocol freezes BatchNorm, so this equals train mode)."""
        encoder = self.key_encoder.eval()
        return split_embeddings(encoder.head(encoder.features(images)).float())["selfsimilarity"]

    def start(self, model: nn.Module, batches: Callable[[], Iterator[TrainBatch]]) -> None:
        """Copy the model as the momentum encoder and fill the queue with its keys of ``n_key_batches``
        training batches (passing over the training data again if one pass has fewer)."""
        self._make_key_encoder(model)
        keys: list[Tensor] = []
        while len(keys) < self.n_key_batches:
            before = len(keys)
            for batch in batches():
                if batch.second_view is None:
                    raise ValueError("diva needs a second view of each training image (wants_second_view)")
                keys.append(self.keys(batch.second_view))
                if len(keys) == self.n_key_batches:
                    break
            if len(keys) == before:
                raise ValueError("diva: no training batches to fill the memory queue with")
        self.queue = torch.cat(keys).to(self.queue.device)

    def resume(self, model: nn.Module) -> None:
        """Rebuild the momentum encoder around the resumed model, with its saved weights, so the first
        resumed step has its self-similarity term."""
        if self.key_encoder is None:
            self._make_key_encoder(model)

    def after_step(self, model: nn.Module) -> None:
        """Momentum update of the key encoder's parameters, ``m * key + (1 - m) * model`` (its buffers,
        BatchNorm statistics frozen under the ResNet protocol, are copied), then the queue drops its
        oldest keys and appends this step's."""
        if self.key_encoder is None:
            self._make_key_encoder(model)
        with torch.no_grad():
            key_params = list(self.key_encoder.parameters())
            params = [p.detach() for p in model.parameters()]
            if len(key_params) != len(params):
                raise ValueError("diva: the model no longer matches its momentum encoder")
            torch._foreach_mul_(key_params, self.momentum)
            torch._foreach_add_(key_params, params, alpha=1.0 - self.momentum)
            for key_buffer, buffer in zip(self.key_encoder.buffers(), model.buffers(), strict=True):
                key_buffer.copy_(buffer)
        if self._new_keys is not None:
            self.queue = torch.cat([self.queue[len(self._new_keys) :], self._new_keys])
            self._new_keys = None

    def _make_key_encoder(self, model: nn.Module) -> None:
        self.key_encoder = copy.deepcopy(model).requires_grad_(False).eval()
        if self._saved_key_encoder is not None:
            self.key_encoder.load_state_dict(self._saved_key_encoder)
            self._saved_key_encoder = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # The queue's length is set by start (batch size x n_key_batches); the momentum encoder is made
        # from the model, which a resumed training only hands over at the first after_step.
        queue = state_dict.get(prefix + "queue")
        if queue is not None:
            self.queue = torch.empty_like(queue, device=self.queue.device)
        if self.key_encoder is None:
            inner = prefix + "key_encoder."
            saved = {k[len(inner) :]: v for k, v in state_dict.items() if k.startswith(inner)}
            self._saved_key_encoder = saved or None
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # a loaded encoder not yet rebuilt (no step since resuming) is still part of the state
        for name, value in (self._saved_key_encoder or {}).items():
            destination[f"{prefix}key_encoder.{name}"] = value
