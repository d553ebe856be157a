"""Few-shot episodes against their invariants (docs/protocol.md section 5): per-image and whole-class
support."""

import numpy as np
import pytest

from tasks.splits.episodes import few_shot_episodes, has_support, is_whole_class, whole_class_episodes

CLASSES = [f"c{i:02d}" for i in range(30)]
IMAGES = {c: [f"{c}/{j}.jpg" for j in range(2 + i % 5)] for i, c in enumerate(CLASSES)}  # 2-6 images


@pytest.mark.parametrize("shots", [1, 2, 3])
def test_whole_class_support_is_the_shortest_prefix_reaching_the_labelling_budget(shots):
    test = CLASSES[5:]
    budget = shots * len(test)
    episodes, left_out = whole_class_episodes(IMAGES, test, shots, episodes=6, seed=3)
    assert left_out == [] and len(episodes) == 6
    for episode in episodes:
        assert is_whole_class(episode) and has_support(episode)
        assert set(episode) <= set(test) and len(set(episode)) == len(episode)
        support_images = sum(len(IMAGES[c]) for c in episode)
        assert support_images >= budget
        # minimal: the support without its last-drawn class falls below the budget, so without its
        # largest class it does too
        assert support_images - max(len(IMAGES[c]) for c in episode) < budget
        assert len(set(test) - set(episode)) >= 2  # queries: the other test classes
    assert len({tuple(e) for e in episodes}) > 1  # episodes differ
    again, _ = whole_class_episodes(IMAGES, test, shots, episodes=6, seed=3)
    assert again == episodes  # seeded


def test_whole_class_budget_beyond_the_test_images_is_refused_with_the_numbers():
    total = sum(len(IMAGES[c]) for c in CLASSES)
    with pytest.raises(
        ValueError,
        match=rf"need {10 * 30} support images .* hold {total} images; lower the shot count to at most 3$",
    ):
        whole_class_episodes(IMAGES, CLASSES, 10, episodes=1, seed=0)


def test_per_image_support_leaves_two_queries_in_every_class_and_reports_small_ones():
    episodes, small = few_shot_episodes(IMAGES, CLASSES, 3, episodes=4, seed=0)
    assert small and small == sorted(c for c in CLASSES if len(IMAGES[c]) < 3 + 2)
    for episode in episodes:
        assert not is_whole_class(episode) and has_support(episode)
        assert set(episode) == set(CLASSES) - set(small)
        for c, files in episode.items():
            assert len(files) == 3 and set(files) < set(IMAGES[c])
    assert not has_support({c: [] for c in CLASSES}) and not has_support([])


def test_support_matches_the_budget_in_expectation_not_only_at_the_boundary():
    test = CLASSES
    episodes, _ = whole_class_episodes(IMAGES, test, 2, episodes=50, seed=0)
    mean_images = np.mean([sum(len(IMAGES[c]) for c in e) for e in episodes])
    assert 2 * len(test) <= mean_images < 2 * len(test) + max(len(v) for v in IMAGES.values())


@pytest.mark.parametrize(
    ("images_per_class", "expected_classes"),
    [(4, 5), (3, 7), (5, 4)],  # budget 2 x 10 = 20 images: 5 x 4 = 20 exactly; 7 x 3 = 21; 4 x 5 = 20 exactly
)
def test_whole_class_support_stops_at_the_class_that_meets_the_budget(images_per_class, expected_classes):
    """Equal class sizes make every shuffle's prefix sums the same, so the count is known by hand; when a
    prefix holds exactly the budget, that prefix is the support, not one class more."""
    classes = [f"k{i}" for i in range(10)]
    images = {c: [f"{c}/{j}.jpg" for j in range(images_per_class)] for c in classes}
    episodes, _ = whole_class_episodes(images, classes, 2, episodes=8, seed=1)
    assert [len(e) for e in episodes] == [expected_classes] * 8
