"""Pretrained weights download through torch hub's and Hugging Face's own caches (README.md, One trial),
from an HTTP server on 127.0.0.1; offline or without a connection the cache is used, and an absent file is
named with where to put it and the setting."""

from __future__ import annotations

import hashlib
import io
import socket
from functools import cache

import huggingface_hub
import pytest
import torch
import torchvision
from safetensors.torch import save as save_safetensors

from tasks.models.weights import (
    HubCheckpoint,
    HuggingFaceWeights,
    PretrainedWeightsError,
    load_backbone_weights,
    locate,
)
from tests.fileserver import serve


@pytest.fixture
def online(monkeypatch, tmp_path):
    """Downloads allowed (the suite sets OODML_OFFLINE=1), torch hub and Hugging Face caches under tmp_path."""
    monkeypatch.delenv("OODML_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))


@cache
def _resnet18_checkpoint() -> tuple[dict, bytes, str]:
    """A resnet18 state dict, its bytes, and the file name torch hub checks them against."""
    state = torchvision.models.resnet18(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return state, data, f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"


def test_hub_checkpoint_downloads_into_the_torch_hub_cache_once(online, tmp_path, monkeypatch):
    state, data, name = _resnet18_checkpoint()
    with serve({name: data}) as server:
        source = HubCheckpoint(f"{server.url}/{name}")
        path = locate("resnet18", source)
        assert path == tmp_path / "torch" / "hub" / "checkpoints" / name and path.read_bytes() == data
        assert locate("resnet18", source) == path and len(server.requests) == 1  # from the cache
    backbone = torchvision.models.resnet18(weights=None)
    load_backbone_weights(backbone, path)
    assert all(torch.equal(v, state[k]) for k, v in backbone.state_dict().items())
    monkeypatch.setenv("OODML_OFFLINE", "1")  # offline, the cached file still serves
    assert locate("resnet18", source) == path


def test_a_damaged_download_is_refused(online):
    _, data, name = _resnet18_checkpoint()
    with (
        serve({name: data[:-10] + b"x" * 10}) as server,
        pytest.raises(PretrainedWeightsError, match="damaged"),
    ):
        locate("resnet18", HubCheckpoint(f"{server.url}/{name}"))


@pytest.mark.parametrize("setting", ["OODML_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_without_the_file_says_which_file_where_and_the_setting(
    online, tmp_path, monkeypatch, setting
):
    monkeypatch.setenv(setting, "1")
    _, data, name = _resnet18_checkpoint()
    with serve({name: data}) as server:
        with pytest.raises(PretrainedWeightsError) as err:
            locate("resnet18", HubCheckpoint(f"{server.url}/{name}"))
        assert server.requests == []  # offline means no request at all
    message = str(err.value)
    assert name in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert f"not downloaded because {setting} is set" in message and "pretrained=" in message


def test_a_failed_connection_falls_back_to_the_message(online, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PretrainedWeightsError) as err:
        locate("resnet18", HubCheckpoint(f"http://127.0.0.1:{port}/resnet18-f37072fd.pth"))
    message = str(err.value)
    assert "the download failed" in message and "OODML_OFFLINE=1" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message


def test_hugging_face_weights_download_into_its_cache(online, tmp_path, monkeypatch):
    """timm's weights: ``huggingface_hub`` fetches ``model.safetensors`` of the model's hub repository."""
    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    data = save_safetensors(state)
    repo = "timm/tiny_test.r1_in1k"
    headers = {"X-Repo-Commit": "c" * 40, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
    with serve({f"{repo}/resolve/main/model.safetensors": data}, headers=headers) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        path = locate("timm:tiny_test", HuggingFaceWeights(repo))
    assert path.read_bytes() == data and str(path).startswith(str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert locate("timm:tiny_test", HuggingFaceWeights(repo)).read_bytes() == data
    with pytest.raises(PretrainedWeightsError, match="timm/other.*HF_HUB_OFFLINE is set"):
        locate("timm:other", HuggingFaceWeights("timm/other"))
