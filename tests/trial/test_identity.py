"""The identity payload (tasks/identity.py): what a trial id depends on, and what it must not.

A trial id must change exactly when a result may: adding a setting with a default, moving a split file,
releasing a new package version or changing an unused adaptation setting must leave it; a setting a trial
uses, its split, or ``IDENTITY_VERSION`` must change it. ``identity_defaults.json`` pins every default a
payload leaves out: changing one changes what existing ids mean, so the test asks for a new version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import create_model

import tasks.identity as identity
from tasks.config import FewShotConfig, TrainingConfig, TrialConfig
from tasks.identity import IDENTITY_VERSION, identity_payload, semantic_config, trial_identity
from tasks.methods import METHODS

PINNED = Path(__file__).with_name("identity_defaults.json")
PINNED_FOR_VERSION = 1  # the IDENTITY_VERSION whose defaults identity_defaults.json holds


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


def test_the_payload_holds_the_non_default_settings_only() -> None:
    found = semantic_config(_config(training={"lr": 2e-5}))
    assert found["training"] == {"epochs": 3, "lr": 2e-5}
    assert found["data"] == {"dataset": "glyphs", "split": "0"} and found["method"] == {"name": "margin"}
    assert found["fewshot"] == {"shots": [2]}
