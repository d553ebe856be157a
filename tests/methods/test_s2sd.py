"""S2SD against its definition (ooDML ``criteria/s2sd.py``), on tiny inputs with fixed triplets."""

import io
import math
from pathlib import Path

import pytest
import torch

import tasks.train
from tasks.methods import METHODS, DistanceWeightedSampler, RhoDistanceSampler, TrainBatch, build_method
from tasks.methods.s2sd import S2SD, similarity_kl

CLASSES, PER_CLASS, FEATURES, EMBED, DIMS = 4, 2, 5, 6, (3, 4, 7)
LABELS = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
TRIPLETS = (torch.tensor([0, 2, 4, 6, 1]), torch.tensor([1, 3, 5, 7, 0]), torch.tensor([2, 4, 6, 0, 5]))
NO_TRIPLETS = (torch.tensor([], dtype=torch.long),) * 3


def _method(**overrides) -> S2SD:
    dims = dict(zip(("target_dim1", "target_dim2", "target_dim3"), DIMS, strict=True))
    method = build_method("s2sd", num_classes=CLASSES, embedding_dim=EMBED, **(dims | overrides))
    for criterion in (method.source, *method.target_criteria):
        criterion.sampler = lambda embeddings, labels: TRIPLETS
    return method


def _batch(seed: int = 0) -> TrainBatch:
    g = torch.Generator().manual_seed(seed)
    embeddings = torch.nn.functional.normalize(torch.randn(len(LABELS), EMBED, generator=g), dim=1)
    features = torch.rand(len(LABELS), FEATURES, generator=g)
    max_features = features + torch.rand(len(LABELS), FEATURES, generator=g)
    return TrainBatch(features, embeddings, embeddings, LABELS, max_features=max_features)


def _kl_loop(source: torch.Tensor, target: torch.Tensor, temperature: float) -> float:
    """sum_i sum_j p_t(ij) (log p_t(ij) - log p_s(ij)) T^2 / B, p = row-wise softmax(S / T), in floats."""
    total = 0.0
    rows = source.tolist(), target.tolist()
    for s_row, t_row in zip(*rows, strict=True):
        s_norm = sum(math.exp(v / temperature) for v in s_row)
        t_norm = sum(math.exp(v / temperature) for v in t_row)
        for s, t in zip(s_row, t_row, strict=True):
            p_s, p_t = math.exp(s / temperature) / s_norm, math.exp(t / temperature) / t_norm
            total += p_t * (math.log(p_t) - math.log(p_s))
    return total * temperature**2 / len(rows[0])


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _head(head: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    first, last = head[0], head[2]
    return torch.relu(x @ first.weight.T + first.bias) @ last.weight.T + last.bias


def test_defaults_are_the_papers_cub_settings():
    assert METHODS["s2sd"].defaults() == {
        "beta": 0.6,
        "margin": 0.2,
        "nu": 0.0,
        "loss_lr": 1e-5,
        "rho": 0.4,
        "head_lr": 1e-5,
        "temperature": 1.0,
        "weight": 50.0,
        "feat_weight": 50.0,
        "feat_distill": 1,
        "feat_delay": 0,
        "pool_aggr": 1,
        "target_dim1": 1024,
        "target_dim2": 1536,
        "target_dim3": 2048,
    }
    method = build_method("s2sd", num_classes=3, embedding_dim=8)
    assert method.wants_max_features and [h[2].out_features for h in method.target_heads] == [
        1024,
        1536,
        2048,
    ]
    method.training_loss(_wide_batch())  # initialises the heads: input width 16
    assert [(h[0].in_features, h[0].out_features, h[2].in_features) for h in method.target_heads] == [
        (16, 1024, 1024),
        (16, 1536, 1536),
        (16, 2048, 2048),
    ]
    criteria = (method.source, *method.target_criteria)
    samplers = [c.sampler for c in criteria]
    assert all(type(s) is RhoDistanceSampler and s.rho == 0.4 for s in samplers)
    assert len({id(s) for s in samplers}) == 4  # one sampler per criterion, as the original's miners
    assert all(torch.equal(c.beta, torch.full((3,), 0.6)) for c in criteria)


def _wide_batch() -> TrainBatch:
    features = torch.rand(6, 16)
    embeddings = torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
    return TrainBatch(features, embeddings, embeddings, torch.arange(3).repeat(2), max_features=2 * features)


def test_rho_zero_is_plain_distance_weighted_sampling():
    method = build_method("s2sd", num_classes=3, embedding_dim=8, rho=0.0)
    assert all(type(c.sampler) is DistanceWeightedSampler for c in (method.source, *method.target_criteria))


def test_similarity_kl_is_the_originals_direction_and_reduction():
    g = torch.Generator().manual_seed(1)
    source, target = torch.randn(5, 5, generator=g), torch.randn(5, 5, generator=g)
    for temperature in (1.0, 0.5):
        assert similarity_kl(source, target, temperature).item() == pytest.approx(
            _kl_loop(source, target, temperature), rel=1e-5
        )
    assert similarity_kl(source, target, 1.0).item() != pytest.approx(
        similarity_kl(target, source, 1.0).item()
    )


def test_total_loss_matches_a_slow_reference():
    method = _method(temperature=0.5, weight=3.0, feat_weight=2.0)
    batch = _batch()
    loss = method.training_loss(batch)

    e, labels = batch.embeddings, LABELS
    aggregated = batch.features + batch.max_features
    targets = [_unit(_head(head, aggregated)) for head in method.target_heads]
    source_sim = e @ e.T
    target_losses = [c(t, labels).item() for c, t in zip(method.target_criteria, targets, strict=True)]
    kls = [_kl_loop(source_sim, t @ t.T, 0.5) for t in targets]
    unit = _unit(aggregated)
    expected = (
        (sum(target_losses) / 3 + method.source(e, labels).item()) / 2
        + 3.0 * sum(kls) / 3
        + 2.0 * _kl_loop(source_sim, unit @ unit.T, 0.5)
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert method.iteration == 1
    assert set(method.terms) == {"source", "target", "distill", "feature_distill"}
    assert method.terms["distill"].item() == pytest.approx(sum(kls) / 3, rel=1e-5)


def test_distillation_teaches_the_source_only():
    """The target similarities are detached: with the target losses silenced (no triplets), nothing
    reaches the target heads or the features, and the embeddings still learn from the distillation."""
    method = _method(feat_distill=0)
    for criterion in method.target_criteria:
        criterion.sampler = lambda embeddings, labels: NO_TRIPLETS
    base = _batch()
    features, max_features = (
        base.features.clone().requires_grad_(),
        base.max_features.clone().requires_grad_(),
    )
    embeddings = base.embeddings.clone().requires_grad_()
    method.training_loss(TrainBatch(features, embeddings, embeddings, LABELS, max_features)).backward()
    assert embeddings.grad.abs().sum() > 0
    for grad in (features.grad, max_features.grad, *(p.grad for p in method.target_heads.parameters())):
        assert grad is None or not grad.any()


def test_feature_distillation_starts_at_the_delay():
    method = _method(feat_delay=2, feat_weight=4.0)
    batch = _batch(2)
    unit = _unit(batch.features + batch.max_features)
    feature_kl = _kl_loop(batch.embeddings @ batch.embeddings.T, unit @ unit.T, 1.0)
    for iteration in range(4):
        method.iteration, method.feat_distill = iteration, False
        without = method.training_loss(batch).item()
        method.iteration, method.feat_distill = iteration, True
        with_feature = method.training_loss(batch).item()
        assert method.iteration == iteration + 1
        expected = 4.0 * feature_kl if iteration >= 2 else 0.0
        assert with_feature - without == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_pool_aggregation_feeds_the_targets_avg_plus_max_features():
    seen = []
    for pool_aggr in (1, 0):
        method = _method(pool_aggr=pool_aggr)
        assert method.wants_max_features == bool(pool_aggr)
        handle = method.target_heads[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        method.training_loss(_batch())
        handle.remove()
    batch = _batch()
    torch.testing.assert_close(seen[0], batch.features + batch.max_features)
    torch.testing.assert_close(seen[1], batch.features)
    with pytest.raises(ValueError, match="max-pooled"):
        _method().training_loss(TrainBatch(batch.features, batch.outputs, batch.embeddings, LABELS))


def test_param_groups_train_boundaries_and_heads_at_their_rates():
    method = _method(loss_lr=2e-4, head_lr=3e-5)
    method.training_loss(_batch())
    boundaries, heads = method.param_groups()
    assert boundaries["params"] == [c.beta for c in (method.source, *method.target_criteria)]
    assert boundaries["lr"] == 2e-4 and heads["lr"] == 3e-5
    assert boundaries["weight_decay"] == heads["weight_decay"] == 0
    assert {id(p) for p in heads["params"]} == {id(p) for p in method.target_heads.parameters()}
    assert len(heads["params"]) == 4 * len(DIMS)
    grouped = [id(p) for group in (boundaries, heads) for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in method.parameters())


def test_param_groups_exist_before_the_heads_are_initialised_and_are_stepped_after():
    """The optimizer is built before the first batch; the lazily initialised heads must still train."""
    method = _method(head_lr=1e-2)
    optimizer = torch.optim.Adam(method.param_groups())
    method.training_loss(_batch()).backward()
    before = [p.detach().clone() for p in method.target_heads.parameters()]
    optimizer.step()
    after = list(method.target_heads.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


def test_checkpoint_round_trip():
    method = _method()
    for step in range(3):
        method.training_loss(_batch(step))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    restored = _method()  # fresh: heads not yet initialised
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.iteration == 3
    for ours, theirs in zip(method.state_dict().values(), restored.state_dict().values(), strict=True):
        if isinstance(ours, torch.Tensor):
            assert torch.equal(ours, theirs)
    assert restored.training_loss(_batch(9)).item() == pytest.approx(method.training_loss(_batch(9)).item())


def _glyph_training(tiny: dict, workdir: Path, name: str, hyperparameters: dict, epochs: int, lr: float):
    """``name`` trained by the real loop (hooks, max-pooled features) on a small glyph benchmark."""
    from tasks.config import TrialConfig
    from tasks.data import build_dataset
    from tasks.splits.files import Split

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
                "lr": lr,
                "with_nmi": False,
                "device": "cpu",
            },
        }
    )
    return tasks.train.train_model(config, images, split, workdir), 1 / len(test)


def test_trains_on_the_glyph_demo(tiny_glyphs, tmp_path, monkeypatch):
    """Through the real loop: the source and target losses fall and the base embedding retrieves far
    above chance. The total need not fall: its distillation term measures the distance to targets that
    themselves move as they learn. Settings: SOP's distillation weights (5) and distance-weighted
    sampling; CUB's weight 50, set for a pretrained ResNet50 at lr 1e-5, lets the distillation term
    swamp the margin losses of a glyph CNN learning from scratch at lr 1e-3 for 36 steps."""
    built, terms = [], []

    def build(*args, **kwargs):
        method = build_method(*args, **kwargs)
        original = method.training_loss

        def training_loss(batch):
            loss = original(batch)
            terms.append({k: v.item() for k, v in method.terms.items()})
            return loss

        method.training_loss = training_loss
        built.append(method)
        return method

    monkeypatch.setattr(tasks.train, "build_method", build)
    lr = 1e-3
    settings = {"head_lr": lr, "weight": 5.0, "feat_weight": 5.0, "rho": 0.0}
    result, chance = _glyph_training(tiny_glyphs, tmp_path, "s2sd", settings, epochs=3, lr=lr)
    assert isinstance(result.model.head, torch.nn.Linear)  # evaluation: the base embedding
    first, last = terms[:12], terms[-12:]
    for name in ("source", "target"):
        before, after = (sum(t[name] for t in steps) / len(steps) for steps in (first, last))
        assert after < 0.95 * before, (name, before, after)
    assert built[0].iteration == 36 and "feature_distill" in terms[0]
    assert result.history[-1]["test/recall@1"] > 4 * chance


def test_resuming_from_a_checkpoint_restores_heads_and_step_counter(tiny_glyphs, tmp_path):
    settings = {"head_lr": 1e-3, "weight": 5.0, "feat_weight": 5.0, "rho": 0.0, "feat_delay": 30}
    full, _ = _glyph_training(tiny_glyphs, tmp_path / "full", "s2sd", settings, epochs=3, lr=1e-3)
    _glyph_training(tiny_glyphs, tmp_path / "resumed", "s2sd", settings, epochs=2, lr=1e-3)
    resumed, _ = _glyph_training(tiny_glyphs, tmp_path / "resumed", "s2sd", settings, epochs=3, lr=1e-3)
    assert resumed.resumed_from_epoch == 2
    assert [r["train/loss"] for r in resumed.history] == pytest.approx(
        [r["train/loss"] for r in full.history], rel=1e-5
    )
