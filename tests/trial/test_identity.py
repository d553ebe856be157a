"""The identity payload (tasks/identity.py): what a trial id depends on, and what it must not.

A trial id must change exactly when a result may: adding a setting with a default, moving a split file,
releasing a new package version, changing an unused adaptation setting or a split's labels and shift
measures must leave it; a setting a trial uses, its split's classes and episodes, or ``IDENTITY_VERSION``
must change it. ``identity_defaults.json`` pins every default a
payload leaves out: changing one changes what existing ids mean, so the test asks for a new version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import create_model

import tasks.identity as identity
from tasks.config import FewShotConfig, TrainingConfig, TrialConfig
from tasks.identity import (
    IDENTITY_VERSION,
    SPLIT_CONTENT,
    SPLIT_DESCRIPTION,
    describe,
    identity_payload,
    semantic_config,
    split_hash,
    trial_identity,
)
from tasks.methods import METHODS
from tasks.splits.files import Split

PINNED = Path(__file__).with_name("identity_defaults.json")
PINNED_FOR_VERSION = 2  # the IDENTITY_VERSION whose defaults identity_defaults.json holds

SPLIT = Split(
    id=1,
    key="2",
    progression="harder",
    fid=35.25,
    train=["a", "b", "c", "d"],
    test=["e", "f", "g"],
    split_train=["a", "b", "c"],
    split_val=["d"],
    episodes={1: [["e"], ["f"]]},
    too_small={1: ["g"]},
    shift={"mmd": 0.5},
)
# another value of each field a trial does not read
DESCRIPTION_CHANGES = {
    "id": 7,
    "key": "R3",
    "progression": "removal",
    "fid": 35.25 * (1 + 1e-13),  # a split file rebuilt by another FID route
    "shift": {"mmd": 0.5 + 1e-13, "fid@dinov2": 3.0},
    "too_small": {},
}
# other classes, division or episodes: each a valid split again
CONTENT_CHANGES = [
    {"train": ["a", "b", "c", "h"], "split_val": ["h"]},
    {"test": ["e", "f", "h"]},
    {"split_train": ["a", "c"], "split_val": ["b", "d"]},
    {"episodes": {1: [["e"], ["g"]]}},
    {"episodes": {1: [["e"], ["f"]], 2: [["f"]]}},
]


def _config(**sections) -> TrialConfig:
    raw = {
        "data": {"dataset": "glyphs", "split_file": "/a/splits.json", "split": "0"},
        "method": {"name": "margin"},
        "training": {"epochs": 3},
        "fewshot": {"shots": [2]},
    }
    for section, values in sections.items():
        raw[section] = raw.get(section, {}) | values
    return TrialConfig.model_validate(raw)


def _defaults() -> dict:
    """The defaults a payload leaves out, flat: every optional trial config field, each method's."""
    flat: dict = {}
    sections = {"": TrialConfig, "training.": TrainingConfig, "fewshot.": FewShotConfig}
    for prefix, model in sections.items():
        for name, field in model.model_fields.items():
            if not field.is_required():
                value = field.get_default(call_default_factory=True)
                flat[prefix + name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
    for name in ("data", "model", "method", "heldout"):
        model = TrialConfig.model_fields[name].annotation
        model = next(c for c in (model, *getattr(model, "__args__", ())) if hasattr(c, "model_fields"))
        for field_name, field in model.model_fields.items():
            if not field.is_required():
                value = field.get_default(call_default_factory=True)
                flat[f"{name}.{field_name}"] = value
    for name, spec in METHODS.items():
        flat |= {f"methods.{name}.{k}": v for k, v in spec.defaults().items()}
        if spec.default_variant:
            flat[f"methods.{name}.variant"] = spec.default_variant
    return json.loads(json.dumps(flat))  # as JSON reads them back (int keys -> str)


def test_no_pinned_default_changed_without_a_new_identity_version() -> None:
    """A default that changes value changes what every id that relies on it means: bump IDENTITY_VERSION,
    say why beside it, and pin the new defaults (new defaults may be added under the same version)."""
    pinned, current = json.loads(PINNED.read_text()), _defaults()
    changed = sorted(k for k in pinned if current.get(k, "<removed>") != pinned[k])
    assert IDENTITY_VERSION == PINNED_FOR_VERSION and not changed, (
        f"defaults changed: {changed}; bump tasks.identity.IDENTITY_VERSION and re-pin {PINNED.name}"
    )


def test_adding_a_setting_with_a_default_leaves_every_id() -> None:
    config = _config()
    before = trial_identity(config, "s")
    extended = create_model("Extended", __base__=TrainingConfig, new_setting=(int, 7))
    wider = create_model("WiderTrial", __base__=TrialConfig, training=(extended, extended()))
    grown = wider.model_validate(config.model_dump() | {"training": config.training.model_dump()})
    assert grown.training.new_setting == 7 and trial_identity(grown, "s") == before
    changed = wider.model_validate(
        grown.model_dump() | {"training": grown.training.model_dump() | {"new_setting": 8}}
    )
    assert trial_identity(changed, "s") != before  # once set apart from its default, it counts


def test_what_a_result_does_not_depend_on_leaves_the_id() -> None:
    config = _config()
    moved = _config(data={"split_file": "/elsewhere/splits.json"})
    assert trial_identity(moved, "s") == trial_identity(config, "s")
    zero_shot = _config(fewshot={"shots": []})
    other_adaptation = _config(fewshot={"shots": [], "iterations": {2: 5}, "lr_multiplier": 3.0})
    assert trial_identity(other_adaptation, "s") == trial_identity(zero_shot, "s")
    explicit_default = _config(training={"lr": 1e-5})  # the default, written out
    assert trial_identity(explicit_default, "s") == trial_identity(config, "s")
    payload = identity_payload(config, "s")
    assert set(payload) == {"identity_version", "config", "split"}  # no package version


@pytest.mark.parametrize(
    "changed",
    [
        {"training": {"lr": 2e-5}},
        {"fewshot": {"loss_parameters": "trained"}},
        {"fewshot": {"iterations": {2: 5}}},
        {"method": {"name": "margin", "hyperparameters": {"beta": 0.9}}},
        {"data": {"root": "/data/glyphs"}},
        {"heldout": {}},  # present at its defaults differs from absent
    ],
)
def test_what_a_result_depends_on_changes_the_id(changed) -> None:
    assert trial_identity(_config(**changed), "s") != trial_identity(_config(), "s")


def test_the_split_and_the_version_change_the_id(monkeypatch) -> None:
    config = _config()
    assert trial_identity(config, "s") != trial_identity(config, "t")
    before = trial_identity(config, "s")
    monkeypatch.setattr(identity, "IDENTITY_VERSION", IDENTITY_VERSION + 1)
    assert trial_identity(config, "s") != before


def test_every_split_field_is_content_or_description() -> None:
    """A field added to ``Split`` must be declared one or the other: hashed, or leaving ids as they are."""
    assert not set(SPLIT_CONTENT) & set(SPLIT_DESCRIPTION)
    assert set(SPLIT_CONTENT) | set(SPLIT_DESCRIPTION) == set(Split.model_fields)
    assert set(DESCRIPTION_CHANGES) == set(SPLIT_DESCRIPTION)
    assert {name for change in CONTENT_CHANGES for name in change} == set(SPLIT_CONTENT)


@pytest.mark.parametrize("field", SPLIT_DESCRIPTION)
def test_a_split_s_labels_and_shift_measures_leave_its_hash_and_trial_ids(field: str) -> None:
    changed = Split.model_validate(SPLIT.model_dump() | {field: DESCRIPTION_CHANGES[field]})
    assert getattr(changed, field) != getattr(SPLIT, field)
    assert split_hash(changed) == split_hash(SPLIT)
    assert describe(_config(), changed).trial_id == describe(_config(), SPLIT).trial_id


@pytest.mark.parametrize("change", CONTENT_CHANGES)
def test_a_split_s_classes_division_and_episodes_change_its_hash_and_trial_ids(change: dict) -> None:
    changed = Split.model_validate(SPLIT.model_dump() | change)
    assert split_hash(changed) != split_hash(SPLIT)
    assert describe(_config(), changed).trial_id != describe(_config(), SPLIT).trial_id


def test_the_payload_holds_the_non_default_settings_only() -> None:
    found = semantic_config(_config(training={"lr": 2e-5}))
    assert found["training"] == {"epochs": 3, "lr": 2e-5}
    assert found["data"] == {"dataset": "glyphs", "split": "0"} and found["method"] == {"name": "margin"}
    assert found["fewshot"] == {"shots": [2]}
