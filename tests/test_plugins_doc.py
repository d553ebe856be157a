"""docs/plugins.md's example plugin, executed: loaded as a spec would load it, its loss, backbone and
dataset build and run (so the document stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from study.plugins import load_plugins
from tasks.data import DATASETS, build_dataset
from tasks.methods import METHODS, build_method
from tasks.models import BACKBONES, build_model
from tests.registries import isolated_registries  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("isolated_registries")

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def example() -> str:
    """The document's one Python block: the example plugin file."""
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return block


def test_the_documented_plugin_registers_a_loss_a_backbone_and_a_dataset(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(example())
    assert load_plugins(["my_plugin.py"], base=tmp_path) == [str(plugin)]
    origin = f"plugin file {plugin}"
    assert (
        METHODS.origin("cosine_margin")
        == BACKBONES.origin("tiny_cnn")
        == DATASETS.origin("flat_folder")
        == origin
    )
    assert METHODS.describe("cosine_margin")["hyperparameters"]["margin"] == {
        "default": 0.5,
        "low": 0.1,
        "high": 0.9,
        "log": False,
        "integer": False,
        "tune": True,
        "choices": None,
    }

    loss = build_method("cosine_margin", num_classes=4, embedding_dim=32)
    model = build_model("tiny_cnn", pretrained=False)
    images = torch.randn(8, 1, 32, 32)
    embeddings = model(images)
    value = loss(embeddings, torch.arange(4).repeat(2))
    value.backward()
    assert embeddings.shape == (8, 32) and value.ndim == 0 and torch.isfinite(value)

    folder = tmp_path / "images"
    folder.mkdir()
    for c in ("ant", "bee", "cat", "dog"):
        for k in range(3):
            Image.new("RGB", (8, 8), (60 * k, 40, 200)).save(folder / f"{c}_{k}.png")
    data = build_dataset("flat_folder", folder, train_fraction=0.5)
    assert data.default_train == ("ant", "bee") and data.default_test == ("cat", "dog") and len(data) == 12
    assert data.load(0).size == (8, 8)


def test_the_readme_plugin_example_is_a_valid_spec_with_the_documented_plugin(tmp_path, tiny_spec):
    import yaml

    from study.spec import load_spec

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your own methods, backbones and datasets (plugins)", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    (tmp_path / "my_plugin.py").write_text(example())
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(tiny_spec(tmp_path / "study") | yaml.safe_load(block)))
    spec = load_spec(config)
    assert spec.plugins == [str(tmp_path / "my_plugin.py")]
    assert [m.name for m in spec.methods] == ["cosine_margin", "multisimilarity"]
    assert set(spec.methods[0].search_space()) == {"margin"}
