import pickle
from pathlib import Path

import numpy as np
import pytest

from tasks.splits.build import build_split_file, write_split_outputs
from tasks.splits.files import SplitFileError, read_split_file
from tasks.splits.progressions import ProgressionConfig, ProgressionSettings

REAL_CARS_PICKLE = Path(__file__).resolve().parents[3] / "shared" / "oodml" / "cars196_splits.pkl"

SMALL = ProgressionConfig(
    harder=ProgressionSettings(steps=8, swaps_per_step=2, history=3),
    easier=ProgressionSettings(steps=4, swaps_per_step=2, history=3),
    removal=ProgressionSettings(steps=6, swaps_per_step=2, history=3),
)


@pytest.fixture
def split_file():
    rng = np.random.default_rng(0)
    names = [f"class {i:02d}" for i in range(40)]
    means = rng.normal(size=(40, 24)) + np.linspace(0, 2, 40)[:, None]
    images = {c: [f"{c}/img{j}.jpg" for j in range(4 + i % 5)] for i, c in enumerate(names)}
    return build_split_file(
        names,
        means,
        names[::2],
        names[1::2],
        config=SMALL,
        selection=5,
        images_by_class=images,
        shots=(2, 5),
        episodes=3,
        seed=1,
        provenance={"dataset": "synthetic"},
    )


def test_built_file_has_progressions_selection_divisions_and_episodes(split_file):
    assert set(split_file.progressions) == {"harder", "easier", "removal"}
    assert len(split_file.splits) == 5
    assert "0" in [s.key for s in split_file.splits]  # the default split is always selected
    assert [s.fid for s in split_file.splits] == sorted(s.fid for s in split_file.splits)
    for split in split_file.splits:
        assert len(split.split_val) == int(np.ceil(len(split.train) / 4))
        assert sorted(split.split_train + split.split_val) == sorted(split.train)
        assert len(split.episodes[2]) == 3
        for episode in split.episodes[2]:
            assert all(len(files) == 2 for files in episode.values())
        # classes with 4..8 images: those with <= 5 cannot give 5 supports and a query
        small = split.too_small[5]
        assert small and all(c in split.test for c in small)
        assert not set(small) & set(split.episodes[5][0])


def test_json_and_pickle_round_trip(split_file, tmp_path):
    json_path, pkl_path = write_split_outputs(split_file, tmp_path)
    assert read_split_file(json_path) == split_file
    from_pickle = read_split_file(pkl_path)
    for ours, theirs in zip(split_file.splits, from_pickle.splits, strict=True):
        assert (theirs.train, theirs.test, theirs.fid) == (ours.train, ours.test, ours.fid)
        assert (theirs.split_train, theirs.split_val) == (ours.split_train, ours.split_val)
        first = {c: [Path(f).name for f in files] for c, files in ours.episodes[2][0].items()}
        assert theirs.episodes[2][0] == first  # the ooDML layout keeps support file base names


def test_pickle_written_in_the_ooDML_layout(split_file, tmp_path):
    _, pkl_path = write_split_outputs(split_file, tmp_path)
    raw = pickle.loads(pkl_path.read_bytes())  # our own file, just written: trusted
    entry = raw[1]
    assert set(entry) == {"train", "test", "fid", "split_train", "split_val", "test_episodes"}
    assert isinstance(entry["train"][0], np.str_) and isinstance(entry["fid"], np.float64)
    assert set(entry["test_episodes"]) == {2, 5} and set(entry["test_episodes"][2]) == {0, 1, 2}


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_asking_for_other_globals_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({1: {"train": _Exploit(marker), "test": [], "fid": 1.0}}))
    with pytest.raises(SplitFileError, match=r"refused.*pathlib"):
        read_split_file(evil)
    assert not marker.exists()


def test_malformed_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({1: {"train": ["a"], "test": ["a"], "fid": 1.0}}))
    with pytest.raises(SplitFileError, match="share classes"):
        read_split_file(bad)
    with pytest.raises(SplitFileError, match="not found"):
        read_split_file(tmp_path / "missing.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"format": "something else"}')
    with pytest.raises(SplitFileError, match="not an oodml split file"):
        read_split_file(wrong)


@pytest.mark.skipif(not REAL_CARS_PICKLE.is_file(), reason="../shared/oodml/cars196_splits.pkl not present")
def test_real_ooDML_cars196_file_loads():
    split_file = read_split_file(REAL_CARS_PICKLE)
    assert [round(s.fid, 2) for s in split_file.splits] == [
        8.59,
        14.33,
        32.18,
        43.58,
        63.29,
        86.12,
        101.17,
        123.03,
    ]
    assert [len(s.train) for s in split_file.splits] == [98] * 5 + [86, 74, 62]
    assert (len(split_file.splits[0].split_train), len(split_file.splits[0].split_val)) == (73, 25)
    assert {shots: len(e) for shots, e in split_file.splits[0].episodes.items()} == {2: 10, 5: 10, 10: 10}


def test_even_selection_spans_the_range_and_keeps_the_default():
    from tasks.splits.progressions import SplitStep
    from tasks.splits.selection import select_evenly

    fids = {"harder": [20.0, 30, 40, 50, 60, 70, 80, 90, 100], "easier": [20.0, 15, 12, 10]}
    progressions = {
        name: [
            SplitStep(name, str((1 if name == "harder" else -1) * i), f, ("a",), ("b",))
            for i, f in enumerate(values)
        ]
        for name, values in fids.items()
    }
    chosen = select_evenly(progressions, 5)
    # default 20, ends 10 and 100, then the max-min picks: 60, then 40 (ties go to the earlier step)
    assert [s.fid for s in chosen] == [10, 20, 40, 60, 100]
    assert {s.key for s in chosen} >= {"0", "-3", "8"}  # default, lowest and highest FID
    assert len(chosen) == 5


def test_whole_class_episodes_round_trip_in_the_ooDML_SOP_layout(tmp_path):
    names = [f"product {i:02d}" for i in range(30)]
    means = np.random.default_rng(0).normal(size=(30, 8))
    images = {c: [f"{c}/img{j}.jpg" for j in range(2 + i % 4)] for i, c in enumerate(names)}
    built = build_split_file(
        names, means, names[:15], names[15:], config=SMALL, selection=3, images_by_class=images,
        shots=(2,), episodes=4, support="classes", seed=0,
    )  # fmt: skip
    json_path, pkl_path = write_split_outputs(built, tmp_path)
    raw = pickle.loads(pkl_path.read_bytes())  # our own file, just written: trusted
    stored = raw[1]["test_episodes"][2][0]
    assert isinstance(stored, list) and all(isinstance(c, np.str_) for c in stored)  # a list of classes
    assert read_split_file(json_path) == built
    assert [s.episodes for s in read_split_file(pkl_path).splits] == [s.episodes for s in built.splits]
    assert built.provenance["support"] == "classes"


def test_whole_class_episode_leaving_fewer_than_two_query_classes_is_refused(tmp_path):
    bad = tmp_path / "bad.pkl"
    test = ["a", "b", "c"]
    bad.write_bytes(
        pickle.dumps(
            {1: {"train": ["x", "y"], "test": test, "fid": 1.0, "test_episodes": {2: {0: ["a", "b"]}}}}
        )
    )
    with pytest.raises(SplitFileError, match="at least 2 query classes"):
        read_split_file(bad)
    bad.write_bytes(
        pickle.dumps({1: {"train": ["x"], "test": test, "fid": 1.0, "test_episodes": {2: {0: 7}}}})
    )
    with pytest.raises(SplitFileError, match="2-shot episode 0: expected"):
        read_split_file(bad)
