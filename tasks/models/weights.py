"""Pretrained backbone weights, fetched through the libraries' own caches (README.md, One trial).

ImageNet checkpoints of torchvision models live where ``torch.hub`` caches them
(``torch.hub.get_dir()/checkpoints/<file name of the URL>``) and are downloaded there by torch hub's own
``download_url_to_file`` (checked against the hash prefix in the file name); timm weights live in the
Hugging Face hub cache and are downloaded there by ``huggingface_hub``. Offline (``OODML_OFFLINE=1`` or
``HF_HUB_OFFLINE=1``) or when the connection fails, the cached file is used, and an absent one is named
with where to put it. Files load with ``torch.load(..., weights_only=True)`` (or safetensors), so a
checkpoint cannot run code.

The sources (``HubCheckpoint``, ``HuggingFaceWeights``) are declared without importing torch or the hub
client (a backbone's declaration names its source, ``oodml list backbones`` shows it); they import them
when they locate, fetch or load a file.
"""

from __future__ import annotations

import http.client
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

OFFLINE_SETTINGS = ("OODML_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


def network_errors() -> tuple[type[Exception], ...]:
    """A refused or dropped connection, an unknown host, a timeout, an HTTP error status."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return (OSError, http.client.HTTPException, HfHubHTTPError, LocalEntryNotFoundError)


class PretrainedWeightsError(FileNotFoundError):
    """Pretrained weights were asked for but are not on this machine and could not be downloaded."""


def offline() -> bool:
    """True when a setting forbids downloads (``OODML_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_SETTINGS)


def _offline_setting() -> str:
    return next(n for n in OFFLINE_SETTINGS if os.environ.get(n, "").strip().lower() in _TRUE)


@dataclass(frozen=True)
class HubCheckpoint:
    """A checkpoint that ``torch.hub`` downloads from ``url`` into its cache."""

    url: str

    @property
    def path(self) -> Path:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.url.rsplit("/", 1)[-1]

    def locate(self) -> Path | None:
        return self.path if self.path.is_file() else None

    def download(self) -> Path:
        """Fetch into the torch hub cache, as ``torch.hub.load_state_dict_from_url`` does; raises one of
        ``network_errors()`` when the server cannot be reached."""
        import torch

        match = torch.hub.HASH_REGEX.search(self.path.name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(self.url, str(self.path), match.group(1) if match else None)
        except RuntimeError as err:  # torch hub's hash check
            raise PretrainedWeightsError(f"{self.url} was downloaded but is damaged: {err}") from None
        return self.path

    def how_to_get(self) -> str:
        return (
            f"expected {self.path.name} at {self.path}. Download {self.url} and put it there "
            f"(e.g. curl -L --create-dirs -o {self.path} {self.url}; set TORCH_HOME to move the torch hub cache)"
        )


@dataclass(frozen=True)
class HuggingFaceWeights:
    """Weights published in Hugging Face hub repository ``repo_id`` (timm's layout)."""

    repo_id: str
    filenames: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")

    def locate(self) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        for filename in self.filenames:
            found = try_to_load_from_cache(self.repo_id, filename)
            if isinstance(found, str):
                return Path(found)
        return None

    def download(self) -> Path:
        """The first of ``filenames`` the repository has, fetched into the Hugging Face cache."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        for filename in self.filenames:
            try:
                return Path(
                    hf_hub_download(
                        self.repo_id, filename, library_name="timm", endpoint=os.environ.get("HF_ENDPOINT")
                    )
                )
            except EntryNotFoundError as err:  # the repository has no such file: try the next name
                if isinstance(err, LocalEntryNotFoundError):  # no connection (a subclass in hub 1.x)
                    raise
        raise PretrainedWeightsError(
            f"https://huggingface.co/{self.repo_id} has none of {', '.join(self.filenames)}"
        )

    def how_to_get(self) -> str:
        from huggingface_hub import constants

        return (
            f"expected {self.filenames[0]} of https://huggingface.co/{self.repo_id} in the Hugging Face "
            f"cache {constants.HF_HUB_CACHE}. Fetch it on a machine with internet access "
            f"(hf download {self.repo_id} {self.filenames[0]}) and copy the cache over"
        )


WeightsSource = HubCheckpoint | HuggingFaceWeights


def fetch(source: WeightsSource) -> tuple[Path | None, str]:
    """The local file of ``source`` (cached, else downloaded unless offline) and, when there is none,
    why it was not downloaded."""
    path = source.locate()
    if path is not None:
        return path, ""
    if offline():
        return None, f"not downloaded because {_offline_setting()} is set (unset it to download)"
    try:
        return source.download(), ""
    except network_errors() as err:
        return None, (
            f"the download failed ({type(err).__name__}: {err}); "
            f"set OODML_OFFLINE=1 to use local files without trying"
        )


def locate(backbone: str, source: WeightsSource) -> Path:
    """The local file holding ``backbone``'s pretrained weights (downloaded into the library's cache when
    the network allows), or an error saying how to get it."""
    path, why = fetch(source)
    if path is None:
        raise PretrainedWeightsError(
            f"pretrained weights for backbone {backbone!r} not found: {source.how_to_get()}; "
            f"or pass pretrained=<path to the file>, or pretrained=False ({why})"
        )
    return path


def load_backbone_weights(module: nn.Module, path: Path, drop_prefixes: tuple[str, ...] = ()) -> None:
    """Load the state dict at ``path`` into ``module`` strictly, minus keys under ``drop_prefixes``
    (the pretrained classifier, which a backbone does not have)."""
    import torch
    from safetensors.torch import load_file

    if path.suffix == ".safetensors":
        state: dict[str, torch.Tensor] = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match the backbone: {err}") from err
