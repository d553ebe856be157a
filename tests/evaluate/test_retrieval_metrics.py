import numpy as np
import pytest
import torch
from evaluate_reference import reference_metrics
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from tasks.evaluate import retrieval_metrics

KS = (1, 2, 4, 8)


def _assert_metrics(got: dict[str, float], expected: dict[str, float]) -> None:
    assert set(expected) <= set(got)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("seed", range(3))
def test_random_embeddings_with_singletons(metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    labels = rng.integers(0, 25, 80)  # a few classes of one image
    got = retrieval_metrics(x, labels, KS, metric=metric, with_nmi=False)
    _assert_metrics(got, reference_metrics(x, labels, KS, metric))
    assert "nmi" not in got


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_ties_duplicates_and_string_labels(metric: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-1, 2, size=(60, 3)).astype(np.float32)
    x[10:15] = x[3]  # exact duplicates of a query, several of them same-class
    labels = np.array([f"class-{c}" for c in rng.integers(0, 12, 60)])
    labels[10:13] = labels[3]
    got = retrieval_metrics(x, labels.tolist(), (1, 3, 100), metric=metric, with_nmi=False)
    _assert_metrics(got, reference_metrics(x, labels, (1, 3, 100), metric))


def test_tensor_that_requires_grad() -> None:
    x = torch.randn(12, 3, requires_grad=True)
    labels = np.arange(12) % 4
    got = retrieval_metrics(x, labels, (1,), with_nmi=False)
    _assert_metrics(got, reference_metrics(x.detach().numpy(), labels, (1,)))


def test_cutoff_1000_and_a_class_larger_than_1000() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1100, 2)).astype(np.float32)
    labels = np.concatenate([np.zeros(1040, np.int64), rng.integers(1, 9, 60)])
    got = retrieval_metrics(torch.from_numpy(x), labels, (1, 5), with_nmi=False, device="cpu")
    _assert_metrics(got, reference_metrics(x, labels, (1, 5)))


def test_perfect_embedding() -> None:
    labels = np.repeat(np.arange(5), 4)
    x = np.eye(5, dtype=np.float32)[labels]
    got = retrieval_metrics(x, labels, (1,))
    assert got["recall@1"] == 1.0 and got["map@r"] == 1.0 and got["nmi"] == pytest.approx(1.0)
    assert got["map@1000"] == pytest.approx(3 / 4)  # divided by the class size, query included


@pytest.mark.parametrize("singletons", [False, True])
def test_matches_pytorch_metric_learning(singletons: bool) -> None:
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(30), 5)
    if singletons:
        labels = np.concatenate([labels, 100 + np.arange(6)])
    x = rng.normal(size=(30, 16))[labels % 30] + 0.9 * rng.normal(size=(len(labels), 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    pml = calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))
    ours = retrieval_metrics(x, labels, (1,), with_nmi=False)
    np.testing.assert_allclose(ours["map@r"], pml["mean_average_precision_at_r"], atol=1e-12)
    # PML leaves queries without positives out of precision_at_1; Recall@1 counts them as misses
    n_lone = 6 if singletons else 0
    np.testing.assert_allclose(
        ours["recall@1"] * len(labels) / (len(labels) - n_lone), pml["precision_at_1"], atol=1e-12
    )


def test_nmi_is_seeded() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 10)
    x = rng.normal(size=(8, 5))[labels] + 0.5 * rng.normal(size=(80, 5))
    a = retrieval_metrics(x, labels, seed=1)["nmi"]
    assert a == retrieval_metrics(x, labels, seed=1)["nmi"]
    assert 0.0 < a <= 1.0


@pytest.mark.parametrize(
    ("embeddings", "labels", "kwargs", "match"),
    [
        (np.zeros((4, 2)), [0, 0, 1], {}, "labels must have shape"),
        (np.zeros(4), [0, 0, 1, 1], {}, r"\(n, d\)"),
        (np.array([[0.0, 1.0], [np.inf, 0.0]]), [0, 1], {}, "non-finite"),
        (np.zeros((4, 2)), [0, 0, 1, 1], {"ks": ()}, "ks"),
        (np.zeros((4, 2)), [0, 0, 1, 1], {"ks": (0,)}, "ks"),
        (np.zeros((4, 2)), [0, 0, 1, 1], {"metric": "cos"}, "metric"),
    ],
)
def test_bad_input(embeddings, labels, kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(embeddings, labels, with_nmi=False, **kwargs)
