import numpy as np
import pytest

from tasks.splits.fid import fid, fid_from_gram, fid_reference


def _sets(rng, na, nb, d, shift=0.3):
    basis = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(na, d)) @ basis + 2.0, rng.normal(size=(nb, d)) @ basis + 2.0 + shift


@pytest.mark.parametrize(
    ("na", "nb", "d"),
    [(12, 9, 64), (40, 40, 256), (3, 2, 5), (60, 50, 16), (30, 34, 64)],  # n < d, n >= d, and n + 0 = d
)
def test_fast_route_matches_textbook_sqrtm(na, nb, d):
    a, b = _sets(np.random.default_rng(na * 1000 + d), na, nb, d)
    assert fid(a, b) == pytest.approx(fid_reference(a, b), rel=1e-6)


def test_identical_sets_have_zero_distance_and_fid_is_symmetric():
    a, b = _sets(np.random.default_rng(1), 20, 30, 48)
    assert abs(fid(a, a)) < 1e-6
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-9)


def test_gram_route_is_translation_and_rotation_invariant():
    rng = np.random.default_rng(2)
    means = rng.normal(size=(30, 100))
    q, _ = np.linalg.qr(rng.normal(size=(100, 100)))
    moved = means @ q + 7.0
    a, b = np.arange(14), np.arange(14, 30)
    gram = means @ means.T
    assert fid_from_gram(gram, a, b, 100) == pytest.approx(fid(moved[a], moved[b]), rel=1e-8)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 2 vectors"):
        fid(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="dimension"):
        fid(np.zeros((3, 4)), np.zeros((3, 5)))
