"""The study specification: validation messages, overrides, split-file checks and trial expansion."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from study.expand import EVAL, TUNE, DatasetPlan, evaluation_trials, tuning_base, with_hyperparameters
from study.lock import StudyLockedError, study_lock
from study.overrides import apply_overrides, parse_assignments
from study.spec import SpecError, load_spec
from tasks.splits.files import Split, SplitFile, write_json

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BASE = {
    "name": "unit",
    "datasets": [{"name": "glyphs", "splits": {"select": 2}}],
    "methods": [{"name": "multisimilarity", "search": {"alpha": [1.0, 4.0]}}, {"name": "triplet"}],
    "model": {"backbone": "glyph_cnn", "embedding_dim": 32, "pretrained": False},
    "training": {"epochs": 1, "batch_size": 16, "samples_per_class": 4},
    "fewshot": {"budgets": [0, 2], "iterations": {2: 5}},
    "seeds": [0, 1],
    "tuning": {"trials": 2},
}


def spec_error(overrides: dict, base: dict = BASE) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(copy.deepcopy(base), overrides)
    return str(caught.value)


@pytest.mark.parametrize("name", ["demo", "cub200", "cars196", "sop"])
def test_shipped_configs_are_valid(name):
    spec = load_spec(CONFIGS / f"{name}.yaml")
    assert spec.study_dir.is_absolute()
    assert spec.methods and spec.fewshot.budgets


def test_demo_is_the_promised_size():
    spec = load_spec(CONFIGS / "demo.yaml")
    assert len(spec.methods) >= 3 and spec.datasets[0].splits.select >= 4
    assert spec.fewshot.budgets == [0, 2, 5] and spec.seeds == [0]
    assert spec.model.backbone == "glyph_cnn" and spec.tuning.trials >= 1


def test_unknown_key_names_field_and_allowed_keys():
    message = spec_error({"training.epoch": 3})
    assert "training.epoch: unknown key" in message
    assert "epochs" in message and "samples_per_class" in message


def test_unknown_key_inside_a_list_entry():
    message = spec_error({"methods.1.hyperparams": {"margin": 0.1}})
    assert (
        "methods.1.hyperparams: unknown key; allowed: fewshot, hyperparameters, model, name, search, training"
        in message
    )


def test_wrong_type_names_field():
    assert "training.epochs" in spec_error({"training.epochs": "many"})
    assert "fewshot.budgets" in spec_error({"fewshot.budgets": "two"})


@pytest.mark.parametrize(
    ("path", "value", "suggestion"),
    [
        ("methods.0.name", "multisimilarty", "multisimilarity"),
        ("model.backbone", "resnet5", "resnet50"),
        ("datasets.0.name", "glyph", "glyphs"),
        ("methods.0.search", {"alpah": [1, 2]}, "alpha"),
        ("methods.1.hyperparameters", {"margn": 0.1}, "margin"),
    ],
)
def test_unknown_names_suggest_the_closest(path, value, suggestion):
    message = spec_error({path: value})
    assert f"did you mean {suggestion!r}" in message
    assert "allowed:" in message or "built in:" in message  # backbones: the built-in ones or any timm model


def test_batch_size_must_be_divisible_by_samples_per_class():
    message = spec_error({"training.batch_size": 18})
    assert "training" in message and "batch_size 18 must be divisible by samples_per_class 4" in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"methods": []}, "methods: List should have at least 1 item"),
        ({"seeds": []}, "seeds: List should have at least 1 item"),
        ({"datasets": []}, "datasets: List should have at least 1 item"),
        ({"fewshot.budgets": []}, "fewshot.budgets: expected distinct shot counts"),
        ({"fewshot.budgets": [0, 5]}, "fewshot.iterations: no entry for budgets [5]"),
        ({"seeds": [1, 1]}, "seeds: duplicate entries"),
        ({"tuning.metric": "test/recall@1"}, "validation classes only"),
        ({"tuning.metric": "val/recall@3"}, "allowed: val/map@1000"),
        ({"tuning.trials": 0}, "tuning.trials is 0"),
        ({"methods.0.search": {"alpha": [4, 1]}}, "empty range"),
        ({"methods.0.hyperparameters": {"alpha": 2.0}}, "both fixed and searched"),
        ({"datasets.0.split_file": "x.json"}, "either split_file"),
        ({"training.epochs": -1}, "training.epochs: at least 0"),
        ({"training.epochs": 0}, "training.epochs is 0 (no training), so tuning ['multisimilarity']"),
    ],
)
def test_impossible_settings_are_refused(overrides, expected):
    assert expected in spec_error(overrides)


def test_search_true_uses_declared_ranges_minus_fixed():
    spec = load_spec(BASE, {"methods.0.search": True, "methods.0.hyperparameters": {"beta": 40.0}})
    space = spec.methods[0].search_space()
    assert set(space) == {"alpha", "base", "epsilon"}
    assert space["alpha"].log and space["alpha"].low == 0.5


def test_search_true_leaves_the_settings_a_method_does_not_declare_tunable():
    s2sd = load_spec(BASE, {"methods.0": {"name": "s2sd", "search": True}}).methods[0].search_space()
    assert {"beta", "rho", "margin", "weight", "feat_weight", "temperature"} <= set(s2sd)
    settings = {"feat_distill", "pool_aggr", "feat_delay", "target_dim1", "head_lr", "loss_lr"}
    assert not settings & set(s2sd)  # switches, sizes and rates that follow training.lr
    diva = load_spec(BASE, {"methods.0": {"name": "diva", "search": True}}).methods[0].search_space()
    assert diva["discriminative_weight"].choices == [1.0, 0.75, 0.5]  # the original's three weightings
    assert not {"decorrnet_dim", "decorrnet_lr", "n_key_batches"} & set(diva)


def test_a_search_may_give_choices_and_the_tuner_picks_among_them():
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from study.tuning import distributions

    entry = {"name": "s2sd", "search": {"pool_aggr": {"choices": [0, 1]}, "weight": [5.0, 50.0]}}
    method = load_spec(BASE, {"methods.0": entry}).methods[0]
    found = distributions(method)
    assert found["pool_aggr"] == CategoricalDistribution([0, 1])  # a declared setting, searched on request
    assert found["weight"] == FloatDistribution(5.0, 50.0)
    assert "2 or more distinct values" in spec_error(
        {"methods.0": {"name": "s2sd", "search": {"weight": {"choices": [5.0]}}}}
    )


def test_overrides_are_yaml_and_reach_nested_fields():
    parsed = parse_assignments(["training.epochs=3", "seeds=[0, 1, 2]", "ray.address=null", "name=x=y"])
    assert parsed == {"training.epochs": 3, "seeds": [0, 1, 2], "ray.address": None, "name": "x=y"}
    raw = apply_overrides(BASE, {"methods.1.search": True, "storage.root": "/tmp/somewhere"})
    assert raw["methods"][1]["search"] is True and raw["storage"]["root"] == "/tmp/somewhere"
    assert "storage" not in BASE and BASE["methods"][1] == {"name": "triplet"}
    spec = load_spec(BASE, ["training.epochs=3", "methods.1.search=true"])
    assert spec.training.epochs == 3 and spec.methods[1].search is True


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [("training.epochs", "expects KEY.PATH=VALUE"), ("methods.7.name=x", "not an index of a list of 2")],
)
def test_bad_overrides(assignment, expected):
    with pytest.raises(ValueError, match=expected):
        load_spec(BASE, [assignment])


def test_unreadable_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="cannot read study specification"):
        load_spec(path)


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(BASE, {"storage.root": "runs/x", "datasets.0.root": "data"})
    assert spec.study_dir == tmp_path / "runs" / "x"
    assert spec.storage.root == str(tmp_path / "runs" / "x") and spec.datasets[0].root == str(
        tmp_path / "data"
    )


def _split(split_id: int, key: str, shots=(2,)) -> Split:
    train, test = [f"c{i}" for i in range(8)], [f"t{i}" for i in range(8)]
    episodes = {s: [{c: [f"{c}/img{j}.png" for j in range(s)] for c in test}] for s in shots}
    return Split(
        id=split_id,
        key=key,
        fid=float(split_id),
        train=train,
        test=test,
        split_train=train[:6],
        split_val=train[6:],
        episodes=episodes,
    )


@pytest.fixture
def split_file(tmp_path) -> Path:
    return write_json(SplitFile(splits=[_split(1, "0"), _split(2, "R3")]), tmp_path / "splits.json")


def _plan(spec, split_file) -> DatasetPlan:
    return DatasetPlan.load(spec.datasets[0], split_file, spec)


def test_split_file_checks(split_file):
    spec = load_spec(BASE, {"datasets.0": {"name": "glyphs", "split_file": str(split_file)}})
    assert [s.key for s in _plan(spec, split_file).evaluated] == ["0", "R3"]
    with pytest.raises(SpecError, match=r"split keys \['R9'\] are not in the split file"):
        _plan(load_spec(BASE, {"datasets.0": {"name": "glyphs", "evaluate": ["R9"]}}), split_file)
    five = load_spec(BASE, {"fewshot.budgets": [0, 5], "fewshot.iterations": {5: 3}})
    with pytest.raises(SpecError, match=r"no few-shot episodes for budgets \[5\].*it has \[2\]"):
        _plan(five, split_file)


def test_expansion_grid_and_stable_identities(split_file, tmp_path):
    spec = load_spec(BASE)
    plan = _plan(spec, split_file)
    tuned = {("glyphs", "multisimilarity"): {"alpha": 3.0}}
    trials = evaluation_trials(spec, [plan], tuned)
    assert len(trials) == 2 * 2 * 2  # methods x splits x seeds
    assert len({t.trial_id for t in trials}) == len(trials)
    assert all(t.stage == EVAL and t.config.fewshot.shots == [2] and t.config.evaluate_test for t in trials)
    ms = [t for t in trials if t.config.method.name == "multisimilarity"]
    assert all(t.tuned == {"alpha": 3.0} and t.config.method.hyperparameters == {"alpha": 3.0} for t in ms)

    again = evaluation_trials(load_spec(copy.deepcopy(BASE)), [_plan(spec, split_file)], dict(tuned))
    assert [t.trial_id for t in again] == [t.trial_id for t in trials]
    moved = shutil.copy(split_file, tmp_path / "elsewhere.json")
    relocated = evaluation_trials(spec, [_plan(spec, moved)], tuned)
    assert [t.trial_id for t in relocated] == [t.trial_id for t in trials]  # content, not location
    other = evaluation_trials(spec, [plan], {("glyphs", "multisimilarity"): {"alpha": 3.5}})
    assert {t.trial_id for t in other} & {t.trial_id for t in trials} == {t.trial_id for t in trials[4:]}
    assert [t.trial_id for t in map(type(trials[0]).from_dict, (t.to_dict() for t in trials))] == [
        t.trial_id for t in trials
    ]


def test_tuning_trials_see_no_test_classes(split_file):
    spec = load_spec(BASE, {"tuning.epochs": 1, "training.epochs": 5})
    base = tuning_base(spec, _plan(spec, split_file), spec.methods[0])
    assert base.stage == TUNE and not base.config.evaluate_test and base.config.fewshot.shots == []
    assert base.config.training.epochs == 1 and base.config.data.split == "0"
    sampled = with_hyperparameters(base, {"alpha": 2.5})
    assert sampled.tuned == {"alpha": 2.5} and sampled.trial_id != base.trial_id


def test_tuning_trials_validate_even_when_the_study_follows_the_paper_protocol(split_file):
    spec = load_spec(BASE, {"training.protocol": "paper", "fewshot.budgets": [0]})
    plan = _plan(spec, split_file)
    assert tuning_base(spec, plan, spec.methods[0]).config.training.protocol == "validated"
    assert {t.config.training.protocol for t in evaluation_trials(spec, [plan], {})} == {"paper"}
    assert "select their base model on validation classes" in spec_error({"training.protocol": "paper"})


def test_method_variants_are_their_own_entries(split_file):
    both = {"methods": [{"name": "multisimilarity"}, {"name": "multisimilarity", "variant": "pml"}]}
    spec = load_spec(BASE, both)
    assert [m.label for m in spec.methods] == ["multisimilarity", "multisimilarity[pml]"]
    trials = evaluation_trials(spec, [_plan(spec, split_file)], {})
    assert {t.config.method.variant for t in trials} == {None, "pml"}
    assert len({t.trial_id for t in trials}) == len(trials)
    assert "variant 'nope'" in spec_error({"methods": [{"name": "multisimilarity", "variant": "nope"}]})
    twice = {"methods": [{"name": "multisimilarity"}, {"name": "multisimilarity", "variant": "original"}]}
    assert "duplicate entries" in spec_error(twice)


def test_second_lock_is_refused(tmp_path):
    with study_lock(tmp_path):
        with pytest.raises(StudyLockedError, match=f"study folder {tmp_path} is in use by oodml run pid"):
            with study_lock(tmp_path):
                pass
    with study_lock(tmp_path):  # released
        pass


def test_saved_spec_round_trips(tmp_path):
    spec = load_spec(CONFIGS / "cub200.yaml", {"storage.root": str(tmp_path)})
    path = tmp_path / "study.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec(path) == spec


def test_import_study_is_light_and_exports_run():
    # A fresh interpreter outside the test tree (pytest's sys.path lets tests/study shadow the package).
    code = (
        "import sys, study; heavy = {'torch', 'ray', 'mlflow'} & set(sys.modules); "
        "assert not heavy, heavy; from study.api import run, resume; "
        "assert study.run is run and study.resume is resume"
    )
    subprocess.run([sys.executable, "-c", code], cwd="/", check=True, timeout=300)


def test_a_methods_own_settings_reach_its_trials_and_their_ids(split_file):
    own = {
        "name": "triplet",
        "model": {"embedding_dim": 16},
        "training": {"batch_size": 8, "warmup_epochs": 1},
        "fewshot": {"iterations": {2: 7}, "method": "triplet"},
    }
    spec = load_spec(copy.deepcopy(BASE), {"methods.1": own})
    trials = evaluation_trials(spec, [_plan(spec, split_file)], {})
    triplet = [t.config for t in trials if t.config.method.name == "triplet"]
    others = [t.config for t in trials if t.config.method.name != "triplet"]
    assert triplet and others
    for c in triplet:
        assert (c.model.embedding_dim, c.training.batch_size, c.training.warmup_epochs) == (16, 8, 1)
        assert (c.fewshot.iterations, c.fewshot.method, c.training.samples_per_class) == (
            {2: 7},
            "triplet",
            4,
        )
    for c in others:  # the study's sections, untouched
        assert (c.model.embedding_dim, c.training.batch_size, c.training.warmup_epochs) == (32, 16, 0)
        assert (c.fewshot.iterations, c.fewshot.method) == ({2: 5}, "margin")
    plain = evaluation_trials(load_spec(copy.deepcopy(BASE)), [_plan(spec, split_file)], {})
    same = {t.trial_id for t in plain if t.config.method.name != "triplet"}
    assert same == {t.trial_id for t in trials if t.config.method.name != "triplet"}
    assert not {t.trial_id for t in plain} & {t.trial_id for t in trials if t.config.method.name == "triplet"}
    tuning = tuning_base(spec, _plan(spec, split_file), spec.methods[1]).config
    assert (tuning.training.batch_size, tuning.model.embedding_dim) == (8, 16)


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ({"training": {"protocol": "paper"}}, "training.protocol: not settable per method"),
        ({"training": {"ks": [1]}}, "training.ks: not settable per method"),
        ({"fewshot": {"episodes": 2}}, "fewshot.episodes: not settable per method"),
        ({"training": {"batch_size": 7}}, "methods.1 (triplet).training: batch_size 7 must be divisible"),
        ({"training": {"epochs": -1}}, "methods.1 (triplet).training: epochs: at least 0"),
        ({"fewshot": {"method": "s2sdd"}}, "methods.1 (triplet).fewshot"),
        ({"fewshot": {"iterations": {5: 3}}}, "methods.1.fewshot.iterations: no entry for budgets [2]"),
        ({"model": {"backbone": "resnet5"}}, "methods.1 (triplet).model.backbone: unknown backbone"),
    ],
)
def test_a_methods_own_settings_are_checked_and_named(own, expected):
    assert expected in spec_error({"methods.1": {"name": "triplet", **own}})


def test_a_misspelt_or_composite_fewshot_method_is_refused_before_anything_runs():
    assert "unknown method 's2sdd'" in spec_error({"fewshot.method": "s2sdd"})
    assert "more than a loss on the embeddings" in spec_error({"fewshot.method": "s2sd"})
