"""The uniformity prior against its definition (ooDML ``ood_main.py --with_entropy``), on tiny inputs."""

import copy
import io
import math
from pathlib import Path

import pytest
import torch

from tasks.methods import METHODS, TrainBatch, build_method
from tasks.methods.uniformity import Discriminator, UniformityPrior

CLASSES, PER_CLASS, FEATURES, CHUNK, EMBED = 4, 2, 8, 4, 6
LABELS = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
# fixed (anchor, positive, negative) triplets, so that the margin term is deterministic
TRIPLETS = (torch.tensor([0, 2, 4, 6]), torch.tensor([1, 3, 5, 7]), torch.tensor([2, 4, 6, 0]))


def _method(**overrides) -> UniformityPrior:
    options = {"chunk_size": CHUNK, "disc_latent": 5, "network_lr": 1e-2} | overrides
    method = build_method("uniformity", num_classes=CLASSES, embedding_dim=EMBED, **options)
    method.criterion.sampler = lambda embeddings, labels: TRIPLETS
    return method


def _batch(seed: int = 0, features: torch.Tensor | None = None) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    if features is None:
        features = torch.rand(len(LABELS), FEATURES, generator=g)
    embeddings = torch.nn.functional.normalize(torch.randn(len(LABELS), EMBED, generator=g), dim=1)
    return TrainBatch(features=features, outputs=embeddings, embeddings=embeddings, labels=LABELS)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_defaults_are_the_papers():
    spec = METHODS["uniformity"]
    assert spec.defaults() == {
        "beta": 1.2,
        "margin": 0.2,
        "nu": 0.0,
        "loss_lr": 5e-4,
        "weight": 0.2,
        "disc_every": 10,
        "disc_latent": 100,
        "chunk_size": 128,
        "disc_lr_multiplier": 1.0,
        "network_lr": 1e-5,
        "disc_milestone": 10000,
        "disc_gamma": 0.1,
    }
    method = build_method("uniformity", num_classes=3, embedding_dim=8)
    d = method.discriminator
    assert [(m.in_features, m.out_features) for m in (d.fc1, d.fc2, d.fc3)] == [
        (128, 100),
        (100, 100),
        (100, 1),
    ]
    (group,) = method.disc_optimizer.param_groups
    assert group["lr"] == 1e-5 and group["betas"] == (0.5, 0.999)
    assert method.disc_scheduler.milestones == {10000: 1} and method.disc_scheduler.gamma == 0.1


def test_discriminator_is_relu_mlp_with_sigmoid():
    d = Discriminator(3, 4)
    x = torch.randn(5, 3)
    h = torch.relu(x @ d.fc1.weight.T + d.fc1.bias)
    h = torch.relu(h @ d.fc2.weight.T + d.fc2.bias)
    expected = 1 / (1 + torch.exp(-(h @ d.fc3.weight.T + d.fc3.bias)))
    torch.testing.assert_close(d(x), expected)


def test_discriminator_steps_every_disc_every_steps_on_its_own_parameters_only():
    method = _method()
    model = torch.nn.Linear(3, FEATURES)  # the features' source: the discriminator step must not touch it
    inputs = torch.randn(len(LABELS), 3)
    model_before, beta_before = _params(model), method.criterion.beta.detach().clone()
    stepped = []
    for step in range(25):
        before = _params(method.discriminator)
        method.training_loss(_batch(step, features=model(inputs)))
        stepped.append(not _same(before, _params(method.discriminator)))
    assert [s for s, changed in enumerate(stepped) if changed] == [0, 10, 20]
    assert method.iteration == 25
    state = method.disc_optimizer.state[method.discriminator.fc1.weight]
    assert int(state["step"]) == 3
    assert _same(model_before, _params(model)) and all(p.grad is None for p in model.parameters())
    assert torch.equal(method.criterion.beta, beta_before) and method.criterion.beta.grad is None


def test_discriminator_step_is_one_adam_step_on_uniform_real_and_feature_fake():
    method = _method(disc_lr_multiplier=3.0, network_lr=1e-3)
    reference = copy.deepcopy(method.discriminator)
    features = torch.rand(len(LABELS), FEATURES)
    torch.manual_seed(7)
    method.training_loss(_batch(features=features))

    # slow reference: the same uniform draw, BCE written out per chunk, Adam(3 x 1e-3, betas (0.5, 0.999))
    torch.manual_seed(7)
    chunks = features.reshape(-1, CHUNK)
    real = torch.rand(len(chunks), CHUNK) * 2 - 1
    loss = sum(-torch.log(reference(r[None])[0, 0]) for r in real) / len(real)
    loss = loss + sum(-torch.log(1 - reference(c[None])[0, 0]) for c in chunks) / len(chunks)
    optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3, betas=(0.5, 0.999))
    loss.backward()
    optimizer.step()
    for ours, theirs in zip(method.discriminator.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_loss_is_margin_plus_weighted_adversarial_term_whose_gradient_reaches_features_only():
    method = _method(weight=0.3)
    method.iteration = 1  # no discriminator step this time
    base = _batch(3)
    features = base.features.clone().requires_grad_()
    embeddings = base.embeddings.clone().requires_grad_()
    loss = method.training_loss(TrainBatch(features, embeddings, embeddings, LABELS))

    # slow reference: margin on the fixed triplets + 0.3 x mean over chunks of -log D(chunk)
    ref_features = base.features.clone().requires_grad_()
    chunks = [ref_features.reshape(-1)[i : i + CHUNK] for i in range(0, ref_features.numel(), CHUNK)]
    adversarial = sum(-torch.log(method.discriminator(c[None])[0, 0]) for c in chunks) / len(chunks)
    margin = method.criterion(base.embeddings, LABELS)
    torch.testing.assert_close(loss, margin + 0.3 * adversarial)

    method.discriminator.zero_grad(set_to_none=True)
    loss.backward()
    (expected,) = torch.autograd.grad(0.3 * adversarial, ref_features)
    torch.testing.assert_close(features.grad, expected)
    assert features.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.discriminator.parameters())


def test_param_groups_hold_the_margin_boundaries_not_the_discriminator():
    method = _method()
    (group,) = method.param_groups()
    assert group["params"] == [method.criterion.beta] and group["lr"] == 5e-4 and group["weight_decay"] == 0
    assert method(_batch().embeddings, LABELS).shape == ()  # forward: the margin loss alone


def test_discriminator_schedule_steps_per_epoch():
    method = _method(disc_milestone=2, disc_gamma=0.1)
    method.training_loss(_batch())
    lr = method.disc_optimizer.param_groups[0]["lr"]
    method.end_epoch()
    assert method.disc_optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    method.end_epoch()
    assert method.disc_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * lr)


def test_checkpoint_round_trip_resumes_the_discriminator_training():
    torch.manual_seed(0)
    method = _method(disc_milestone=1)
    for step in range(12):
        method.training_loss(_batch(step))
    method.end_epoch()
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = _method(disc_milestone=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))

    assert restored.iteration == 12
    assert restored.disc_scheduler.last_epoch == 1
    assert restored.disc_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    ours, theirs = method.disc_optimizer.state_dict(), restored.disc_optimizer.state_dict()
    assert ours["state"].keys() == theirs["state"].keys()
    for key, state in ours["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(theirs["state"][key][name]))
    # both continue identically, through the next discriminator step (iteration 20)
    for model in (method, restored):
        torch.manual_seed(1)
        for step in range(12, 22):
            model.training_loss(_batch(step))
    assert _same(_params(method.discriminator), _params(restored.discriminator))


def test_discriminator_optimizer_follows_the_module_across_dtype_and_device_moves():
    method = _method().double()
    before = _params(method.discriminator)
    method.training_loss(_batch(features=torch.rand(len(LABELS), FEATURES, dtype=torch.float64)))
    assert method.discriminator.fc1.weight.dtype == torch.float64
    assert not _same(before, _params(method.discriminator))


def test_features_must_divide_into_chunks():
    with pytest.raises(ValueError, match="chunks of 3 values"):
        _method(chunk_size=3).training_loss(_batch())  # 8 x 8 features


def _glyph_training(tiny: dict, workdir: Path, name: str, hyperparameters: dict, epochs: int):
    """``name`` trained by the real loop (hooks, checkpoints) on a small glyph benchmark."""
    from tasks.config import TrialConfig
    from tasks.data import build_dataset
    from tasks.splits.files import Split
    from tasks.train import train_model

    faces = ("DejaVuSans", "DejaVuSerif", "DejaVuSansMono", "DejaVuSans-Bold")
    images = build_dataset("glyphs", tiny["root"], num_classes=40, faces=faces, jitters=2, max_chars=200)
    train, test = list(images.default_train), list(images.default_test)
    split = Split(
        id=0, key="0", fid=0.0, train=train, test=test, split_train=train[:-4], split_val=train[-4:]
    )
    config = TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split": "0", "split_file": "unused.json"},
            "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
            "method": {"name": name, "hyperparameters": hyperparameters},
            "training": {
                "epochs": epochs,
                "batch_size": 32,
                "samples_per_class": 4,
                "iterations_per_epoch": 12,
                "lr": 2e-3,
                "with_nmi": False,
                "device": "cpu",
            },
        }
    )
    return train_model(config, images, split, workdir), 1 / len(test)


def test_trains_on_the_glyph_demo(tiny_glyphs, tmp_path):
    result, chance = _glyph_training(tiny_glyphs, tmp_path, "uniformity", {"network_lr": 2e-3}, epochs=3)
    losses = [r["train/loss"] for r in result.history]
    assert losses[-1] < 0.95 * losses[0], losses
    assert result.history[-1]["test/recall@1"] > 4 * chance
    assert all(math.isfinite(x) for x in losses)


def test_resuming_from_a_checkpoint_continues_the_discriminator(tiny_glyphs, tmp_path):
    """Epochs of 12 steps: the discriminator steps at 0, 10, 20, 30; stopping after 2 epochs and resuming
    must give the uninterrupted run (its step counter, optimizer and schedule come back)."""
    settings = {"network_lr": 2e-3, "disc_milestone": 1}
    full, _ = _glyph_training(tiny_glyphs, tmp_path / "full", "uniformity", settings, epochs=3)
    _glyph_training(tiny_glyphs, tmp_path / "resumed", "uniformity", settings, epochs=2)
    resumed, _ = _glyph_training(tiny_glyphs, tmp_path / "resumed", "uniformity", settings, epochs=3)
    assert resumed.resumed_from_epoch == 2
    assert [r["train/loss"] for r in resumed.history] == pytest.approx(
        [r["train/loss"] for r in full.history], rel=1e-5
    )
