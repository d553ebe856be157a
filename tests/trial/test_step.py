"""The one training step (``tasks.step``), against a step written out by hand, and its use by training and
few-shot adaptation: the method's ``training_loss`` on a ``TrainBatch``, backward, the optimizer's step,
``after_step``, and the losses checked finite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import tasks.fewshot as fewshot
from tasks.config import TrialConfig
from tasks.methods import Method, TrainBatch
from tasks.models import build_model
from tasks.step import LossLog, NonFiniteLossError, TrainingStep, check_finite

CPU = torch.device("cpu")


class SquaredDistance(Method):
    """A plain loss: mean squared distance of same-class pairs minus that of other pairs; counts its hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        d = torch.cdist(embeddings, embeddings).pow(2)
        same = labels[:, None] == labels[None, :]
        return d[same].mean() - d[~same].mean()


class Counted(SquaredDistance):
    """The same loss through ``training_loss`` with a named term, and hooks that say they ran."""

    def training_loss(self, batch: TrainBatch) -> Tensor:
        self.calls.append("training_loss")
        loss = self(batch.embeddings, batch.labels)
        self.terms = {"pull": loss.detach() + 1}
        return loss

    def after_step(self, model: nn.Module) -> None:
        self.calls.append("after_step")


def _linear_forward(model: nn.Linear):
    def forward(items) -> TrainBatch:
        x, y = items
        outputs = model(x)
        return TrainBatch(features=x, outputs=outputs, embeddings=F.normalize(outputs, dim=-1), labels=y)

    return forward


def _batches(n: int) -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 5, generator=generator), torch.arange(4).repeat(2)) for _ in range(n)]


def _never(losses: Tensor, start: int, stop: int) -> None:
    assert torch.isfinite(losses[start:stop]).all()


def test_a_step_is_loss_backward_and_the_optimizers_step_then_after_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    reference = nn.Linear(5, 3)
    reference.load_state_dict(model.state_dict())
    method, loss_of = Counted(), SquaredDistance()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    by_hand = torch.optim.Adam(reference.parameters(), lr=0.1)
    step = TrainingStep(
        _linear_forward(model), model, method, optimizer, torch.amp.GradScaler("cuda", enabled=False)
    )
    log = LossLog(3, CPU, _never)
    expected = []
    for x, y in _batches(3):
        step((x, y), log)
        loss = loss_of(F.normalize(reference(x), dim=-1), y)
        expected.append(loss.item())
        by_hand.zero_grad()
        loss.backward()
        by_hand.step()
    log.finish()
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    assert method.calls == ["training_loss", "after_step"] * 3
    assert log.mean() == pytest.approx(np.mean(np.float32(expected)), rel=1e-6)
    assert log.term_means() == {"pull": pytest.approx(np.mean(np.float32(expected)) + 1, rel=1e-6)}


def test_the_loss_log_grows_beyond_its_room_and_means_every_step() -> None:
    log = LossLog(2, CPU, _never)
    for value in (1.0, 2.0, 4.0, 8.0, 16.0):
        log.add(torch.tensor(value), {})
    log.finish()
    assert log.taken == 5 and log.mean() == pytest.approx(31 / 5)


def _recorder(seen: list[tuple[int, int]]):
    def check(losses: Tensor, start: int, stop: int) -> None:
        seen.append((start, stop))
        check_finite(losses, start, stop, lambda step: f"at step {step}")

    return check


def test_losses_are_checked_every_few_steps_and_the_error_names_the_first_bad_one() -> None:
    seen: list[tuple[int, int]] = []
    log = LossLog(5, CPU, _recorder(seen), check_every=2)
    log.add(torch.tensor(1.0), {})
    log.add(torch.tensor(2.0), {})
    assert seen == [(0, 2)]
    log.add(torch.tensor(float("inf")), {})  # not read back yet
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(inf\) at step 2$"):
        log.add(torch.tensor(float("nan")), {})  # the window's first non-finite step is named
    assert seen == [(0, 2), (2, 4)]


def test_the_first_non_finite_step_of_a_window_is_named() -> None:
    losses = torch.tensor([1.0, float("inf"), float("nan")])
    with pytest.raises(NonFiniteLossError, match=r"\(inf\) at step 1$"):
        check_finite(losses, 0, 3, lambda step: f"at step {step}")
    check_finite(losses, 0, 1, lambda step: f"at step {step}")  # the window holds no bad step


def _config(lr: float = 1e-3) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "unused.json", "split": "0"},
            "model": {"backbone": "glyph_cnn", "embedding_dim": 16, "pretrained": False},
            "method": {"name": "margin"},
            "training": {"lr": lr, "with_nmi": False, "ks": [1]},
            "fewshot": {"shots": [2], "iterations": {2: 4}, "batch_size": 8},
        }
    )


def test_fewshot_adaptation_runs_the_training_step(monkeypatch) -> None:
    built: list[Counted] = []

    def criterion(config, num_classes, embedding_dim) -> Method:
        built.append(Counted())
        return built[-1]

    monkeypatch.setattr(fewshot, "criterion", criterion)
    torch.manual_seed(0)
    model = build_model("glyph_cnn", 16, pretrained=False).eval()
    head = nn.Linear(model.head.in_features, 16)
    before = head.weight.detach().clone()
    config = _config()
    features = torch.randn(16, model.head.in_features)
    batches = fewshot._feature_batches(features, np.repeat(np.arange(4), 4), config.fewshot, 4, 0)
    fewshot._adapt(model, head, batches, 4, config, 0, CPU)
    assert built[0].calls == ["training_loss", "after_step"] * 4
    assert not torch.equal(head.weight, before)


def test_a_non_finite_adaptation_loss_names_its_step(monkeypatch) -> None:
    monkeypatch.setattr(fewshot, "criterion", lambda config, num_classes, embedding_dim: SquaredDistance())
    torch.manual_seed(0)
    model = build_model("glyph_cnn", 16, pretrained=False).eval()
    head = nn.Linear(model.head.in_features, 16)
    config = _config(lr=float("inf"))
    features = torch.randn(16, model.head.in_features)
    batches = fewshot._feature_batches(features, np.repeat(np.arange(4), 4), config.fewshot, 4, 0)
    with pytest.raises(NonFiniteLossError, match=r"at few-shot adaptation step 1 \(episode seed 0\)"):
        fewshot._adapt(model, head, batches, 4, config, 0, CPU)
