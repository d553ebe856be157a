"""Few-shot adaptation (tasks/fewshot.py, docs/protocol.md section 5), on the code path a trial runs.

Each test fails on one planted bug (issue 11): classes too small for a budget scored anyway (a lone query
has no positive), support images among the queries, the learning-rate multiplier dropped, adaptation
skipped, or an episode interval that is not Student t over episodes with the sample standard deviation.
The backbone's features are replaced by hand-made ones (``embed`` is patched), so every episode runs in
milliseconds and its outcome is known in advance.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import study.preflight
import tasks.fewshot as fewshot
from study.results.schema import trial_rows
from tasks.config import TrialConfig
from tasks.data import LabelledImages
from tasks.data.arrays import ArrayLoader
from tasks.evaluate import retrieval_metrics
from tasks.fewshot import episode_images, evaluate_fewshot, mean_ci95, metric_names
from tasks.models import EmbeddingModel, build_model
from tasks.record import TrialIdentity, TrialRecord
from tasks.splits.episodes import images_needed, too_small_classes
from tasks.splits.files import Split
from tasks.trial import fewshot_measurements

CPU = torch.device("cpu")


def _images(sizes: dict[str, int]) -> LabelledImages:
    """Classes of the given sizes, as 32x32 greyscale arrays (what the glyph CNN reads), all test classes."""
    labels = [c for c, n in sizes.items() for _ in range(n)]
    ids = [f"{c}/img{k}.png" for c, n in sizes.items() for k in range(n)]
    pixels = np.random.default_rng(0).integers(0, 256, (len(ids), 32, 32), dtype=np.uint8)
    return LabelledImages(
        "tiny", Path("/nowhere"), tuple(ids), tuple(labels), (), tuple(sizes), ArrayLoader(pixels)
    )


def _split(test: list[str], episodes: dict[int, list]) -> Split:
    return Split(
        id=0,
        key="0",
        fid=1.0,
        train=["t0", "t1"],
        test=test,
        split_train=["t0"],
        split_val=["t1"],
        episodes=episodes,
    )


def _per_image(images: LabelledImages, classes: list[str], shots: int, episodes: int, seed: int = 0) -> list:
    """Per-image episodes naming every class given, whatever its size (as an ooDML split file may)."""
    rng = np.random.default_rng(seed)
    by_class = images.indices_by_class()
    return [
        {
            c: sorted(images.image_ids[i] for i in rng.choice(by_class[c], shots, replace=False))
            for c in classes
        }
        for _ in range(episodes)
    ]


def _config(shots: int, iterations: int = 2, **training) -> TrialConfig:
    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "unused.json", "split": "0"},
            "model": {"backbone": "glyph_cnn", "embedding_dim": 8, "pretrained": False},
            "method": {"name": "margin"},
            "training": {"lr": 1e-3, "with_nmi": True, "ks": [1, 2]} | training,
            # the patched features stand for the evaluation transform's: support embedded once
            "fewshot": {
                "shots": [shots],
                "iterations": {shots: iterations},
                "batch_size": 16,
                "support_transform": "eval",
            },
        }
    )


def _model(dim: int, weight: torch.Tensor | None = None) -> EmbeddingModel:
    """An embedding model whose backbone passes its (patched) features through to a linear head."""
    model = EmbeddingModel(nn.Identity(), dim, dim, None, freeze_bn=False)
    with torch.no_grad():
        model.head.weight.copy_(torch.eye(dim) if weight is None else weight)
        model.head.bias.zero_()
    return model.eval()


def _patch_features(monkeypatch, features: np.ndarray) -> None:
    """The backbone features of image i are ``features[i]`` (the head-mode path embeds them once)."""

    def embed(model, images, indices, device, **options):
        assert options.get("features"), "head mode embeds backbone features once"
        return features[np.asarray(indices)].astype(np.float32)

    monkeypatch.setattr(fewshot, "embed", embed)


def _clusters(images: LabelledImages, dim: int = 4, spread: float = 0.05) -> np.ndarray:
    """Features: one well-separated direction per class, with a little noise."""
    rng = np.random.default_rng(1)
    classes = sorted(set(images.labels))
    centers = np.eye(dim)[: len(classes)] * 3
    return np.stack([centers[classes.index(c)] for c in images.labels]) + rng.normal(
        0, spread, (len(images), dim)
    )


# --- classes too small for the budget (issue 11, item 5) -------------------------------------------


def test_threshold_is_shots_plus_two_and_shared_with_the_preflight() -> None:
    assert images_needed(5) == 7
    assert too_small_classes(["a", "b", "c"], {"a": 6, "b": 7, "c": 2}, shots=5) == {"c": 2, "a": 6}
    assert too_small_classes(["a"], {"a": 2}, shots=0) == {}  # whole-class queries: 2 images suffice
    assert study.preflight.too_small_classes is too_small_classes  # one definition decides both


def test_a_six_image_class_is_left_out_of_five_shot_episodes_and_counted(monkeypatch) -> None:
    """The issue's case: 5 support images of a 6-image class leave one query with no positive in the
    gallery. Scored, it pulls Recall@1 below 1 on perfectly separated classes; left out, it does not."""
    images = _images({"a": 8, "b": 8, "c": 9, "d": 6})
    _patch_features(monkeypatch, _clusters(images))
    split = _split(["a", "b", "c", "d"], {5: _per_image(images, ["a", "b", "c", "d"], 5, episodes=3)})
    result = evaluate_fewshot(_model(4), images, split, _config(5), CPU)[5]

    assert result["left_out_classes"] == ["d"] and result["episodes"] == 3
    assert result["nan_reason"] is None
    zero = result["zeroshot"]
    assert zero["recall@1"] == (1.0, 0.0) and zero["map@r"] == (1.0, 0.0)
    for kind in ("fewshot", "zeroshot"):
        assert all(math.isfinite(mean) and math.isfinite(ci) for mean, ci in result[kind].values())
    resolved = episode_images(images, split.episodes[5][0], split.test)
    assert not {images.labels[i] for i in (*resolved.support, *resolved.query)} & {"d"}
    assert len(resolved.query) == 3 + 3 + 4


def test_a_budget_no_episode_can_score_is_nan_with_its_reason(monkeypatch) -> None:
    images = _images({"a": 6, "b": 6, "c": 6})
    _patch_features(monkeypatch, _clusters(images))
    split = _split(["a", "b", "c"], {5: _per_image(images, ["a", "b", "c"], 5, episodes=2)})
    config = _config(5)
    result = evaluate_fewshot(_model(4), images, split, config, CPU)[5]

    assert result["episodes"] == 0 and result["left_out_classes"] == ["a", "b", "c"]
    assert result["nan_reason"].startswith("no 5-shot episode scored: none of the 2 leaves 2 query classes")
    assert "3 of the 3 test classes left out" in result["nan_reason"]
    assert "a class needs 7 images: 5 support, 2 queries" in result["nan_reason"]
    for kind in ("fewshot", "zeroshot"):
        assert sorted(result[kind]) == sorted(metric_names(config))
        assert all(math.isnan(mean) and math.isnan(ci) for mean, ci in result[kind].values())

    # ... and the reason reaches the results rows (through the measurements tasks/trial.py records)
    record = TrialRecord(TrialIdentity("t"), measurements=tuple(fewshot_measurements({5: result})))
    rows = trial_rows(record, stage="eval", study="s").to_pylist()
    assert rows and all(r["nan_reason"] == result["nan_reason"] for r in rows)
    assert all(r["left_out_classes"] == 3 and r["episodes"] == 0 for r in rows)


def test_one_scored_episode_says_why_its_interval_is_nan(monkeypatch) -> None:
    images = _images({"a": 8, "b": 8})
    _patch_features(monkeypatch, _clusters(images))
    split = _split(["a", "b"], {2: _per_image(images, ["a", "b"], 2, episodes=1)})
    result = evaluate_fewshot(_model(4), images, split, _config(2), CPU)[2]
    assert result["episodes"] == 1 and math.isnan(result["zeroshot"]["recall@1"][1])
    assert result["nan_reason"] == "ci95: 1 2-shot episode scored; an interval over episodes needs 2"


def test_metric_names_are_what_the_evaluation_returns() -> None:
    config = _config(2)
    x = np.random.default_rng(0).normal(size=(6, 3))
    assert sorted(metric_names(config)) == sorted(
        retrieval_metrics(x, [0, 0, 1, 1, 2, 2], ks=config.training.ks, with_nmi=config.training.with_nmi)
    )


# --- support never among the queries (item 6) --------------------------------------------------------


def _episode_spies(monkeypatch, images: LabelledImages) -> dict[str, list]:
    """Record what the head-mode path adapts on and scores (zero-shot, then few-shot, per episode): the
    features encode the image index as (i + 1, 1), which the identity head keeps readable after
    normalisation; the spied adaptation returns the head unchanged."""
    features = np.zeros((len(images), 4))
    features[:, 0], features[:, 1] = np.arange(len(images)) + 1, 1
    _patch_features(monkeypatch, features)
    seen: dict[str, list] = {"support": [], "query": []}

    def support_batches(feats, labels, fs, iterations, seed):
        seen["support"].append(set(np.rint(feats[:, 0].numpy() - 1).astype(int).tolist()))
        return []  # no step: the head stays as trained

    def metrics(embeddings, labels, config):
        e = torch.as_tensor(embeddings).numpy()
        seen["query"].append(set(np.rint(e[:, 0] / e[:, 1] - 1).astype(int).tolist()))
        return {m: 0.5 for m in metric_names(config)}

    monkeypatch.setattr(fewshot, "_feature_batches", support_batches)
    monkeypatch.setattr(fewshot, "trial_metrics", metrics)
    return seen


def test_per_image_support_never_leaks_into_the_queries(monkeypatch) -> None:
    images = _images({"a": 7, "b": 8, "c": 9, "d": 4})  # d: too small for 3 shots
    seen = _episode_spies(monkeypatch, images)
    episodes = _per_image(images, ["a", "b", "c", "d"], 3, episodes=3)
    split = _split(["a", "b", "c", "d"], {3: episodes})
    evaluate_fewshot(_model(4), images, split, _config(3), CPU)

    assert len(seen["support"]) == 3 and len(seen["query"]) == 6
    by_class = images.indices_by_class()
    usable = {int(i) for c in "abc" for i in by_class[c]}
    for e, episode in enumerate(episodes):
        support = seen["support"][e]
        assert {images.image_ids[i] for i in support} == {f for c in "abc" for f in episode[c]}
        for query in seen["query"][2 * e : 2 * e + 2]:  # zero-shot and few-shot score the same queries
            assert not support & query
            assert support | query == usable


def test_whole_class_support_never_leaks_into_the_queries(monkeypatch) -> None:
    images = _images({"a": 3, "b": 4, "c": 5, "d": 1, "e": 2})  # d: a lone image cannot be a query
    seen = _episode_spies(monkeypatch, images)
    split = _split(["a", "b", "c", "d", "e"], {2: [["a"], ["b", "c"]]})
    result = evaluate_fewshot(_model(4), images, split, _config(2), CPU)[2]

    by_class = images.indices_by_class()
    of = lambda classes: {int(i) for c in classes for i in by_class[c]}  # noqa: E731
    assert seen["support"] == [of("a"), of("bc")]
    assert seen["query"] == [of("bce"), of("bce"), of("ae"), of("ae")]
    assert result["left_out_classes"] == ["d"] and result["support"] == "classes"


def test_full_mode_adapts_on_the_support_and_scores_only_the_queries(monkeypatch) -> None:
    images = _images({"a": 5, "b": 6, "c": 3})
    seen: dict[str, list] = {"support": [], "embedded": []}

    def embed(model, images, indices, device, **options):
        seen["embedded"].append({int(i) for i in indices})
        return np.random.default_rng(len(seen["embedded"])).normal(size=(len(indices), 4))

    def support_batches(images, support, labels, model, config, iterations, seed, device):
        seen["support"].append({int(i) for i in support})
        return []  # no step

    monkeypatch.setattr(fewshot, "embed", embed)
    monkeypatch.setattr(fewshot, "_image_batches", support_batches)
    episodes = _per_image(images, ["a", "b", "c"], 2, episodes=2)
    config = _config(2).model_copy(update={"fewshot": _config(2).fewshot.model_copy(update={"mode": "full"})})
    evaluate_fewshot(_model(4), images, _split(["a", "b", "c"], {2: episodes}), config, CPU)

    by_class = images.indices_by_class()
    usable = {int(i) for c in "ab" for i in by_class[c]}  # c: 3 images, too few for 2 shots
    assert len(seen["support"]) == 2 and len(seen["embedded"]) == 4
    for e in range(2):
        for query in seen["embedded"][2 * e : 2 * e + 2]:
            assert not seen["support"][e] & query and seen["support"][e] | query == usable


# --- the learning rate of adaptation (item 6) --------------------------------------------------------
# Adam's first step moves every parameter with a non-negligible gradient by exactly its learning rate
# (m / sqrt(v) = g / |g|), so one iteration reads the rate each parameter group got.


def _largest_step(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    return max(float((a.detach() - b).abs().max()) for a, b in zip(after, before, strict=True))


@pytest.mark.parametrize(("head_lr", "multiplier"), [(None, 10.0), (4e-4, 3.0)])
def test_head_adaptation_runs_at_the_multiplied_learning_rate(head_lr, multiplier) -> None:
    config = _config(2, iterations=1, head_lr=head_lr)
    config = config.model_copy(
        update={"fewshot": config.fewshot.model_copy(update={"lr_multiplier": multiplier})}
    )
    torch.manual_seed(0)
    head = nn.Linear(6, 4)
    before = [p.detach().clone() for p in head.parameters()]
    features = torch.randn(8, 6)
    batches = fewshot._feature_batches(features, np.repeat(np.arange(4), 2), config.fewshot, 1, 0)
    fewshot._adapt(_model(6), head, batches, 4, config, 0, CPU)
    expected = multiplier * (head_lr or config.training.lr)
    assert _largest_step(before, list(head.parameters())) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("head_lr", [None, 5e-3])
def test_full_adaptation_runs_backbone_and_head_at_the_multiplied_rates(head_lr) -> None:
    torch.set_num_threads(2)
    config = _config(2, iterations=1, head_lr=head_lr)
    config = config.model_copy(update={"fewshot": config.fewshot.model_copy(update={"mode": "full"})})
    images = _images({"a": 2, "b": 2, "c": 2, "d": 2})
    torch.manual_seed(0)
    model = build_model("glyph_cnn", 8, pretrained=False)
    backbone = [p.detach().clone() for p in model.backbone.parameters()]
    head = [p.detach().clone() for p in model.head.parameters()]
    support = np.arange(len(images))
    labels = np.repeat(np.arange(4), 2)
    batches = fewshot._image_batches(images, support, labels, model, config, 1, 0, CPU)
    fewshot._adapt(model, model.head, batches, 4, config, 0, CPU)
    adapted = model
    lr = config.training.lr
    assert _largest_step(backbone, list(adapted.backbone.parameters())) == pytest.approx(10 * lr, rel=1e-3)
    assert _largest_step(head, list(adapted.head.parameters())) == pytest.approx(
        10 * (head_lr or lr), rel=1e-3
    )


# --- adaptation happens, and helps where it must (item 6) ---------------------------------------------


def test_adaptation_changes_a_copy_of_the_head_and_beats_the_zero_shot_model(monkeypatch) -> None:
    """The class signal sits in feature dims 4-7, which the trained head ignores (it reads the noise in
    dims 0-3): zero-shot retrieval is near chance, and adapting the head on the support must find it."""
    torch.set_num_threads(2)
    sizes = {c: 12 for c in "abcd"}
    images = _images(sizes)
    rng = np.random.default_rng(0)
    signal = np.repeat(np.eye(4) * 3, 12, axis=0)
    features = np.concatenate([rng.normal(0, 1, (48, 4)), signal + rng.normal(0, 0.3, (48, 4))], axis=1)
    _patch_features(monkeypatch, features)
    weight = torch.zeros(8, 8)
    weight[:4, :4] = torch.eye(4)
    model = _model(8, weight)
    original = copy.deepcopy(model.head.state_dict())
    adapted_heads = []
    real_adapt = fewshot._adapt

    def adapt(model, head, *args):
        start = copy.deepcopy(head.state_dict())
        real_adapt(model, head, *args)
        adapted_heads.append((start, copy.deepcopy(head.state_dict())))

    monkeypatch.setattr(fewshot, "_adapt", adapt)
    split = _split(list(sizes), {2: _per_image(images, list(sizes), 2, episodes=2)})
    result = evaluate_fewshot(model, images, split, _config(2, iterations=150), CPU)[2]

    assert len(adapted_heads) == 2
    for start, end in adapted_heads:
        assert all(torch.equal(start[k], original[k]) for k in original)  # adapted from the trained head
        assert not torch.allclose(end["weight"], start["weight"])
    assert all(torch.equal(model.head.state_dict()[k], original[k]) for k in original)  # on a copy
    zero, few = result["zeroshot"]["recall@1"][0], result["fewshot"]["recall@1"][0]
    assert zero < 0.6 and few > zero + 0.3
    assert result["fewshot"]["map@r"][0] > result["zeroshot"]["map@r"][0] + 0.3


# --- the interval over episodes (item 6) ---------------------------------------------------------------


def test_mean_ci95_is_student_t_over_episodes_with_the_sample_std() -> None:
    values = [0.61, 0.55, 0.70, 0.58, 0.66]
    n, s = len(values), np.std(values, ddof=1)
    mean, half = mean_ci95(values)
    assert mean == pytest.approx(np.mean(values))
    assert half == pytest.approx(stats.t.ppf(0.975, n - 1) * s / math.sqrt(n), rel=1e-12)
    # what a wrong interval would give differs by far more than the tolerance above
    assert abs(half - stats.norm.ppf(0.975) * s / math.sqrt(n)) > 0.1 * half
    assert abs(half - stats.t.ppf(0.975, n - 1) * np.std(values) / math.sqrt(n)) > 0.05 * half
    assert mean_ci95([0.4])[0] == 0.4 and math.isnan(mean_ci95([0.4])[1])


def test_the_reported_interval_is_over_the_episode_values(monkeypatch) -> None:
    """On the trial's path: hand-made per-episode metrics come back as their mean and Student-t CI."""
    images = _images({"a": 6, "b": 6, "c": 6})
    _patch_features(monkeypatch, _clusters(images))
    per_episode = iter([0.2, 0.9, 0.4, 0.5, 0.3, 0.6, 0.8, 0.1])  # zero-shot, few-shot, alternating

    def metrics(embeddings, labels, config):
        return {"recall@1": next(per_episode)}

    monkeypatch.setattr(fewshot, "trial_metrics", metrics)
    split = _split(["a", "b", "c"], {2: _per_image(images, ["a", "b", "c"], 2, episodes=4)})
    result = evaluate_fewshot(_model(4), images, split, _config(2, iterations=1), CPU)[2]
    for kind, values in (("zeroshot", [0.2, 0.4, 0.3, 0.8]), ("fewshot", [0.9, 0.5, 0.6, 0.1])):
        mean, half = result[kind]["recall@1"]
        assert mean == pytest.approx(np.mean(values))
        assert half == pytest.approx(stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2)
    assert result["episodes"] == 4 and result["nan_reason"] is None
