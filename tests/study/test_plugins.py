"""Plugins in studies (issue 12): a spec's ``plugins:`` resolve against the spec file and load before it is
checked; trials carry file plugins' sources to the workers; ``oodml list`` shows every component; and a
real local-Ray study runs a loss written outside the repository beside a built-in method."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from mlflow import MlflowClient

from study.api import run
from study.cli import main
from study.plugins import PluginSource, load, read
from study.spec import load_spec
from tasks.methods import METHODS, build_method
from tests.registries import isolated_registries  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("isolated_registries")

# A loss that is not in oodml: a pairwise contrastive hinge on cosine similarities, with a tunable margin.
PAIR_HINGE = '''
import torch

from tasks.methods import Hyperparameter, Method, MethodSpec, register_method


class PairHinge(Method):
    """Same-class cosine similarity above 1 - margin, other pairs below margin."""

    def __init__(self, margin):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings, labels):
        similarity = embeddings @ embeddings.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool)
        return torch.relu(1 - self.margin - similarity)[same & ~eye].mean() + torch.relu(
            similarity - self.margin
        )[~same].mean()


def build(num_classes, embedding_dim, *, margin):
    return PairHinge(margin)


register_method(
    MethodSpec(
        name="{name}",
        build=build,
        hyperparameters={{"margin": Hyperparameter(0.5, 0.1, 0.9)}},
        description="Pairwise cosine hinge (a test plugin).",
    )
)
'''


def write_plugin(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(PAIR_HINGE.format(name=name))
    return path


def test_relative_plugin_paths_resolve_against_the_spec_file(tmp_path, tiny_spec, monkeypatch):
    path = write_plugin(tmp_path / "specs" / "plugins", "hinge_a")
    spec = tiny_spec(tmp_path / "study") | {
        "plugins": ["plugins/hinge_a.py"],
        "methods": [{"name": "hinge_a"}],
    }
    config = tmp_path / "specs" / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    loaded = load_spec(config)
    assert loaded.plugins == [str(path)] and loaded.methods[0].name == "hinge_a"
    assert METHODS.origin("hinge_a") == f"plugin file {path}"
    assert yaml.safe_load(loaded.to_yaml())["plugins"] == [str(path)]  # saved absolute: resume finds it
    again = load_spec(yaml.safe_load(loaded.to_yaml()))  # a mapping (study.run, resume): no reload, same spec
    assert again == loaded
    with pytest.raises(ValueError, match="plugins: duplicate entries"):
        load_spec(spec | {"plugins": [str(path), "specs/plugins/hinge_a.py"]})


def test_a_worker_loads_a_file_plugin_from_its_shipped_source(tmp_path):
    path = write_plugin(tmp_path, "hinge_b")
    (shipped,) = read([str(path)])
    path.unlink()  # another node: the file is not there, its source travels with the trial
    load([shipped])
    method = build_method("hinge_b", num_classes=3, embedding_dim=8)
    assert type(method).__name__ == "PairHinge" and method.margin == 0.5
    load([shipped])  # every trial of a reused worker: loaded once
    changed = PluginSource(shipped.name, shipped.source.replace("0.5, 0.1, 0.9", "0.3, 0.1, 0.9"))
    load([changed])  # a changed file (a later study in the same Ray session) replaces its own entries
    assert METHODS["hinge_b"].defaults() == {"margin": 0.3}


def test_list_methods_json_lists_every_method_with_its_hyperparameters(tmp_path, capsys):
    path = write_plugin(tmp_path, "hinge_c")
    assert main(["list", "methods", "--json", "--plugin", str(path)]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(METHODS) and "hinge_c" in listed
    for name, spec in METHODS.items():
        hps = listed[name]["hyperparameters"]
        assert {k: h["default"] for k, h in hps.items()} == spec.defaults()
        assert all(
            h["low"] == spec.hyperparameters[k].low and h["high"] == spec.hyperparameters[k].high
            for k, h in hps.items()
        )
        assert list(listed[name]["variants"]) == list(spec.variants)
    assert listed["hinge_c"]["origin"] == f"plugin file {path}" and listed["margin"]["origin"] == "oodml"


def test_list_prints_every_kind_in_words(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("methods (", "backbones (", "datasets (", "extractors (", "episodes ("):
        assert heading in out
    assert "    beta     default 1.2      search [0.5, 1.6]" in out  # margin's
    assert "variants: original (default), wu" in out and "feature_dim 2048" in out and "timm:<name>" in out
    assert "    num_classes: default 200" in out  # the glyph dataset's options


@pytest.mark.slow
def test_a_study_runs_a_plugin_loss_beside_a_built_in_method(ray_local, tmp_path, tiny_spec):
    """The loss lives in a file outside the repository; the trials run on Ray workers, which know it only
    through the plugin; the results table and MLflow hold both methods."""
    write_plugin(tmp_path / "outside", "pair_hinge")
    spec = tiny_spec(tmp_path / "study") | {
        "plugins": ["outside/pair_hinge.py"],
        "methods": [{"name": "pair_hinge", "search": True}, {"name": "triplet"}],
        "fewshot": {"budgets": [0]},
        "tuning": {"trials": 1},
    }
    spec["datasets"][0]["evaluate"] = ["0"]
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(spec))
    lines: list[str] = []
    result = run(config, echo=lines.append)
    assert result.outcome.ok, lines
    table = result.table
    evaluated = table.filter(pc.and_(pc.equal(table["stage"], "eval"), pc.equal(table["metric"], "recall@1")))
    assert set(evaluated["method"].to_pylist()) == {"pair_hinge", "triplet"}
    assert set(table["status"].to_pylist()) == {"completed"}
    tuned = table.filter(pc.equal(table["stage"], "tune"))
    assert set(tuned["method"].to_pylist()) == {"pair_hinge"}
    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    evaluations = [r for r in children if r.data.tags["oodml.stage"] == "eval"]
    assert {r.data.tags["oodml.method"] for r in evaluations} == {"pair_hinge", "triplet"}
    assert all(r.info.status == "FINISHED" for r in children)
