"""Each option is declared once: the study spec embeds the trial config's models (the same classes, not
generated copies), and adds only what a study alone has (issue 13, item 5)."""

from __future__ import annotations

import copy

import pytest

from study.expand import DatasetPlan, evaluation_trials, tuning_base
from study.spec import DatasetEntry, FewShotSpec, MethodEntry, SpecError, StudySpec, load_spec
from tasks.config import (
    AdaptationConfig,
    DataConfig,
    DatasetOptions,
    FewShotConfig,
    MethodConfig,
    TrialConfig,
)
from tasks.splits.files import SplitFile, write_json
from tasks.splits.options import SplitOptions
from tests.study.test_spec import BASE, _split


def annotation(model, name):
    return model.model_fields[name].annotation


def test_training_model_method_and_split_sections_are_the_trial_configs_models():
    for section in ("training", "model"):
        assert annotation(StudySpec, section) is annotation(TrialConfig, section)
    assert annotation(DatasetEntry, "splits") == SplitOptions | None
    assert annotation(DatasetEntry, "options") == annotation(DataConfig, "options") == DatasetOptions
    assert issubclass(MethodEntry, MethodConfig) and set(MethodEntry.model_fields) - set(
        MethodConfig.model_fields
    ) == {"search", "model", "training", "fewshot"}  # the search, and the method's own settings


def test_fewshot_adaptation_is_declared_once_for_trial_and_study():
    shared = set(AdaptationConfig.model_fields)
    assert issubclass(FewShotSpec, AdaptationConfig) and issubclass(FewShotConfig, AdaptationConfig)
    assert annotation(StudySpec, "fewshot") is FewShotSpec
    assert annotation(TrialConfig, "fewshot") is FewShotConfig
    assert set(FewShotSpec.model_fields) - shared == {"budgets", "small_classes"}
    assert set(FewShotConfig.model_fields) - shared == {"shots"}
    for name in shared:  # one default, one type, one description
        declared = AdaptationConfig.model_fields[name]
        for model in (FewShotSpec, FewShotConfig):
            field = model.model_fields[name]
            assert field.annotation == declared.annotation and field.description == declared.description
            assert field.get_default(call_default_factory=True) == declared.get_default(
                call_default_factory=True
            )


def test_a_trial_adapts_as_its_study_says(tmp_path):
    split_file = write_json(SplitFile(splits=[_split(1, "0")]), tmp_path / "splits.json")
    adapt = {"mode": "full", "episodes": 3, "lr_multiplier": 2.0, "batch_size": 8, "method": "triplet"}
    overrides = {f"fewshot.{k}": v for k, v in adapt.items()}
    spec = load_spec(
        copy.deepcopy(BASE), {**overrides, "datasets.0": {"name": "glyphs", "split_file": str(split_file)}}
    )
    assert spec.fewshot.adaptation == AdaptationConfig(**adapt, iterations={2: 5})
    plan = DatasetPlan.load(spec.datasets[0], split_file, spec)
    trial = evaluation_trials(spec, [plan], {})[0].config.fewshot
    assert trial == FewShotConfig(**adapt, iterations={2: 5}, shots=[2])
    assert tuning_base(spec, plan, spec.methods[0]).config.fewshot == trial.model_copy(update={"shots": []})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"fewshot.mode": "heads"}, "  fewshot.mode: Input should be 'head', 'full' or 'linear_probe'"),
        ({"fewshot.lr_multipler": 1.0}, "fewshot.lr_multipler: unknown key; allowed: batch_size, budgets, "),
        ({"fewshot.lr_multipler": 1.0}, "did you mean 'lr_multiplier'?"),
        ({"fewshot.small_classes": "skip"}, "  fewshot.small_classes: Input should be 'fail' or 'leave_out'"),
    ],
)
def test_errors_name_the_field_as_the_yaml_writes_it(overrides, expected):
    with pytest.raises(SpecError) as caught:
        load_spec(copy.deepcopy(BASE), overrides)
    assert expected in str(caught.value)
