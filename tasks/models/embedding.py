"""The embedding network every DML method trains: backbone -> pooled features -> linear head -> L2 norm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tasks.data.transforms import Preprocess

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class EmbeddingModel(nn.Module):
    """``backbone`` (image -> pooled feature vector), then ``head`` (a separate linear layer, so
    few-shot adaptation can train it alone), then L2 normalisation.

    ``freeze_bn`` keeps the backbone's BatchNorm layers in eval mode (running statistics used, never
    updated), also after ``model.train()``: the ooDML protocol for ImageNet-pretrained ResNets.
    ``freeze_bn_affine`` also stops gradients to their scale and shift; the ooDML code leaves those
    trainable (it only calls ``eval()`` on the layers).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        embedding_dim: int,
        preprocess: Preprocess,
        *,
        freeze_bn: bool,
        freeze_bn_affine: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, embedding_dim)
        self.preprocess = preprocess
        self.freeze_bn = freeze_bn
        if freeze_bn_affine:
            for bn in self._batchnorms():
                bn.requires_grad_(False)
        self.train(self.training)

    def _batchnorms(self) -> list[nn.Module]:
        return [m for m in self.backbone.modules() if isinstance(m, _BATCHNORMS)]

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if self.freeze_bn:
            for bn in self._batchnorms():
                bn.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone features (B, feature_dim), before the head."""
        return self.backbone(x)

    def max_pooled_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(average-pooled, max-pooled) features of the backbone's last feature map, in one pass.

        The map is read at the backbone's last global average pooling layer (torchvision ResNets, the
        glyph CNN, timm models with ``nn.AdaptiveAvgPool2d``); a backbone without one is refused.
        """
        pools = [m for m in self.backbone.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        if not pools:
            raise ValueError(
                f"{type(self.backbone).__name__} has no global average pooling layer, so its max-pooled "
                "features cannot be read; choose a method setting that does not ask for them"
            )
        seen: list[Tensor] = []
        handle = pools[-1].register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
        try:
            pooled = self.backbone(x)
        finally:
            handle.remove()
        return pooled, seen[-1].amax(dim=(-2, -1))

    def forward(self, x: Tensor) -> Tensor:
        """L2-normalised embeddings (B, embedding_dim)."""
        return F.normalize(self.head(self.features(x)), dim=-1)

    @property
    def embedding_dim(self) -> int:
        return self.head.out_features

    def param_groups(self, backbone_lr: float, head_lr: float) -> list[dict]:
        """Optimizer groups: trainable backbone parameters at ``backbone_lr``, the head at ``head_lr``."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        groups = [{"params": backbone, "lr": backbone_lr}] if backbone else []
        return groups + [{"params": list(self.head.parameters()), "lr": head_lr}]


def weighting_label(weights: Sequence[float]) -> str:
    """A weighting's name as the ooDML code spells its evaluation types: ``1-1-1-1``, ``0.75-1.25-1.25-1.25``."""
    return "-".join(f"{w:g}" for w in weights)


def reweighted(outputs: Tensor, weights: Sequence[float]) -> Tensor:
    """The concatenation of the equal-width blocks of ``outputs``, each L2-normalised and multiplied by its
    weight (the model L2-normalises the whole afterwards). Renormalising each block first makes this a
    function of the embedding alone: any weighting of a :class:`BlockHead`'s output, or of its normalised
    embedding, gives the same blocks."""
    blocks = outputs.chunk(len(weights), dim=-1)
    return torch.cat([w * F.normalize(b, dim=-1) for w, b in zip(weights, blocks, strict=True)], dim=-1)


class BlockHead(nn.Module):
    """A head whose embedding is the concatenation of L2-normalised blocks (e.g. DiVA's four task
    embeddings), each scaled by its weight in ``weights`` (the embedding the trial reports); ``weightings``
    names other weightings the trial also evaluates, recorded apart. ``forward(features, weighted=False)``
    gives the unweighted concatenation (every weight 1)."""

    weights: tuple[float, ...]
    weightings: tuple[tuple[float, ...], ...] = ()

    def blocks(self, features: Tensor) -> Tensor:
        """The unweighted concatenation of the L2-normalised blocks."""
        raise NotImplementedError

    def forward(self, features: Tensor, weighted: bool = True) -> Tensor:
        outputs = self.blocks(features)
        if not weighted or all(w == 1 for w in self.weights):
            return outputs
        return reweighted(outputs, self.weights)

    @property
    def weighting(self) -> str:
        """The name of the reported weighting (``weighting_label``)."""
        return weighting_label(self.weights)
