"""Study entries with names of their own (``{name: birds, kind: imagefolder}``): validation, the split
folder, the trials' data config and the names results, failed-trial rows and the dashboard use."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from study.expand import DatasetPlan, evaluation_trials, tuning_base
from study.spec import SpecError, load_spec
from study.splitfiles import split_file
from tasks.data import build_dataset
from tasks.splits import features
from tasks.splits.features import ClassFeatures
from tests.study.test_spec import BASE, spec_error

CLASSES = [f"k{i:02d}" for i in range(16)]


def _tree(folder: Path, tone: int) -> Path:
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True)
        for k in range(5):
            Image.new("RGB", (8, 8), (tone, 10 * c, 40 * k)).save(folder / name / f"{k}.png")
    return folder


def _csv(folder: Path) -> Path:
    _tree(folder / "img", 200)
    rows = ["path,label,side"] + [
        f"img/{name}/{k}.png,{name},{'train' if c % 2 else 'test'}"
        for c, name in enumerate(CLASSES)
        for k in range(5)
    ]
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return folder / "list.csv"


@pytest.fixture
def two_entries(tmp_path: Path) -> dict:
    raw = copy.deepcopy(BASE)
    raw["datasets"] = [
        {"name": "birds", "kind": "imagefolder", "root": str(_tree(tmp_path / "birds", 0))},
        {
            "name": "cars",
            "kind": "csv",
            "root": str(_csv(tmp_path / "cars")),
            "options": {"partition": "random", "partition_seed": 2},
        },
    ]
    raw["storage"] = {"root": str(tmp_path / "study")}
    return raw


def test_existing_entries_keep_their_meaning() -> None:
    spec = load_spec(copy.deepcopy(BASE))
    entry = spec.datasets[0]
    assert entry.kind is None and entry.dataset == "glyphs" and entry.name == "glyphs"
    assert entry.loader_options() == {} and entry.builder_options() == {}
    config = tuning_base(spec, DatasetPlan(entry, Path("/s.json"), (), _split()), spec.methods[0]).config
    assert config.data.dataset == "glyphs" and "name" not in config.data.options  # identities unchanged
    assert config.data.dataset_name == "glyphs"


def _split():
    from tasks.splits.files import Split

    return Split(
        id=1,
        key="0",
        progression="harder",
        fid=1.0,
        train=["a", "b"],
        test=["c"],
        split_train=["a"],
        split_val=["b"],
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "birds"}, r"datasets.0.name: dataset: unknown name 'birds'.*set kind: to one of them"),
        (
            {"name": "birds", "kind": "imagefoldr"},
            r"datasets.0.kind: dataset: unknown name 'imagefoldr'; did you mean 'imagefolder'",
        ),
        (
            {"name": "my birds", "kind": "imagefolder"},
            r"datasets.0.name: 'my birds': an entry's name names its split folder",
        ),
        (
            {"name": "cub200", "kind": "imagefolder"},
            r"'cub200' is the registered dataset cub200; give this imagefolder entry another name",
        ),
        (
            {"name": "products", "kind": "sop"},
            r"dataset 'sop' takes no name of its own .*call it 'sop'",
        ),
        (
            {"name": "birds", "kind": "imagefolder", "options": {"name": "x"}},
            r"options.name: the entry's own name key names it",
        ),
        (
            {"name": "birds", "kind": "csv", "options": {"num_classes": 3}},
            r"options: dataset 'csv' option: unknown name 'num_classes'",
        ),
    ],
)
def test_bad_entries_name_the_field(entry: dict, message: str) -> None:
    import re

    assert re.search(message, spec_error({"datasets": [entry]}))


def test_two_folders_under_their_own_names(two_entries: dict, tmp_path: Path) -> None:
    two_entries["datasets"].append(
        {"name": "birds", "kind": "csv", "root": two_entries["datasets"][1]["root"]}
    )
    with pytest.raises(SpecError, match=r"datasets: duplicate entries in \['birds', 'cars', 'birds'\]"):
        load_spec(two_entries)
    two_entries["datasets"].pop()
    listed = tmp_path / "train.txt"
    listed.write_text("k00\nk01\n")
    two_entries["datasets"][0]["options"] = {"train_classes": "train.txt"}
    spec = load_spec(two_entries)
    assert spec.datasets[0].options["train_classes"] == str(Path("train.txt").resolve())  # made absolute
    assert [d.dataset for d in spec.datasets] == ["imagefolder", "csv"]
    assert spec.datasets[1].loader_options() == {"partition": "random", "partition_seed": 2, "name": "cars"}


def test_names_reach_split_folders_trials_results_and_dashboard(two_entries: dict, monkeypatch) -> None:
    def stub(images, *args, **kwargs):
        means = np.random.default_rng(len(images.name)).normal(size=(len(images.classes), 6))
        return ClassFeatures.from_means(sorted(images.classes), means, "stub")

    monkeypatch.setattr(features, "class_mean_features", stub)
    spec = load_spec(two_entries)
    plans = []
    for entry in spec.datasets:
        path = split_file(entry, spec.shots, spec.study_dir)
        assert path == spec.study_dir / "splits" / entry.name / "splits.json"
        plans.append(DatasetPlan.load(entry, path, spec))
    trials = evaluation_trials(spec, plans, {})
    assert {t.config.data.dataset_name for t in trials} == {"birds", "cars"}
    assert {t.config.data.dataset for t in trials} == {"imagefolder", "csv"}
    assert trials[0].label.startswith("birds/")

    for trial in (trials[0], trials[-1]):  # what a trial builds, from its config alone
        data = trial.config.data
        images = build_dataset(data.dataset, data.root, **data.options)
        assert images.name == data.dataset_name
    cars = build_dataset("csv", spec.datasets[1].root, **spec.datasets[1].loader_options())
    assert cars.default_train != tuple(CLASSES[1::2])  # the random partition, not the side column

    from study.recording import failed_record

    assert failed_record(trials[-1], "boom").identity.dataset == "cars"  # a failed trial's row

    from dashboards.projection import study_datasets
    from study.projection import write_split_projection

    for entry in spec.datasets:  # what the driver writes when it reads a split file
        write_split_projection(
            spec.study_dir, entry.name, spec.study_dir / "splits" / entry.name / "splits.json"
        )
    assert study_datasets(spec.study_dir) == ["birds", "cars"]  # the dashboard finds each under its name


def test_the_readme_datasets_example_is_a_valid_spec() -> None:
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Datasets", 1)[1].split("\n## ", 1)[0]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    spec = load_spec({**copy.deepcopy(BASE), **example})
    assert [(d.name, d.dataset) for d in spec.datasets] == [
        ("birds", "imagefolder"),
        ("shoes", "csv"),
        ("cub200", "cub200"),
    ]
