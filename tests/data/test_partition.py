"""The initial train/test partition options: sorted halves, a seeded random half, given lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.data import DatasetError, build_dataset
from tasks.data.partition import initial_partition
from tests.data.test_folders import write_tree

CLASSES = [f"c{i:02d}" for i in range(20)]


def _invariants(train: tuple[str, ...], test: tuple[str, ...], classes=CLASSES) -> None:
    assert train and test
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(classes)


def test_sorted_is_the_first_fraction_of_sorted_names() -> None:
    train, test = initial_partition("d", CLASSES[::-1])
    assert train == tuple(CLASSES[:10]) and test == tuple(CLASSES[10:])
    train, test = initial_partition("d", CLASSES, train_fraction=0.25)
    assert train == tuple(CLASSES[:5])
    _invariants(train, test)


@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.01, 0.99])
def test_random_is_seeded_disjoint_and_covers_every_class(fraction: float) -> None:
    first = initial_partition("d", CLASSES, partition="random", partition_seed=3, train_fraction=fraction)
    again = initial_partition(
        "d", list(reversed(CLASSES)), partition="random", partition_seed=3, train_fraction=fraction
    )
    _invariants(*first)
    assert first == again  # reproducible, whatever order the classes were found in
    assert len(first[0]) == min(max(round(fraction * 20), 1), 19)
    assert list(first[0]) == sorted(first[0]) and list(first[1]) == sorted(first[1])


def test_random_depends_on_the_seed_and_differs_from_sorted() -> None:
    draws = {initial_partition("d", CLASSES, partition="random", partition_seed=s)[0] for s in range(5)}
    assert len(draws) == 5
    assert tuple(CLASSES[:10]) not in draws


def test_given_lists_inline_and_from_a_file(tmp_path: Path) -> None:
    train, test = initial_partition("d", CLASSES, train_classes=["c05", "c01", "c17"])
    assert train == ("c05", "c01", "c17")  # the given order is kept
    assert test == tuple(c for c in CLASSES if c not in train)
    _invariants(train, test)

    listed = tmp_path / "test.txt"
    listed.write_text("# held-out classes\nc00\n\nc19  \n")
    train, test = initial_partition("d", CLASSES, test_classes=str(listed))
    assert test == ("c00", "c19") and train == tuple(CLASSES[1:19])

    half = CLASSES[:7]
    train, test = initial_partition("d", CLASSES, train_classes=half, test_classes=CLASSES[7:])
    assert (train, test) == (tuple(half), tuple(CLASSES[7:]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"train_classes": ["c01", "c1"]}, r"names 1 classes the dataset does not hold.*'c1': did you mean"),
        ({"train_classes": ["c01", "c01"]}, r"train_classes lists classes more than once: \['c01'\]"),
        ({"train_classes": ["c01"], "test_classes": ["c01", "c02"]}, r"share classes \['c01'\]"),
        (
            {"train_classes": ["c01"], "test_classes": ["c02"]},
            r"18 classes are in neither .*give only one list",
        ),
        ({"train_classes": CLASSES}, r"leave no test class"),
        ({"train_classes": ["c01"], "partition": "random"}, r"either partition \('random'\) or the lists"),
        ({"partition": "randon"}, r"unknown partition 'randon'; did you mean 'random'"),
        ({"train_classes": "/no/such/list.txt"}, r"cannot read the class list /no/such/list.txt"),
        ({"train_fraction": 1.0}, r"train_fraction must lie strictly between 0 and 1"),
    ],
)
def test_bad_partitions_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        initial_partition("d", CLASSES, **options)


def test_one_class_cannot_be_partitioned() -> None:
    with pytest.raises(DatasetError, match="needs at least 2 classes"):
        initial_partition("d", ["only"])


def test_imagefolder_and_cub200_take_the_partition_options(tmp_path: Path) -> None:
    names = [f"{i:03d}.bird" for i in range(8)]
    write_tree(tmp_path / "tree", names, per_class=1)
    default = build_dataset("imagefolder", tmp_path / "tree")
    assert default.default_train == tuple(names[:4])  # unchanged: sorted halves
    shuffled = build_dataset("imagefolder", tmp_path / "tree", partition="random", partition_seed=1)
    assert shuffled == build_dataset("imagefolder", tmp_path / "tree", partition="random", partition_seed=1)
    assert shuffled.default_train != default.default_train
    _invariants(shuffled.default_train, shuffled.default_test, names)
    given = build_dataset("imagefolder", tmp_path / "tree", test_classes=[names[0], names[5]])
    assert given.default_test == (names[0], names[5])

    write_tree(tmp_path / "cub" / "images", names, per_class=1)
    cub = build_dataset("cub200", tmp_path / "cub", num_train_classes=3, partition="random")
    assert len(cub.default_train) == 3
    _invariants(cub.default_train, cub.default_test, names)
    cub = build_dataset("cub200", tmp_path / "cub", train_classes=names[:2])  # no num_train_classes needed
    assert cub.default_train == tuple(names[:2])
