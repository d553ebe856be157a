"""What every DML method is: a loss module over a batch of embeddings (:class:`Method`), and the batch it
sees; its declaration's types (torch-free) live in tasks/methods/declaration.py and are re-exported here."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

# the declaration's types, torch-free, live in tasks.methods.declaration; re-exported here
from tasks.methods.declaration import BUILD_ARGUMENTS as BUILD_ARGUMENTS
from tasks.methods.declaration import Hyperparameter as Hyperparameter
from tasks.methods.declaration import MethodSpec as MethodSpec
from tasks.methods.declaration import Part as Part
from tasks.registry import RegistryError


@dataclass
class TrainBatch:
    """What one training step shows a method.

    ``features``: pooled backbone features (B, F), the head's input; ``outputs``: the head's raw output
    (B, D); ``embeddings``: the L2-normalised embedding the model is evaluated on (B, D); ``labels``:
    int64 train-class indices. ``max_features`` (globally max-pooled last feature map) and
    ``second_view`` (a second augmentation of the same images, (B, C, H, W)) are filled only for a
    method that asks for them (:attr:`Method.wants_max_features`, :attr:`Method.wants_second_view`).
    """

    features: Tensor
    outputs: Tensor
    embeddings: Tensor
    labels: Tensor
    max_features: Tensor | None = None
    second_view: Tensor | None = None


class Method(nn.Module):
    """A DML method: ``forward(embeddings, labels)`` returns the scalar training loss.

    ``embeddings`` are L2-normalised (B, D) rows; ``labels`` are int64 train-class indices
    0..num_classes-1. Methods with their own parameters (proxies, class margins, auxiliary heads) train
    them at ``loss_lr``; :meth:`param_groups` gives the optimizer group for them.

    A plain loss implements :meth:`forward` only. A method that trains more than a loss on the
    embedding (auxiliary heads, a prior on the backbone features, a momentum encoder) overrides the
    hooks below; the training loop calls every hook for every method, so all methods share one
    interface. State a hook keeps (an auxiliary optimizer, a memory queue) belongs in the module's
    ``state_dict`` (buffers, or ``get_extra_state``), so checkpoints resume it.
    """

    wants_max_features: bool = False
    wants_second_view: bool = False
    trains: bool = True  # False: the model is evaluated as built, never trained (``frozen``)

    @property
    def is_plain_loss(self) -> bool:
        """Whether the method is its :meth:`forward` alone: no hook, head or input of its own, so a loop
        that only calls it on embeddings (few-shot adaptation) trains all of it."""
        cls = type(self)
        hooks = ("training_loss", "start", "resume", "after_step", "end_epoch", "embedding_head")
        return (
            self.trains
            and not (self.wants_max_features or self.wants_second_view)
            and all(getattr(cls, hook) is getattr(Method, hook) for hook in hooks)
        )

    def __init__(self, loss_lr: float = 0.0) -> None:
        super().__init__()
        self.loss_lr = loss_lr
        # the named terms of the last :meth:`training_loss` of a loss made of several (detached, each
        # before its weight): training logs their epoch means as ``train/loss/<name>``; empty for one loss
        self.terms: dict[str, Tensor] = {}

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def embedding_head(self, feature_dim: int, embedding_dim: int) -> nn.Module | None:
        """The head (pooled features -> the evaluated embedding, before L2 normalisation) this method
        trains instead of the default linear layer; ``None`` keeps the linear layer. A head module
        has ``in_features`` and ``out_features`` attributes, like ``nn.Linear``."""
        return None

    def start(self, model: nn.Module, batches: Callable[[], Iterator[TrainBatch]]) -> None:
        """Called once before the first epoch of a fresh (not resumed) training, with the model on its
        device and a function that yields training batches under ``no_grad`` (e.g. to fill a queue)."""

    def resume(self, model: nn.Module) -> None:
        """Called once when a training resumes from a checkpoint, after the model's and this method's
        states are loaded (e.g. to rebuild a momentum encoder around the model)."""

    def training_loss(self, batch: TrainBatch) -> Tensor:
        """The step's loss; by default :meth:`forward` on the embeddings."""
        return self(batch.embeddings, batch.labels)

    def after_step(self, model: nn.Module) -> None:
        """Called after each optimizer step (e.g. a momentum encoder's update)."""

    def end_epoch(self) -> None:
        """Called after each epoch (e.g. an auxiliary optimizer's schedule)."""

    def param_groups(self) -> list[dict]:
        """The optimizer group for the method's own parameters (none if it has none), at ``loss_lr``
        and without weight decay, as in the ooDML code."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.loss_lr, "weight_decay": 0.0}] if params else []


class LibraryLoss(Method):
    """A loss a library computes: ``loss(embeddings, labels)``, the module a subclass sets (a
    pytorch-metric-learning loss)."""

    loss: nn.Module

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels)


class VariantBuilder:
    """A builder that builds the class its variant names (``VariantBuilder(original=ArcFace,
    pml=PMLArcFace)``), each taking ``(num_classes, embedding_dim, **hyperparameters)``: its signature is
    theirs, plus ``variant``, the first named by default."""

    def __init__(self, **classes: type[Method]) -> None:
        signatures = {str(inspect.signature(cls)) for cls in classes.values()}
        if len(signatures) != 1:
            raise RegistryError(
                f"VariantBuilder: the classes {classes} take different arguments: {signatures}"
            )
        self.classes = classes
        first = inspect.signature(next(iter(classes.values())))
        variant = inspect.Parameter("variant", inspect.Parameter.KEYWORD_ONLY, default=next(iter(classes)))
        self.__signature__ = first.replace(parameters=[*first.parameters.values(), variant])
        self.__name__ = "build"

    def __call__(
        self, num_classes: int, embedding_dim: int, *, variant: str, **hyperparameters: Any
    ) -> Method:
        return self.classes[variant](num_classes, embedding_dim, **hyperparameters)
