"""Pretrained backbone weights: found in local caches or at a given path, never downloaded.

ImageNet checkpoints of torchvision models live where ``torch.hub`` caches them
(``torch.hub.get_dir()/checkpoints/<file name of the URL>``); timm weights in the Hugging Face hub cache.
Files load with ``torch.load(..., weights_only=True)`` (or safetensors), so a checkpoint cannot run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import constants, try_to_load_from_cache
from safetensors.torch import load_file
from torch import Tensor, nn


class PretrainedWeightsError(FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine."""


@dataclass(frozen=True)
class HubCheckpoint:
    """A checkpoint that ``torch.hub`` would download from ``url`` into its cache."""

    url: str

    @property
    def path(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / self.url.rsplit("/", 1)[-1]

    def locate(self) -> Path | None:
        return self.path if self.path.is_file() else None

    def how_to_get(self) -> str:
        return (
            f"expected {self.path.name} at {self.path}. Download {self.url} and put it there "
            f"(e.g. curl -L --create-dirs -o {self.path} {self.url})"
        )


@dataclass(frozen=True)
class HuggingFaceWeights:
    """Weights published in Hugging Face hub repository ``repo_id`` (timm's layout)."""

    repo_id: str
    filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")

    def locate(self) -> Path | None:
        for filename in self.filenames:
            found = try_to_load_from_cache(self.repo_id, filename)
            if isinstance(found, str):
                return Path(found)
        return None

    def how_to_get(self) -> str:
        return (
            f"expected {self.filenames[0]} of https://huggingface.co/{self.repo_id} in the Hugging Face "
            f"cache {constants.HF_HUB_CACHE}. Fetch it on a machine with internet access "
            f"(hf download {self.repo_id} {self.filenames[0]}) and copy the cache over"
        )


WeightsSource = HubCheckpoint | HuggingFaceWeights


def locate(backbone: str, source: WeightsSource) -> Path:
    """The local file holding ``backbone``'s pretrained weights, or an error saying how to get it."""
    path = source.locate()
    if path is None:
        raise PretrainedWeightsError(
            f"pretrained weights for backbone {backbone!r} not found: {source.how_to_get()}; "
            "or pass pretrained=<path to the file>, or pretrained=False"
        )
    return path


def load_backbone_weights(module: nn.Module, path: Path, drop_prefixes: tuple[str, ...] = ()) -> None:
    """Load the state dict at ``path`` into ``module`` strictly, minus keys under ``drop_prefixes``
    (the pretrained classifier, which a backbone does not have)."""
    if path.suffix == ".safetensors":
        state: dict[str, Tensor] = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match the backbone: {err}") from err
