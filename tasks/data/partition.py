"""The initial train/test class partition of a dataset (its default split, where the progressions start).

Every split progression starts from the dataset's default split (docs/protocol.md sections 2 and 4).
The paper datasets define it (sorted classes, the first half train); a user's dataset chooses it with
these options, shared by the ``imagefolder``, ``csv``, ``cub200`` and ``cars196`` builders:

- ``partition: sorted`` (default): the first ``train_fraction`` of the sorted class names are train;
- ``partition: random``: a random ``train_fraction`` of the classes, drawn with ``partition_seed``;
- ``train_classes`` and/or ``test_classes``: given lists, inline (a list of class names) or a text file
  (one class name per line; blank lines and ``#`` comments ignored). With one list the other side is
  every remaining class; with both they must cover every class.

Each side is in sorted order except a given list, which keeps its own order (a progression's swap
positions follow the order, so a partition ported from elsewhere reproduces its walk).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tasks.data.base import DatasetError

PARTITIONS = ("sorted", "random")
ClassList = Sequence[str] | str | Path


def train_count(name: str, classes: int, train_fraction: float) -> int:
    """How many classes ``train_fraction`` puts in train: rounded, at least one class on each side."""
    if not 0 < train_fraction < 1:
        raise DatasetError(f"{name}: train_fraction must lie strictly between 0 and 1, got {train_fraction}")
    return min(max(round(train_fraction * classes), 1), classes - 1)


def read_class_list(name: str, option: str, value: ClassList) -> list[str]:
    """An inline list of class names, or the names in a text file (one per line)."""
    if isinstance(value, str | Path):
        path = Path(value).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except OSError as err:
            raise DatasetError(
                f"{name}: option {option}: cannot read the class list {path} ({err.strerror or err}); give a "
                "text file with one class name per line, or an inline list of class names"
            ) from None
        names = [line.strip() for line in lines]
        names = [n for n in names if n and not n.startswith("#")]
        where = f"{option} ({path})"
    else:
        names, where = [str(n) for n in value], option
    if not names:
        raise DatasetError(f"{name}: option {where} lists no classes")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        raise DatasetError(f"{name}: option {where} lists classes more than once: {sorted(set(twice))[:5]}")
    return names


def _check_known(name: str, where: str, given: list[str], classes: Sequence[str]) -> None:
    known = set(classes)
    unknown = [c for c in given if c not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], classes, n=1, cutoff=0.6)
        hint = f" ({unknown[0]!r}: did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(
            f"{name}: option {where} names {len(unknown)} classes the dataset does not hold, e.g. "
            f"{unknown[:5]}{hint}; it has {len(classes)} classes, e.g. {list(classes[:5])}"
        )


def initial_partition(
    name: str,
    classes: Sequence[str],
    *,
    train_fraction: float = 0.5,
    partition: str | None = None,
    partition_seed: int = 0,
    train_classes: ClassList | None = None,
    test_classes: ClassList | None = None,
    num_train: int | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The default split's ``(train, test)`` class names over ``classes`` (see the module docstring).

    ``num_train`` (the paper datasets' ``num_train_classes``) replaces ``train_fraction`` as the train
    count of the ``sorted`` and ``random`` partitions. The two sides are disjoint, cover every class and
    are each non-empty.
    """
    names = sorted(set(classes))
    if len(names) < 2:
        raise DatasetError(
            f"{name}: found {len(names)} class(es); a train/test partition needs at least 2 classes"
        )
    given = {
        o: v for o, v in (("train_classes", train_classes), ("test_classes", test_classes)) if v is not None
    }
    if given:
        if partition is not None:
            raise DatasetError(
                f"{name}: give either partition ({partition!r}) or the lists {' and '.join(given)}, not both"
            )
        return _given_partition(name, names, given)
    partition = partition or "sorted"
    if partition not in PARTITIONS:
        close = difflib.get_close_matches(str(partition), PARTITIONS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(
            f"{name}: unknown partition {partition!r}{hint} (allowed: {', '.join(PARTITIONS)}, or give "
            "train_classes / test_classes)"
        )
    count = num_train if num_train is not None else train_count(name, len(names), train_fraction)
    if partition == "sorted":
        return tuple(names[:count]), tuple(names[count:])
    chosen = np.random.default_rng(partition_seed).permutation(len(names))[:count]
    in_train = np.zeros(len(names), dtype=bool)
    in_train[chosen] = True
    return (
        tuple(n for n, t in zip(names, in_train, strict=True) if t),
        tuple(n for n, t in zip(names, in_train, strict=True) if not t),
    )


def _given_partition(
    name: str, names: list[str], given: dict[str, ClassList]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lists = {option: read_class_list(name, option, value) for option, value in given.items()}
    for option, listed in lists.items():
        _check_known(name, option, listed, names)
    train, test = lists.get("train_classes"), lists.get("test_classes")
    if train is not None and test is not None:
        both = sorted(set(train) & set(test))
        if both:
            raise DatasetError(f"{name}: train_classes and test_classes share classes {both[:5]}")
        left = [c for c in names if c not in set(train) | set(test)]
        if left:
            raise DatasetError(
                f"{name}: {len(left)} classes are in neither train_classes nor test_classes, e.g. "
                f"{left[:5]}; list every class on one side, or give only one list (the other side is the rest)"
            )
    elif train is not None:
        test = [c for c in names if c not in set(train)]
    else:
        train = [c for c in names if c not in set(test)]
    for side, listed in (("train", train), ("test", test)):
        if not listed:
            raise DatasetError(f"{name}: the given lists leave no {side} class; each side needs one at least")
    return tuple(train), tuple(test)
