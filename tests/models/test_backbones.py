"""Backbones and the embedding model: shapes, frozen BatchNorm, separate head, pretrained weights."""

import pytest
import torch
import torchvision

from tasks.data.transforms import GLYPH, IMAGENET
from tasks.models import BACKBONES, PretrainedWeightsError, backbone_spec, build_model


def _images(model, size=None, batch=2):
    pre = model.preprocess
    return torch.randn(batch, pre.channels, size or pre.size, size or pre.size)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_builds_from_defaults(name):
    spec = BACKBONES[name]
    model = build_model(name, pretrained=False).eval()
    x = _images(model, size=32)  # ResNets pool adaptively; a small input keeps the test fast
    with torch.no_grad():
        assert model.features(x).shape == (2, spec.feature_dim)
        z = model(x)
    assert z.shape == (2, spec.embedding_dim)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    assert model.head.in_features == spec.feature_dim and model.preprocess == spec.preprocess


def test_declared_contracts():
    assert (BACKBONES["resnet50"].feature_dim, BACKBONES["resnet50"].embedding_dim) == (2048, 512)
    assert BACKBONES["resnet50"].preprocess == IMAGENET and BACKBONES["resnet18"].feature_dim == 512
    assert BACKBONES["glyph_cnn"].preprocess == GLYPH and BACKBONES["glyph_cnn"].embedding_dim == 64


def test_batchnorm_stays_frozen_after_train():
    model = build_model("resnet18", pretrained=False, embedding_dim=16).train()
    bn = model.backbone.bn1
    before = bn.running_mean.clone(), bn.running_var.clone()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert not bn.training and model.head.training
    torch.testing.assert_close((bn.running_mean, bn.running_var), before)
    assert bn.weight.requires_grad and bn.weight.grad is not None  # ooDML trains the affine part


def test_batchnorm_affine_can_be_frozen_too():
    model = build_model("resnet18", pretrained=False, freeze_bn_affine=True).train()
    assert not model.backbone.bn1.training
    assert not any(p.requires_grad for p in model.backbone.bn1.parameters())
    assert model.backbone.conv1.weight.requires_grad
    assert all(p.requires_grad for g in model.param_groups(1e-5, 1e-5) for p in g["params"])


def test_glyph_cnn_trains_its_batchnorm():
    model = build_model("glyph_cnn").train()
    bn = model.backbone[1]
    before = bn.running_mean.clone()
    model(torch.randn(8, 1, 32, 32))
    assert bn.training and not torch.equal(bn.running_mean, before)


def test_head_is_separate():
    model = build_model("glyph_cnn", embedding_dim=32)
    head_ids = {id(p) for p in model.head.parameters()}
    assert model.head.weight.shape == (32, 128) and not head_ids & {
        id(p) for p in model.backbone.parameters()
    }
    groups = model.param_groups(backbone_lr=1e-3, head_lr=1e-2)
    assert [g["lr"] for g in groups] == [1e-3, 1e-2] and {id(p) for p in groups[1]["params"]} == head_ids


def test_absent_weights_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsError) as err:
        build_model("resnet50")
    message = str(err.value)
    assert "resnet50-0676ba61.pth" in message and "https://download.pytorch.org/models/" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "pretrained=" in message


def test_weights_from_hub_cache_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = torchvision.models.resnet18(weights=None).state_dict()  # with its ImageNet classifier
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    for pretrained in (None, str(path)):
        model = build_model("resnet18", pretrained=pretrained)
        assert all(torch.equal(v, state[k]) for k, v in model.backbone.state_dict().items())


def test_path_with_wrong_weights(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="does not match"):
        build_model("glyph_cnn", pretrained=path)
    with pytest.raises(FileNotFoundError):
        build_model("glyph_cnn", pretrained=tmp_path / "missing.pth")


def test_glyph_cnn_has_no_published_weights(tmp_path):
    assert all(p.requires_grad for p in build_model("glyph_cnn").parameters())
    with pytest.raises(ValueError, match="no published pretrained weights"):
        build_model("glyph_cnn", pretrained=True)
    path = tmp_path / "glyph.pth"
    trained = build_model("glyph_cnn")
    torch.save(trained.backbone.state_dict(), path)
    loaded = build_model("glyph_cnn", pretrained=path).backbone.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in trained.backbone.state_dict().items())


def test_timm_backbone(tmp_path, monkeypatch):
    import huggingface_hub
    from safetensors.torch import save_file
    from timm import create_model

    spec = backbone_spec("timm:test_vit")
    assert spec is backbone_spec("test_vit") and spec.preprocess.size == 160 and spec.classifier == ("head.",)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="timm/test_vit.r160_in1k"):
        build_model("timm:test_vit")
    # lay the file out as the Hugging Face cache does
    repo = tmp_path / "models--timm--test_vit.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    state = create_model("test_vit", num_classes=1000).state_dict()
    save_file(state, repo / "snapshots" / "abc123" / "model.safetensors")
    model = build_model("timm:test_vit", embedding_dim=8).eval()
    assert model(_images(model)).shape == (2, 8)
    assert all(torch.equal(v, state[k]) for k, v in model.backbone.state_dict().items())


def test_unknown_backbone_suggests():
    with pytest.raises(ValueError, match="did you mean 'resnet50'"):
        build_model("resnet5O")
