"""The split progressions against a slow, literal transcription of docs/protocol.md section 2."""

import numpy as np
import pytest

from tasks.splits.fid import fid, fid_reference
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings, build_progressions


def _reference_scores(means, train, test):
    mt = sum(means[c] for c in train) / len(train)
    ms = sum(means[c] for c in test) / len(test)
    dist = lambda x, y: float(np.sqrt(((x - y) ** 2).sum()))  # noqa: E731
    return [dist(means[c], ms) - dist(means[c], mt) for c in train], [
        dist(means[c], mt) - dist(means[c], ms) for c in test
    ]


def _reference_picks(means, train, test, k_swaps, history, hist_t, hist_s, harder):
    st, ss = _reference_scores(means, train, test)
    sign = 1 if harder else -1
    order_t = sorted(range(len(train)), key=lambda i: sign * st[i])
    order_s = sorted(range(len(test)), key=lambda j: sign * ss[j])
    pairs = []
    for k in range(k_swaps):
        recent_t = hist_t[max(0, len(hist_t) - history) :] if history else []
        recent_s = hist_s[max(0, len(hist_s) - history) :] if history else []
        i = next(order_t[p] for p in range(k, len(order_t)) if order_t[p] not in recent_t)
        j = next(order_s[p] for p in range(k, len(order_s)) if order_s[p] not in recent_s)
        hist_t.append(i)
        hist_s.append(j)
        pairs.append((i, j))
    return pairs


def _reference_swap_progression(means, names, train, test, n, k, h, harder):
    train, test = list(train), list(test)
    hist_t, hist_s, steps = [], [], []
    for s in range(n):
        steps.append(
            ((1 if harder else -1) * s * k, fid_reference(means[train], means[test]), list(train), list(test))
        )
        for i, j in _reference_picks(means, train, test, k, h, hist_t, hist_s, harder):
            train[i], test[j] = test[j], train[i]
    return steps, train, test


def _reference_removal(means, train, test, n, k, h):
    train, test = list(train), list(test)
    hist_t, hist_s, steps = [], [], []
    for s in range(n):
        before = fid_reference(means[train], means[test])
        steps.append((f"R{s * k}", before, list(train), list(test)))
        pairs = _reference_picks(means, train, test, k, h, hist_t, hist_s, True)
        new_t, new_s = list(train), list(test)
        for i, j in pairs:
            new_t[i], new_s[j] = new_s[j], new_t[i]
        if fid_reference(means[new_t], means[new_s]) >= before:
            drop_t, drop_s = {i for i, _ in pairs}, {j for _, j in pairs}
            # hist_t / hist_s keep the positions as picked (docs/protocol.md section 2: not renumbered,
            # not dropped)
            train = [c for i, c in enumerate(train) if i not in drop_t]
            test = [c for j, c in enumerate(test) if j not in drop_s]
        else:
            train, test = new_t, new_s
        if min(len(train), len(test)) < k + max(h, 2):
            break
    return steps


CONFIG = ProgressionConfig(
    harder=ProgressionSettings(steps=6, swaps_per_step=2, history=3),
    easier=ProgressionSettings(steps=4, swaps_per_step=2, history=5),
    removal=ProgressionSettings(steps=6, swaps_per_step=2, history=3),
)


@pytest.mark.parametrize("dim", [8, 64])  # covariance route (n >= d) and Gram route (n < d)
def test_progressions_match_literal_reference(dim):
    rng = np.random.default_rng(dim)
    names = [f"c{i:02d}" for i in range(24)]
    means = rng.normal(size=(24, dim)) + rng.normal(size=(24, 1)) * rng.normal(size=(1, dim))
    order = rng.permutation(24)
    init_train, init_test = [names[i] for i in order[:12]], [names[i] for i in order[12:]]
    result = build_progressions(means, names, init_train, init_test, CONFIG)

    idx = {n: i for i, n in enumerate(names)}
    t0, s0 = [idx[c] for c in init_train], [idx[c] for c in init_test]
    for name, harder, settings in (("harder", True, CONFIG.harder), ("easier", False, CONFIG.easier)):
        expected, end_t, end_s = _reference_swap_progression(
            means, names, t0, s0, settings.steps, settings.swaps_per_step, settings.history, harder
        )
        if harder:
            removal_start = (end_t, end_s)
        got = result[name]
        assert [s.key for s in got] == [str(key) for key, *_ in expected]
        for step, (_, value, train, test) in zip(got, expected, strict=True):
            assert list(step.train) == [names[c] for c in train]
            assert list(step.test) == [names[c] for c in test]
            assert step.fid == pytest.approx(value, rel=1e-6)

    expected = _reference_removal(means, *removal_start, CONFIG.removal.steps, 2, CONFIG.removal.history)
    got = result["removal"]
    assert [s.key for s in got] == [key for key, *_ in expected]
    assert len(got[-1].train) < len(got[0].train)  # the removal branch was exercised
    for step, (_, value, train, test) in zip(got, expected, strict=True):
        assert list(step.train) == [names[c] for c in train]
        assert list(step.test) == [names[c] for c in test]
        assert step.fid == pytest.approx(value, rel=1e-6)


def test_invariants_on_a_clustered_problem():
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 32)) * 3
    means = np.concatenate([c + rng.normal(size=(15, 32)) for c in centres])
    names = [f"k{i}" for i in range(60)]
    perm = rng.permutation(60)
    result = build_progressions(means, names, [names[i] for i in perm[:30]], [names[i] for i in perm[30:]])
    everything = set(names)
    for progression in ("harder", "easier"):
        for step in result[progression]:
            assert not set(step.train) & set(step.test)
            assert set(step.train) | set(step.test) == everything  # swaps preserve the union
            assert len(step.train) == 30
    previous = everything
    for step in result["removal"]:
        assert not set(step.train) & set(step.test)
        assert set(step.train) | set(step.test) <= previous  # removal only ever shrinks
        previous = set(step.train) | set(step.test)
    for steps in result.values():
        for step in steps[::7]:
            recomputed = fid(
                means[[names.index(c) for c in step.train]], means[[names.index(c) for c in step.test]]
            )
            assert step.fid == pytest.approx(recomputed, rel=1e-9)
    harder, easier = result["harder"], result["easier"]
    assert harder[-1].fid > 3 * harder[0].fid  # on clustered data the harder walk separates the clusters
    assert easier[-1].fid < harder[0].fid
    assert result["removal"][0].fid >= harder[-1].fid * 0.9


def test_bad_partitions_are_refused():
    means = np.eye(6)
    names = list("abcdef")
    with pytest.raises(ValueError, match="overlap"):
        build_progressions(means, names, ["a", "b", "c"], ["c", "d", "e"])
    with pytest.raises(ValueError, match="without features"):
        build_progressions(means, names, ["a", "b", "z"], ["d", "e", "f"])


def _mid_size_means(rng, classes=600, dim=64):
    """Non-negative class means with a decaying low-rank part plus noise, like pooled CNN features."""
    factors = rng.normal(size=(classes, 8)) / np.sqrt(np.arange(1, 9))
    return np.maximum(
        0.5 + 0.3 * factors @ rng.normal(size=(8, dim)) + 0.1 * rng.normal(size=(classes, dim)), 0
    )


def test_mid_size_progressions_are_exact_and_pick_as_the_literal_reference():
    """600 classes, d = 64, K = 20: the covariance route with scatter updates (n >= d). Every recorded
    FID equals the textbook sqrtm value to 1e-6 relative and every class list the literal procedure's."""
    rng = np.random.default_rng(600)
    means = _mid_size_means(rng)
    names = [f"m{i:03d}" for i in range(600)]
    order = rng.permutation(600)
    init_train, init_test = [names[i] for i in order[:300]], [names[i] for i in order[300:]]
    config = ProgressionConfig(
        harder=ProgressionSettings(steps=8, swaps_per_step=20, history=30),
        easier=ProgressionSettings(steps=3, swaps_per_step=20, history=20),
        removal=ProgressionSettings(steps=6, swaps_per_step=20, history=20),
    )
    result = build_progressions(means, names, init_train, init_test, config)
    idx = {n: i for i, n in enumerate(names)}
    t0, s0 = [idx[c] for c in init_train], [idx[c] for c in init_test]
    expected, end_t, end_s = _reference_swap_progression(means, names, t0, s0, 8, 20, 30, True)
    expected_easier, _, _ = _reference_swap_progression(means, names, t0, s0, 3, 20, 20, False)
    expected_removal = _reference_removal(means, end_t, end_s, 6, 20, 20)
    for got, want in (
        (result["harder"], expected),
        (result["easier"], expected_easier),
        (result["removal"], expected_removal),
    ):
        assert len(got) == len(want)
        for step, (_, value, train, test) in zip(got, want, strict=True):
            assert list(step.train) == [names[c] for c in train]
            assert list(step.test) == [names[c] for c in test]
            assert step.fid == pytest.approx(value, rel=1e-6)
    assert result["harder"][-1].fid > 2 * result["harder"][0].fid


def test_partition_fid_after_many_updates_equals_a_fresh_recomputation():
    """A long chain of low-rank updates (swaps, removals, a refresh) against a fresh FID per partition."""
    from tasks.splits.progressions import PartitionFID

    rng = np.random.default_rng(7)
    means = _mid_size_means(rng, classes=300, dim=32) * 10 + 3  # far from the origin: centring matters
    fid_of = PartitionFID(means)
    train, test = np.arange(150), np.arange(150, 300)
    for step in range(90):  # more than REFRESH_AFTER_UPDATES
        i, j = rng.choice(len(train), 7, replace=False), rng.choice(len(test), 7, replace=False)
        train[i], test[j] = test[j], train[i]
        if step % 15 == 14:
            train, test = train[:-2], test[:-3]
        assert fid_of(train, test) == pytest.approx(fid(means[train], means[test]), rel=1e-9)
    assert fid_of(train, test) == pytest.approx(fid_reference(means[train], means[test]), rel=1e-6)


def test_fids_in_a_worker_process_equal_successive_calls_bit_for_bit(monkeypatch):
    """The scatter route (more classes than dimensions) with the cross terms in a worker process gives
    every progression exactly what this process alone gives."""
    import tasks.splits.progressions as progressions

    rng = np.random.default_rng(5)
    means = _mid_size_means(rng, classes=240, dim=24)
    names = [f"c{i}" for i in range(240)]
    config = ProgressionConfig(
        harder=ProgressionSettings(steps=9, swaps_per_step=6, history=4),
        easier=ProgressionSettings(steps=5, swaps_per_step=6, history=4),
        removal=ProgressionSettings(steps=4, swaps_per_step=3, history=4),
    )
    built = {}
    for workers in (0, 1):
        monkeypatch.setattr(progressions, "FID_WORKERS", workers)
        result = build_progressions(means, names, names[:120], names[120:], config)
        built[workers] = {name: [s.as_dict() for s in steps] for name, steps in result.items()}
    assert built[1] == built[0]
    assert len(built[1]["harder"]) == 9 and len(built[1]["easier"]) == 5


def test_scores_are_bit_identical_to_the_literal_norm_expressions():
    from tasks.splits.progressions import shift_scores

    rng = np.random.default_rng(3)
    means = np.abs(rng.normal(size=(1000, 300)))  # more rows than one scoring block
    train, test = rng.permutation(1000)[:613], rng.permutation(1000)[613:]
    t, s = means[train], means[test]
    mt, ms = t.mean(axis=0), s.mean(axis=0)
    got_t, got_s = shift_scores(means, train, test)
    assert np.array_equal(got_t, np.linalg.norm(t - ms, axis=1) - np.linalg.norm(t - mt, axis=1))
    assert np.array_equal(got_s, np.linalg.norm(s - mt, axis=1) - np.linalg.norm(s - ms, axis=1))


@pytest.mark.parametrize("history", [0, 1, 7, 40])
def test_swap_walk_picks_as_the_literal_walk(history):
    from tasks.splits.progressions import _SwapPicker

    rng = np.random.default_rng(history)
    picker = _SwapPicker(history)
    hist_t, hist_s = [], []
    n_t, n_s = 60, 50
    for _ in range(12):
        order_t, order_s = rng.permutation(n_t), rng.permutation(n_s)
        for k in range(5):
            recent_t = set(hist_t[-history:]) if history else set()
            recent_s = set(hist_s[-history:]) if history else set()
            want_t = next(int(order_t[p]) for p in range(k, n_t) if order_t[p] not in recent_t)
            want_s = next(int(order_s[p]) for p in range(k, n_s) if order_s[p] not in recent_s)
            hist_t.append(want_t)
            hist_s.append(want_s)
            assert picker.pick(order_t, order_s, k) == (want_t, want_s)
        n_t, n_s = n_t - 2, n_s - 1  # shrinking lists, as after removals: old positions stay in the history
