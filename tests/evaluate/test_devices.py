"""One code path on every device: the GPU's (torch products, torch comparisons, no numpy) run on the CPU
here equals the CPU's (numpy kernels) and the slow reference; on a machine with CUDA, CUDA equals both."""

import numpy as np
import pytest
import torch
from evaluate_reference import reference_metrics

from tasks.evaluate import ranks, retrieval_metrics

KS = (1, 2, 4, 8)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _data(seed: int, n: int = 300, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n // 5, n)  # singletons and classes of up to ~12
    x = rng.normal(size=(n // 5, d))[labels] + rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.fixture
def gpu_code_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code a GPU runs (torch products and comparisons, no background thread), on the CPU."""
    monkeypatch.setattr(ranks, "_numpy_kernels", lambda device: False)


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("block", [7, 64, None])
def test_gpu_code_path_on_the_cpu_equals_the_cpu_path(metric: str, block, gpu_code_path) -> None:
    x, labels = _data(0)
    codes = np.unique(labels, return_inverse=True)[1]
    torch_path = ranks.positive_ranks(torch.from_numpy(x), codes, 1000, metric=metric, block=block)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ranks, "_numpy_kernels", lambda device: True)
        numpy_path = ranks.positive_ranks(torch.from_numpy(x), codes, 1000, metric=metric, block=block)
    for field in ("offsets", "ranks", "depth"):
        assert torch.equal(getattr(torch_path, field), getattr(numpy_path, field)), field


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_gpu_code_path_on_the_cpu_matches_the_reference(metric: str, gpu_code_path) -> None:
    x, labels = _data(1, n=120, d=4)
    got = retrieval_metrics(x, labels, KS, metric=metric, with_nmi=False, device="cpu")
    expected = reference_metrics(x, labels, KS, metric)
    assert got == pytest.approx(expected, abs=1e-12)


def test_metrics_on_the_embeddings_device_by_default() -> None:
    x, labels = _data(2)
    on_cpu = retrieval_metrics(torch.from_numpy(x), labels, KS, with_nmi=False)
    assert on_cpu == retrieval_metrics(x, labels, KS, with_nmi=False, device="cpu")


@CUDA
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_cuda_equals_cpu(metric: str) -> None:
    x, labels = _data(3, n=5000, d=32)
    cpu = retrieval_metrics(x, labels, KS, metric=metric, with_nmi=False, device="cpu")
    cuda = retrieval_metrics(x, labels, KS, metric=metric, with_nmi=False, device="cuda")
    assert cuda == pytest.approx(cpu, abs=1e-12)
    tensor = retrieval_metrics(torch.from_numpy(x).cuda(), labels, KS, metric=metric, with_nmi=False)
    assert tensor == pytest.approx(cpu, abs=1e-12)


@CUDA
def test_cuda_ties_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(-1, 2, size=(60, 3)).astype(np.float32)  # many exact ties
    labels = rng.integers(0, 12, 60)
    got = retrieval_metrics(x, labels, (1, 3, 100), with_nmi=False, device="cuda")
    assert got == pytest.approx(reference_metrics(x, labels, (1, 3, 100)), abs=1e-12)


@CUDA
def test_cuda_nmi() -> None:
    x, labels = _data(4)
    nmi = retrieval_metrics(x, labels, (1,), device="cuda")["nmi"]
    assert 0.0 < nmi <= 1.0
