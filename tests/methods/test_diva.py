"""DiVA (tasks.methods.diva) against its definitions in the ooDML code (ood_diva_main.py, criteria/fast_moco.py,
criteria/adversarial_separation.py, batchminer/random_distance.py), with slow references written from
the formulas, plus its hooks, checkpoints, few-shot adaptation and a short training on glyphs."""

from __future__ import annotations

import io
import math
from copy import deepcopy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tasks.data.transforms import GLYPH
from tasks.methods import METHODS, TrainBatch, build_method
from tasks.methods.diva import (
    DECORRELATIONS,
    PAPER_SETTINGS,
    TASKS,
    AdversarialSeparation,
    Diva,
    DivaHead,
    RandomLabelDistanceSampler,
    fast_moco_loss,
    split_embeddings,
)
from tasks.models.embedding import EmbeddingModel

IN_DIM, FEATURE_DIM, EMBEDDING_DIM = 6, 10, 32  # 4 tasks x 8 dims


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=torch.float64), dim=-1).float()


def _moco_reference(q, k, queue, temperature, lower=0.5, upper=1.4) -> float:
    """criteria/fast_moco.py's loss, one number at a time in float64."""
    q, k, queue = q.double().tolist(), k.double().tolist(), queue.double().tolist()
    dim = len(q[0])

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    sims = [[dot(qi, z) for z in queue] for qi in q]
    dists = [[max(math.sqrt(max(1 + 1 - 2 * s, 0.0)), lower) for s in row] for row in sims]
    log_w = [
        [(2 - dim) * math.log(d) - (dim - 3) / 2 * math.log(1 - d * d / 4) for d in row] for row in dists
    ]
    top = max(max(row) for row in log_w)
    w = [
        [max(0.0 if d > upper else math.exp(lw - top), 1e-45) for lw, d in zip(lrow, drow, strict=True)]
        for lrow, drow in zip(log_w, dists, strict=True)
    ]
    column = [sum(w[i][j] for i in range(len(q))) for j in range(len(queue))]
    total = 0.0
    for i, qi in enumerate(q):
        logits = [dot(qi, k[i])] + [sims[i][j] * w[i][j] / column[j] for j in range(len(queue))]
        logits = [x / temperature for x in logits]
        top_logit = max(logits)
        total += -(logits[0] - top_logit - math.log(sum(math.exp(x - top_logit) for x in logits)))
    return total / len(q)


def test_fast_moco_loss_matches_the_formula_with_its_distance_weighting():
    torch.manual_seed(0)
    dim, batch = 8, 5
    u = F.normalize(torch.randn(dim), dim=0)
    q = F.normalize(u + 0.6 * torch.randn(batch, dim), dim=1)
    k = F.normalize(q + 0.3 * torch.randn(batch, dim), dim=1)
    # random keys, one beyond the upper cut-off of every query (a column of floors), one near a query
    queue = torch.cat([_unit(7, dim), -u[None], F.normalize(q[:1] + 0.05 * torch.randn(1, dim), dim=1)])
    assert (torch.cdist(q, queue[7:8]) > 1.4).all()
    for temperature in (0.01, 0.5):
        got = fast_moco_loss(q, k, queue, temperature)
        assert got.item() == pytest.approx(_moco_reference(q, k, queue, temperature), rel=1e-4)


def test_fast_moco_loss_trains_only_the_queries_and_survives_antipodal_keys():
    torch.manual_seed(1)
    q = _unit(4, 8).requires_grad_(True)
    k, queue = _unit(4, 8).requires_grad_(True), _unit(6, 8)
    queue = torch.cat([queue, -q[:1].detach()])  # d = 2: the original's weights are NaN there
    loss = fast_moco_loss(q, k, queue, 0.01)
    loss.backward()
    assert torch.isfinite(loss) and q.grad is not None and k.grad is None


def _separation_reference(embeddings, separation) -> float:
    total = 0.0
    for (source, target), rho in separation.weights.items():
        mlp = separation.regressors[f"{source}-{target}"]
        s, t = F.normalize(embeddings[source], dim=-1), F.normalize(embeddings[target], dim=-1)
        p = F.normalize(mlp(s), dim=-1)
        rows = []
        for i in range(len(s)):
            rows.append(sum((t[i, d] * p[i, d]).item() ** 2 for d in range(s.shape[1])) / s.shape[1])
        total += -rho * sum(rows) / len(rows)
    return total


def test_separation_matches_the_formula_and_reverses_the_gradient_into_the_embeddings():
    torch.manual_seed(2)
    weights = dict(zip(DECORRELATIONS, (1500.0, 100.0, 7.0), strict=True))
    separation = AdversarialSeparation(8, 16, weights)
    embeddings = {task: _unit(5, 8).requires_grad_(True) for task in TASKS}
    value = separation(embeddings)
    assert value.item() == pytest.approx(_separation_reference(embeddings, separation), rel=1e-5)
    value.backward()
    reversed_grads = {k: v.grad.clone() for k, v in embeddings.items()}
    mlp_grads = [p.grad.clone() for p in separation.parameters()]
    # the same objective without the reversal: the MLPs get the same gradient, the embeddings the opposite
    separation.zero_grad()
    for v in embeddings.values():
        v.grad = None
    plain = sum(
        -rho
        * (
            F.normalize(embeddings[t], dim=-1)
            * F.normalize(separation.regressors[f"{s}-{t}"](F.normalize(embeddings[s], dim=-1)), dim=-1)
        )
        .pow(2)
        .mean()
        for (s, t), rho in weights.items()
    )
    plain.backward()
    for task in ("discriminative", "shared", "selfsimilarity", "intra"):
        torch.testing.assert_close(reversed_grads[task], -embeddings[task].grad)
    for got, want in zip(mlp_grads, (p.grad for p in separation.parameters()), strict=True):
        torch.testing.assert_close(got, want)


def test_random_label_sampler_mines_under_permuted_labels():
    torch.manual_seed(3)
    sampler = RandomLabelDistanceSampler()
    embeddings = _unit(9, 16)
    pseudo = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 4])  # classes 3 and 4 are singletons
    for _ in range(50):
        a, p, n = sampler.sample(embeddings, pseudo)
        assert a.tolist() == [0, 1, 2, 3, 4, 5, 6]  # every image with a pseudo-class partner
        assert (p != a).all() and (pseudo[p] == pseudo[a]).all() and (pseudo[n] != pseudo[a]).all()
    # the labels it mines under are a permutation of the batch's: positives mostly cross true classes
    labels = torch.arange(16).repeat_interleave(2)
    cross, total = 0, 0
    for _ in range(30):
        a, p, n = sampler(_unit(32, 16), labels)
        assert len(a) == 32 and (p != a).all()
        cross += (labels[p] != labels[a]).sum().item()
        total += len(a)
    assert cross / total > 0.8


def test_random_label_sampler_draws_negatives_by_inverse_sphere_density():
    torch.manual_seed(4)
    dim = 4
    embeddings = _unit(6, dim)
    pseudo = torch.tensor([0, 0, 1, 2, 3, 4])
    d = torch.cdist(embeddings.double(), embeddings.double())[0].clamp_min(0.5)
    weights = torch.tensor(
        [
            0.0 if j < 2 else math.exp((2 - dim) * math.log(x) - (dim - 3) / 2 * math.log(1 - x * x / 4))
            for j, x in enumerate(d.tolist())
        ]
    )
    expected = weights / weights.sum()
    draws = 4000
    counts = torch.zeros(6)
    for _ in range(draws):
        a, _, n = RandomLabelDistanceSampler().sample(embeddings, pseudo)
        counts[n[0]] += 1
    assert counts[:2].sum() == 0
    assert torch.allclose(counts / draws, expected.float(), atol=0.03)


class _Fixed:
    """A miner returning the same triplets every time."""

    def __init__(self, a, p, n) -> None:
        self.triplets = (torch.tensor(a), torch.tensor(p), torch.tensor(n))

    def __call__(self, embeddings, labels):
        return self.triplets

    mine = __call__


def _model(method: Diva) -> EmbeddingModel:
    backbone = nn.Sequential(nn.Linear(IN_DIM, FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
    model = EmbeddingModel(backbone, FEATURE_DIM, EMBEDDING_DIM, GLYPH, freeze_bn=False)
    model.head = method.embedding_head(FEATURE_DIM, EMBEDDING_DIM)
    return model


def _batch(model, x, labels, second) -> TrainBatch:
    features = model.features(x)
    outputs = model.head(features)
    return TrainBatch(features, outputs, F.normalize(outputs, dim=-1), labels, second_view=second)


def _setup(n_key_batches=3, batch=8, **hyper):
    torch.manual_seed(5)
    method = build_method(
        "diva", num_classes=4, embedding_dim=EMBEDDING_DIM, n_key_batches=n_key_batches, **hyper
    )
    model = _model(method)
    labels = torch.arange(4).repeat_interleave(batch // 4)
    data = [(torch.randn(batch, IN_DIM), torch.randn(batch, IN_DIM)) for _ in range(2)]

    def batches():
        with torch.no_grad():
            for x, second in data:
                yield _batch(model, x, labels, second)

    return method, model, labels, data, batches


def test_total_loss_is_the_weighted_sum_of_the_parts():
    method, model, labels, data, batches = _setup(
        alpha_ssl=0.2, alpha_shared=0.5, alpha_intra=0.7, rho_ssl=30.0
    )
    method.start(model, batches)
    fixed = {
        "discriminative": _Fixed([0, 2, 4], [1, 3, 5], [2, 4, 6]),
        "shared": _Fixed([1, 3], [6, 0], [7, 7]),
        "intra": _Fixed([5, 6, 7], [4, 7, 6], [0, 1, 2]),
    }
    for task, miner in fixed.items():
        getattr(method, task).sampler = miner
    x = torch.randn(8, IN_DIM)
    second = torch.randn(8, IN_DIM)
    batch = _batch(model, x, labels, second)
    total = method.training_loss(batch)

    e = split_embeddings(batch.outputs)
    encoder = method.key_encoder  # the momentum copy, in eval mode as the original's
    with torch.no_grad():
        keys = F.normalize(encoder.head.branches["selfsimilarity"](encoder.features(second)), dim=-1)
    expected = (
        method.discriminative(e["discriminative"], labels)
        + 0.2 * fast_moco_loss(e["selfsimilarity"], keys, method.queue, 0.01)
        + 0.5 * method.shared(e["shared"], labels)
        + 0.7 * method.intra(e["intra"], labels)
        + method.separation(e)
    )
    torch.testing.assert_close(total, expected)
    parts = method.loss_parts(batch)
    assert set(parts) == {"discriminative", "selfsimilarity", "shared", "intra", "separation"}
    torch.testing.assert_close(method.combine(parts), expected)


def test_start_fills_the_queue_with_n_key_batches_of_keys_from_second_views():
    method, model, labels, data, batches = _setup(n_key_batches=3)
    copy = deepcopy(model).eval()  # the model as start sees it (its batches move BatchNorm statistics)
    method.start(model, batches)  # two batches per pass: the second pass gives the third
    expected = [data[0][1], data[1][1], data[0][1]]
    with torch.no_grad():
        keys = torch.cat([split_embeddings(copy.head(copy.features(s)))["selfsimilarity"] for s in expected])
    torch.testing.assert_close(method.queue, keys)
    assert method.queue.shape == (24, EMBEDDING_DIM // 4)


def test_after_step_moves_the_momentum_encoder_and_the_queue():
    method, model, labels, data, batches = _setup(momentum=0.8)
    method.start(model, batches)
    optimizer = torch.optim.Adam(model.param_groups(1e-2, 1e-2) + method.param_groups())
    encoder = method.key_encoder
    assert all(not p.requires_grad for p in encoder.parameters())
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not grouped & {id(p) for p in encoder.parameters()}
    before = [p.detach().clone() for p in encoder.parameters()]
    queue = method.queue.clone()

    model.train()
    x, second = torch.randn(8, IN_DIM), torch.randn(8, IN_DIM)
    loss = method.training_loss(_batch(model, x, labels, second))
    new_keys = method.keys(second)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    method.after_step(model)

    for key, old, p in zip(encoder.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(key, 0.8 * old + 0.2 * p.detach(), rtol=0, atol=1e-7)
    for key, b in zip(encoder.buffers(), model.buffers(), strict=True):
        assert torch.equal(key, b)  # BatchNorm statistics copied (frozen in the ResNet protocol)
    # the oldest keys leave the front, this step's (made before the update) join at the back
    torch.testing.assert_close(method.queue, torch.cat([queue[8:], new_keys]))
    assert not torch.equal(method.keys(second), new_keys)


def test_param_groups_hold_margins_and_separation_at_their_rates():
    method = build_method("diva", num_classes=5, embedding_dim=EMBEDDING_DIM, decorrnet_lr=3e-5)
    groups = method.param_groups()
    assert [g["lr"] for g in groups] == [5e-4, 5e-4, 5e-4, 3e-5]
    assert all(g["weight_decay"] == 0 for g in groups)
    assert sum(p.numel() for g in groups for p in g["params"]) == 3 * 5 + sum(
        p.numel() for p in method.separation.parameters()
    )
    mlp = method.separation.regressors["selfsimilarity-discriminative"]
    assert (mlp[0].in_features, mlp[0].out_features, mlp[2].out_features) == (8, 512, 8)


def test_evaluated_embedding_is_the_normalised_concatenation_of_the_four():
    method, model, *_ = _setup()
    model.eval()
    x = torch.randn(8, IN_DIM)
    out = model(x)
    head = model.head
    assert isinstance(head, DivaHead) and (head.in_features, head.out_features) == (
        FEATURE_DIM,
        EMBEDDING_DIM,
    )
    features = model.features(x)
    blocks = [F.normalize(head.branches[t](features), dim=-1) for t in TASKS]
    # the original's Combined_discriminative_shared_selfsimilarity_intra-1-1-1-1 with a normalising arch
    torch.testing.assert_close(out, F.normalize(torch.cat([1.0 * b for b in blocks], dim=-1), dim=-1))
    torch.testing.assert_close(out, torch.cat(blocks, dim=-1) / 2)
    for task, block in zip(TASKS, blocks, strict=True):
        torch.testing.assert_close(split_embeddings(out)[task], block)


def test_checkpoint_round_trip_restores_the_momentum_encoder_and_queue():
    method, model, labels, data, batches = _setup(momentum=0.5)
    method.start(model, batches)
    with torch.no_grad():
        for p in method.key_encoder.parameters():
            p.add_(torch.randn_like(p))  # an encoder that differs from the model
    state = method.state_dict()
    assert any(k.startswith("key_encoder.") for k in state) and state["queue"].shape == (24, 8)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    # into a started method: loaded as is
    started, other_model, *_ = _setup(momentum=0.5)[:2]
    started.start(other_model, batches)
    started.load_state_dict(state)
    for k, v in started.state_dict().items():
        assert torch.equal(v, state[k]), k

    # into a fresh method (a resumed training: no start): queue and momentum encoder back on resume
    resumed = build_method("diva", num_classes=4, embedding_dim=EMBEDDING_DIM, n_key_batches=3, momentum=0.5)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.queue, state["queue"]) and resumed.key_encoder is None
    assert set(resumed.state_dict()) == set(state)  # a checkpoint before the first step keeps the encoder
    resumed.resume(model)
    for name, key in resumed.key_encoder.named_parameters():
        assert torch.equal(key, state[f"key_encoder.{name}"]), name
    parts = resumed.loss_parts(_batch(model, data[0][0], labels, data[0][1]))
    assert "selfsimilarity" in parts  # the first resumed step is a full DiVA step
    resumed.after_step(model)
    saved = [state[f"key_encoder.{name}"] for name, _ in model.named_parameters()]
    for key, old, p in zip(resumed.key_encoder.parameters(), saved, model.parameters(), strict=True):
        torch.testing.assert_close(key, 0.5 * old + 0.5 * p.detach(), rtol=0, atol=1e-7)
    assert set(resumed.state_dict()) == set(state)


def test_registered_with_the_paper_settings():
    spec = METHODS["diva"]
    defaults = spec.defaults()
    cub = dict(PAPER_SETTINGS["cub200"])
    assert cub.pop("discriminative_weight") == 0.75 and defaults["discriminative_weight"] == 1.0
    assert {k: defaults[k] for k in cub} == cub
    assert (defaults["temperature"], defaults["momentum"], defaults["decorrnet_dim"]) == (0.01, 0.9, 512)
    assert (defaults["beta"], defaults["margin"], defaults["nu"], defaults["loss_lr"]) == (
        1.2,
        0.2,
        0.0,
        5e-4,
    )
    assert all(set(s) <= set(spec.hyperparameters) for s in PAPER_SETTINGS.values())
    assert build_method("diva", num_classes=3, embedding_dim=512).task_dim == 128
    assert Diva.wants_second_view
    with pytest.raises(ValueError, match="divisible by 4"):
        build_method("diva", num_classes=3, embedding_dim=30)


@pytest.fixture(scope="module")
def glyphs(tiny_glyphs):
    from tasks.data import build_dataset

    options = tiny_glyphs | {"faces": ("DejaVuSans", "DejaVuSerif-Bold", "DejaVuSansMono", "DejaVuSans-Bold")}
    return build_dataset("glyphs", **options, num_classes=40)


DEMO_RHOS = {"rho_ssl": 10.0, "rho_shared": 10.0, "rho_intra": 10.0}


def _trial_config(**training):
    from tasks.config import TrialConfig

    return TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "unused", "split": "0"},
            "model": {"backbone": "glyph_cnn", "embedding_dim": 64, "pretrained": False},
            # rho scaled down with the demo's 200x larger learning rate (the separation's pull on the
            # embeddings grows with rho * lr: CUB's 1500 at 1e-5 is about 7.5 at 2e-3)
            "method": {"name": "diva", "hyperparameters": {"n_key_batches": 2} | DEMO_RHOS},
            "training": {
                "epochs": 2,
                "batch_size": 32,
                "samples_per_class": 2,
                "iterations_per_epoch": 10,
                "lr": 2e-3,
                "with_nmi": False,
                "record_test_curve": True,
                "device": "cpu",
                "amp": False,
            }
            | training,
            "fewshot": {"shots": [2], "episodes": 1, "iterations": {2: 5}, "batch_size": 16},
        }
    )


def _split(images):
    from tasks.splits.files import Split

    train, test = list(images.default_train), list(images.default_test)
    by_class = images.indices_by_class()
    episode = {c: [images.image_ids[i] for i in by_class[c][:2]] for c in test}
    return Split(
        id=0,
        key="0",
        fid=0.0,
        train=train,
        test=test,
        split_train=train[:-4],
        split_val=train[-4:],
        episodes={2: [episode]},
    )


def test_trains_on_glyphs_resumes_and_adapts_few_shot(glyphs, tmp_path, monkeypatch):
    from tasks.fewshot import evaluate_fewshot
    from tasks.train import LAST_CHECKPOINT, load_checkpoint, train_model

    torch.set_num_threads(2)
    parts: list[dict[str, float]] = []
    loss_parts = Diva.loss_parts

    def recording(self, batch):
        out = loss_parts(self, batch)
        parts.append({k: v.item() for k, v in out.items()})
        return out

    monkeypatch.setattr(Diva, "loss_parts", recording)
    split = _split(glyphs)
    result = train_model(_trial_config(), glyphs, split, tmp_path / "run")
    assert len(parts) == 20 and all("selfsimilarity" in p for p in parts)
    first = np.mean([p["discriminative"] for p in parts[:5]])
    last = np.mean([p["discriminative"] for p in parts[-5:]])
    assert last < 0.9 * first, (first, last)
    chance = 1 / len(split.test)
    assert result.history[-1]["test/recall@1"] > 4 * chance
    state = load_checkpoint(tmp_path / "run" / LAST_CHECKPOINT)
    assert state["method"]["queue"].shape == (2 * 32, 16)
    assert any(k.startswith("key_encoder.backbone.") for k in state["method"])
    assert not any(k.startswith("key_encoder.") for k in state["model"])

    # a third epoch resumed from the checkpoint: the saved encoder and queue carry on
    parts.clear()
    again = train_model(_trial_config(epochs=3, iterations_per_epoch=3), glyphs, split, tmp_path / "run")
    assert again.resumed_from_epoch == 2 and len(parts) == 3
    assert all("selfsimilarity" in p for p in parts)  # the encoder is back from the first resumed step

    fewshot = evaluate_fewshot(again.model, glyphs, split, _trial_config(), torch.device("cpu"))
    assert fewshot[2]["episodes"] == 1 and 0 <= fewshot[2]["fewshot"]["recall@1"][0] <= 1
