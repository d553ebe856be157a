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


def test_scatter_route_matches_textbook_and_an_exchange_of_equal_vectors_is_exact():
    from tasks.splits.fid import SubsetScatter, fid_from_scatter, scatter_lower

    rng = np.random.default_rng(11)
    rows = rng.normal(size=(200, 24)) @ rng.normal(size=(24, 24)) + 0.5
    rows[150] = rows[20]  # class 150 (not in the subset) has the same vector as class 20 (in it)
    a, b = rows[:100], rows[100:]
    value = fid_from_scatter(a.sum(0), scatter_lower(a), 100, b.sum(0), scatter_lower(b), 100)
    assert value == pytest.approx(fid_reference(a, b), rel=1e-6)

    mask = np.zeros(200, dtype=bool)
    mask[:100] = True
    tracked = SubsetScatter(rows, mask)
    before = (tracked.total.copy(), tracked.scatter.copy())
    mask[20], mask[150] = False, True
    tracked.move_to(mask)
    assert tracked.updates == 1
    assert np.array_equal(tracked.total, before[0]) and np.array_equal(tracked.scatter, before[1])
    members = rows[mask]
    assert np.allclose(np.tril(tracked.scatter), np.tril(members.T @ members), rtol=1e-12, atol=1e-9)
