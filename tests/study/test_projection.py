"""The 2-D projection of class means the driver writes for the dashboard: PCA against numpy's own
covariance eigenvectors; UMAP where umap-learn is installed; the projection table's round trip."""

from __future__ import annotations

import numpy as np
import pytest

from study import projection
from study.projection import UMAP_MIN_CLASSES, pca, project, umap_available, write_split_projection
from study.results.projections import projected_datasets, read_projection
from tests.dashboards.synthetic import DATASET, SPLITS, write_split_file


def _blobs(n: int = 40, dim: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, (n // 2, dim)), rng.normal(6, 1, (n - n // 2, dim))])


def test_pca_matches_the_covariance_eigenvectors():
    matrix = _blobs()
    got = pca(matrix)
    values, vectors = np.linalg.eigh(np.cov(matrix, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    expected = (matrix - matrix.mean(axis=0)) @ top
    signs = np.sign(np.sum(got.coords * expected, axis=0))  # an eigenvector's sign is arbitrary
    np.testing.assert_allclose(got.coords * signs, expected, atol=1e-9)
    share = values[::-1] / values.sum()
    assert got.labels == (f"PC1 ({share[0]:.0%})", f"PC2 ({share[1]:.0%})")


def test_pca_with_one_component_draws_a_line():
    got = pca(np.array([[0.0], [2.0], [5.0]]))  # one-dimensional features: no second component
    assert got.coords.shape == (3, 2) and np.all(got.coords[:, 1] == 0) and got.labels[1] == "PC2"


def test_too_few_classes_for_umap_use_pca(monkeypatch):
    monkeypatch.setattr(projection, "umap_2d", lambda matrix: pytest.fail("UMAP on too few classes"))
    assert project(_blobs(UMAP_MIN_CLASSES - 1)).method.endswith("(PCA)")


def test_umap_when_installed_keeps_the_two_groups_apart():
    if not umap_available():
        pytest.skip("umap-learn is not installed (optional: the dashboard then uses PCA)")
    got = project(_blobs())
    assert got.method.startswith("UMAP") and got.labels == ("UMAP 1", "UMAP 2")
    first, second = got.coords[:20], got.coords[20:]
    gap = np.linalg.norm(first.mean(axis=0) - second.mean(axis=0))
    assert gap > 2 * max(first.std(axis=0).max(), second.std(axis=0).max())


def test_projection_table_of_a_split_file(tmp_path):
    write_split_file(tmp_path, SPLITS)
    split_path = tmp_path / "splits" / DATASET / "splits.json"
    path = write_split_projection(tmp_path, DATASET, split_path)
    assert path == tmp_path / "projections" / f"{DATASET}.parquet" and projected_datasets(tmp_path) == [
        DATASET
    ]
    table = read_projection(tmp_path, DATASET)
    rows = table.rows.to_pandas()
    assert sorted(set(rows["split_key"])) == sorted(key for _, key, *_ in SPLITS)  # 4 splits: all shown
    per_split = rows.groupby(["split_key", "side"]).size()
    assert per_split[("R4", "test")] == 16 and per_split[("0", "train")] == 20
    assert table.source == "class_means.npz" and table.method and table.x_label
    assert write_split_projection(tmp_path, DATASET, split_path) == path  # up to date: kept


def test_no_class_means_no_projection_table(tmp_path):
    write_split_file(tmp_path, SPLITS)
    (tmp_path / "splits" / DATASET / "class_means.npz").unlink()
    assert write_split_projection(tmp_path, DATASET, tmp_path / "splits" / DATASET / "splits.json") is None
    assert read_projection(tmp_path, DATASET) is None and projected_datasets(tmp_path) == []
