"""Study folders written before the identity payload resume without re-running what they have
(study/migration.py).

The old ids are pinned from the code that computed them: the shipped trial config on split hash "s" had
id 9f116a12c2ddabbe from the typed record (adfcb88) to 85ca83b (results version 1), and 3eb6147910e0cfeb
once few-shot adaptation followed the original (results version 2), both with oodml 0.1.0.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from study.migration import legacy_trial_id, meaning_then, migrate_trial_ids
from study.results.layout import CURVES_DIR, RESULTS_DIR, TRIALS_DIR
from study.results.store import atomic_write_table, result_path
from tasks.config import TrialConfig

ROOT = Path(__file__).resolve().parents[2]
# settings added since results version 1: a version-1 row set's config has none of them
ADDED_SINCE_1 = {
    "training": ["warmup_epochs"],
    "fewshot": ["hyperparameters", "loss_parameters", "support_transform", "reweight"],
}


def _as_version_1(config: dict) -> dict:
    old = json.loads(json.dumps(config))
    for section, names in ADDED_SINCE_1.items():
        for name in names:
            old[section].pop(name, None)
    return old


def _shipped() -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "trial_glyphs.yaml").read_text())
    return TrialConfig.model_validate(raw).model_dump(mode="json")


def test_the_old_ids_are_the_old_codes() -> None:
    assert legacy_trial_id(_as_version_1(_shipped()), "s", "0.1.0", 1, []) == "9f116a12c2ddabbe"
    assert legacy_trial_id(_shipped(), "s", "0.1.0", 2, []) == "3eb6147910e0cfeb"


def test_a_version_1_config_keeps_its_meaning() -> None:
    raw = _as_version_1(_shipped())
    raw["method"] = {"name": "s2sd", "variant": None, "hyperparameters": {}}
    then = meaning_then(raw, 1)
    fs = then.fewshot
    assert (fs.loss_parameters, fs.support_transform, fs.hyperparameters) == (
        "trained",
        "eval",
        {"beta": 1.2},
    )
    margin = meaning_then(raw | {"method": {"name": "margin", "variant": None, "hyperparameters": {}}}, 1)
    assert margin.fewshot.hyperparameters == {}  # its own beta is 1.2: nothing to say
    uniform = meaning_then(
        raw | {"method": {"name": "uniformity", "variant": None, "hyperparameters": {}}}, 1
    )
    assert uniform.method.hyperparameters == {"network_lr": 1e-5}  # training.lr is 2e-3 there
    zero_shot = _as_version_1(_shipped())
    zero_shot["fewshot"]["shots"] = []
    assert meaning_then(zero_shot, 1).fewshot.loss_parameters == "frozen"  # unused: left at the default
    assert meaning_then(_shipped(), 2) == TrialConfig.model_validate(_shipped())


def _age(study_dir: Path) -> dict[str, str]:
    """Rewrite a study folder as the code before the identity payload wrote it (results version 1):
    configs without the settings added since, ids of the old formula; new id -> old id."""
    ages = {}
    for path in sorted((study_dir / RESULTS_DIR).glob("*.parquet")):
        table = pq.read_table(path)
        row = table.slice(0, 1).to_pylist()[0]
        config = _as_version_1(json.loads(row["config"]))
        version = json.loads(row["versions"])["oodml"]
        old = legacy_trial_id(config, row["split_hash"], version, 1, [])
        new = row["trial_id"]
        for name, value in (("trial_id", old), ("config", json.dumps(config, sort_keys=True))):
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, pa.array([value] * table.num_rows, pa.string()))
        atomic_write_table(table, result_path(study_dir, old, row["stage"]))
        path.unlink()
        curves = result_path(study_dir, new, row["stage"], CURVES_DIR)
        if curves.exists():
            rows = pq.read_table(curves)
            rows = rows.set_column(
                0 + rows.schema.get_field_index("trial_id"), "trial_id", pa.array([old] * rows.num_rows)
            )
            atomic_write_table(rows, result_path(study_dir, old, row["stage"], CURVES_DIR))
            curves.unlink()
        if (study_dir / TRIALS_DIR / new).exists():
            (study_dir / TRIALS_DIR / new).rename(study_dir / TRIALS_DIR / old)
        ages[new] = old
    return ages


@pytest.mark.slow
def test_a_folder_written_before_resumes_with_nothing_re_run(ray_local, tmp_path, tiny_spec) -> None:
    from study.api import run

    raw = tiny_spec(tmp_path / "aged")
    raw |= {"methods": [{"name": "triplet"}], "tuning": {"trials": 0}}
    # the adaptation results version 1 ran, named: such trials keep their results across the migration
    raw["fewshot"] |= {"loss_parameters": "trained", "support_transform": "eval"}
    first = run(raw, echo=lambda line: None)
    assert first.outcome.ok and first.outcome.planned == 2
    ages = _age(first.study_dir)
    assert len(ages) == 2 and not set(ages) & set(ages.values())

    lines: list[str] = []
    again = run(raw, echo=lines.append)
    assert again.outcome.ok and again.outcome.executed == 0  # nothing re-run
    assert any("migrated 2 trial result(s)" in line for line in lines)
    ids = set(again.table["trial_id"].to_pylist())
    assert ids == set(ages)  # the payload's ids, the same as a fresh run's
    assert all((first.study_dir / TRIALS_DIR / t / "best.pt").exists() for t in ids)
    assert migrate_trial_ids(first.study_dir) == {}  # twice: nothing more

    _age(first.study_dir)
    del raw["fewshot"]["loss_parameters"], raw["fewshot"]["support_transform"]  # the new defaults
    changed = run(raw, echo=lambda line: None)
    assert changed.outcome.ok and changed.outcome.executed == 2  # their meaning changed: run again
