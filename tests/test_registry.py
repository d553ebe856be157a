"""The one registry mechanism (tasks/registry.py): lookup with did-you-mean, clashes, listing, describe,
plugin origins and undo, implementations named by reference (``LazyReference``); every built-in entry of
every kind builds from its defaults (OML's rule), and every one named by reference resolves as declared."""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import tasks.registry as registry_module
from tasks.data import DATASETS, DatasetError, build_dataset, register_dataset
from tasks.methods import METHODS, Hyperparameter, MethodSpec, register_method
from tasks.models import BACKBONES, build_model
from tasks.models.registry import BackboneSpec, register_backbone
from tasks.registry import (
    BUILTIN,
    LazyReference,
    PluginError,
    Registry,
    RegistryError,
    doc_line,
    keyword_signature,
    registering_as,
    unknown_name,
)
from tasks.splits.episodes import EPISODE_BUILDERS
from tasks.splits.extractors import EXTRACTORS
from tests.registries import isolated_registries  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("isolated_registries")


@dataclass(frozen=True)
class Thing:
    name: str
    size: int = 1


def things() -> Registry[Thing]:
    return Registry("thing", Thing, describe=lambda t: {"size": t.size})


def test_get_names_the_closest_and_lists_the_known_names():
    reg = things()
    for name in ("alpha", "beta", "gamma"):
        reg.register(Thing(name))
    assert reg.get("beta") == Thing("beta") and reg.names() == ["alpha", "beta", "gamma"]
    with pytest.raises(
        ValueError, match=r"^unknown thing 'btea'; did you mean 'beta'\? \(known: alpha, beta, gamma\)$"
    ):
        reg.get("btea")
    with pytest.raises(ValueError, match=r"^unknown thing 'zzz' \(known: "):
        reg.get("zzz")
    assert reg.get("zzz", None) is None
    assert (
        unknown_name("margn", ["margin", "nu"])
        == "unknown name 'margn'; did you mean 'margin'? (allowed: margin, nu)"
    )


def test_a_registry_reads_like_the_dict_it_replaced():
    reg = things()
    reg.register(Thing("b", 2))
    reg.register(Thing("a", 3))
    assert list(reg) == ["b", "a"] and len(reg) == 2 and "a" in reg and "c" not in reg
    assert reg["a"].size == 3 and dict(reg.items()) == {"b": Thing("b", 2), "a": Thing("a", 3)}
    with pytest.raises(KeyError):
        reg["c"]


def test_register_as_a_decorator_and_under_a_given_name():
    reg: Registry = Registry("builder")

    @reg.register
    def plain(x):
        """Builds plainly.

        More text."""

    @reg.register(name="other")
    def renamed(x):
        return x

    assert reg.names() == ["plain", "other"] and reg["plain"] is plain and reg["other"] is renamed
    assert reg.describe("plain") == {"name": "plain", "origin": BUILTIN, "description": "Builds plainly."}


def test_describe_gives_the_declared_options_with_name_and_origin():
    reg = things()
    reg.register(Thing("x", 5))
    assert reg.describe("x") == {"name": "x", "origin": BUILTIN, "size": 5}
    margin = METHODS.describe("margin")
    assert margin["hyperparameters"]["beta"] == {
        "default": 1.2,
        "low": 0.5,
        "high": 1.6,
        "log": False,
        "integer": False,
        "tune": True,
        "choices": None,
    }
    assert margin["variants"].keys() == {"original", "wu"} and margin["default_variant"] == "original"
    resnet = BACKBONES.describe("resnet50")
    assert resnet["feature_dim"] == 2048 and resnet["preprocess"]["size"] == 224
    assert (
        resnet["pretrained"]["kind"] == "HubCheckpoint"
        and BACKBONES.describe("glyph_cnn")["pretrained"] is None
    )
    glyphs = DATASETS.describe("glyphs")["options"]
    assert glyphs["unreadable_images"] == {"default": "fail", "required": False} and "num_classes" in glyphs
    assert "ResNet50" in EXTRACTORS.describe("resnet50")["needs"]
    assert EPISODE_BUILDERS.describe("classes")["description"]


def test_a_name_held_by_another_origin_is_refused_and_a_failed_plugin_is_undone():
    reg = things()
    reg.register(Thing("a"))
    with pytest.raises(RegistryError, match=r"thing 'a' is already built in: give this one another name"):
        with registering_as("plugin one"):
            reg.register(Thing("a"))
    with pytest.raises(RuntimeError), registering_as("plugin one"):
        reg.register(Thing("b"))
        raise RuntimeError("the plugin failed after registering b")
    assert reg.names() == ["a"]  # b undone
    with registering_as("plugin one"):
        reg.register(Thing("c", 1))
    with registering_as("plugin one"):  # the same plugin again (a changed file): replaces its own entry
        reg.register(Thing("c", 2))
    assert reg["c"].size == 2 and reg.origin("c") == "plugin one"
    with (
        pytest.raises(RegistryError, match="thing 'c' is already registered by plugin one"),
        registering_as("plugin two"),
    ):
        reg.register(Thing("c"))


def test_an_entry_without_its_declaration_is_refused():
    reg = things()
    with pytest.raises(RegistryError, match=r"thing 'x' is registered as .*which is not a Thing"):
        reg.register(lambda: None, name="x")

    def build(num_classes, embedding_dim, *, margin, gamma):
        return None

    spec = MethodSpec("undeclared", build, {"margin": Hyperparameter(0.1, 0.0, 1.0)}, "a test method")
    with pytest.raises(
        RegistryError, match=r"builder takes \['gamma'\], which the MethodSpec does not declare"
    ):
        register_method(spec)
    with pytest.raises(RegistryError, match="not a MethodSpec"):
        METHODS.register(build, name="bare")
    assert "undeclared" not in METHODS and "bare" not in METHODS


def test_register_method_as_a_decorator():
    @register_method(hyperparameters={"scale": Hyperparameter(2.0, 1.0, 4.0)}, description="a test loss")
    def scaled_norm(num_classes, embedding_dim, *, scale):
        return None

    assert METHODS["scaled_norm"].build is scaled_norm
    assert METHODS["scaled_norm"].defaults() == {"scale": 2.0}


def test_installed_plugins_load_once_through_the_entry_point_group(monkeypatch):
    module = types.ModuleType("fake_oodml_plugin")
    calls = []

    def register():
        calls.append(1)
        register_method(
            MethodSpec("entry_point_loss", lambda num_classes, embedding_dim: None, {}, "from an entry point")
        )

    class Point:
        name, value, dist = "fake", "fake_oodml_plugin:register", types.SimpleNamespace(name="fake-dist")

        def load(self):
            return register

    import importlib.metadata

    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [Point()] if group == "oodml.plugins" else []
    )
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    assert METHODS.get("entry_point_loss").description == "from an entry point"  # loaded on the first miss
    assert METHODS.origin("entry_point_loss").startswith(
        "entry point fake = fake_oodml_plugin:register (fake-dist)"
    )
    METHODS.get("still_unknown", None)
    assert calls == [1] and module


def test_a_failing_entry_point_names_its_distribution(monkeypatch):
    class Point:
        name, value, dist = "broken", "broken_pkg", types.SimpleNamespace(name="broken-dist")

        def load(self):
            raise ImportError("No module named 'torchh'")

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [Point()])
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    with pytest.raises(
        PluginError,
        match=r"entry point broken = broken_pkg \(broken-dist\): loading the plugin failed: ImportError: .*fix or uninstall broken-dist",
    ):
        registry_module.load_entry_points()


# --- implementations named by reference ----------------------------------------------------------------

NOT_A_FUNCTION = 3


def shrink(root, factor=2):
    """What it was given, for a test to see."""
    return root, factor


def create_needing_depth(depth):
    return depth


def test_a_reference_is_imported_and_checked_on_first_use_only():
    checked = []
    lazy = LazyReference("thing 'x'", f"{__name__}:shrink", check=checked.append)
    assert lazy.resolved is None and lazy.__name__ == "shrink" and not checked
    assert lazy(8) == (8, 2) and lazy.resolved is shrink and checked == [shrink]
    assert lazy(8, factor=4) == (8, 4) and checked == [shrink]  # checked once
    assert inspect.signature(lazy) == inspect.signature(shrink)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        (f"{__name__}:no_such_function", "thing 'x': its builder .* cannot be imported"),
        ("tests.no_such_module:build", "cannot be imported"),
        (f"{__name__}:NOT_A_FUNCTION", "is not callable"),
    ],
)
def test_a_reference_that_does_not_resolve_is_refused_on_first_use(reference, message):
    lazy = LazyReference("thing 'x'", reference)
    with pytest.raises(RegistryError, match=message):
        lazy()


def test_a_malformed_reference_is_refused_at_once():
    with pytest.raises(RegistryError, match="neither a callable nor a reference 'package.module:name'"):
        LazyReference("thing 'x'", "tests.test_registry.shrink")


def test_a_declared_signature_is_read_without_import_and_must_match_the_real_one():
    declared = LazyReference(
        "thing 'x'", f"{__name__}:shrink", signature=keyword_signature("root", {"factor": 2}), doc="Given."
    )
    assert list(inspect.signature(declared).parameters) == ["root", "factor"] and declared.resolved is None
    assert doc_line(declared) == "Given." and declared.resolved is None
    assert declared(8) == (8, 2)
    wrong = LazyReference(
        "thing 'x'", f"{__name__}:shrink", signature=keyword_signature("root", {"factor": 3})
    )
    with pytest.raises(RegistryError, match=r"takes \(root, factor=2\).*declaration says \(root, factor=3\)"):
        wrong(8)


def test_a_dataset_by_reference_declares_its_options_and_is_imported_on_first_build(tmp_path):
    with pytest.raises(RegistryError, match="declares its description= and options="):
        register_dataset("halves", f"{__name__}:shrink")
    builder = register_dataset("halves", f"{__name__}:shrink", description="Given.", options={"factor": 2})
    assert builder.resolved is None
    assert DATASETS.describe("halves")["options"] == {
        "factor": {"default": 2, "required": False},
        "unreadable_images": {"default": "fail", "required": False},
    }
    assert build_dataset("halves", tmp_path, factor=4) == (tmp_path, 4) and builder.resolved is shrink


def test_a_backbone_by_reference_is_checked_on_first_build():
    spec = register_backbone(
        BackboneSpec(
            "needy", BACKBONES["resnet18"].preprocess, 8, 8, f"{__name__}:create_needing_depth", None
        )
    )
    assert isinstance(spec.create, LazyReference) and spec.create.resolved is None
    with pytest.raises(
        RegistryError, match="backbone 'needy': create\\(\\) must build the module without arguments"
    ):
        build_model("needy", pretrained=False)


def _references(kind: str) -> list[tuple[str, LazyReference]]:
    """Every built-in ``kind`` entry's implementations named by reference, as (name, reference)."""
    if kind == "datasets":
        return [(name, DATASETS[name]) for name in DATASETS]
    if kind == "backbones":
        return [(name, BACKBONES[name].create) for name in BACKBONES]
    return [(name, fn) for name in EXTRACTORS for fn in (EXTRACTORS[name].weights, EXTRACTORS[name].build)]


@pytest.mark.parametrize("kind", ["datasets", "backbones", "extractors"])
def test_every_built_in_by_reference_resolves_as_declared(kind):
    """Each built-in names its implementation by reference; each imports, matches its declared signature
    (a dataset's options), and its docstring's first line is the one declared (what ``oodml list`` shows)."""
    references = _references(kind)
    assert references and all(isinstance(r, LazyReference) for _, r in references)
    for name, reference in references:
        declared_doc = doc_line(reference)
        resolved = reference.resolve()
        assert resolved.__module__.startswith("tasks."), name
        if kind != "backbones":
            assert doc_line(resolved) == declared_doc, name


# --- every built-in entry builds from its defaults ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_builds_from_its_defaults(name):
    spec = BACKBONES[name]
    model = build_model(name, pretrained=False).eval()
    p = spec.preprocess
    size = min(p.size, 64)  # pooled features: any input size serves, and a small one is fast
    with torch.no_grad():
        out = model(torch.randn(2, p.channels, size, size))
    assert (
        out.shape == (2, spec.embedding_dim)
        and model.features(torch.randn(1, p.channels, size, size)).shape[1] == spec.feature_dim
    )


def test_every_dataset_declares_its_options_and_refuses_a_missing_root(tmp_path):
    for name in DATASETS:
        described = DATASETS.describe(name)["options"]
        params = list(inspect.signature(DATASETS[name]).parameters)
        assert params[0] == "root" and list(described) == [*params[1:], "unreadable_images"]
        if name != "glyphs":  # every other dataset reads a folder: a missing one is named
            with pytest.raises(DatasetError, match=str(tmp_path / "absent")):
                build_dataset(name, tmp_path / "absent")


def test_the_glyph_dataset_builds_from_its_defaults(tiny_glyphs):
    images = build_dataset("glyphs", **tiny_glyphs, num_classes=40)  # the default 200 needs every glyph
    assert len(images) and images.default_train and images.default_test


def test_every_extractor_declares_its_needs_and_weights():
    for name in EXTRACTORS:
        kind = EXTRACTORS[name]
        assert kind.needs and callable(kind.weights) and callable(kind.build)


@pytest.mark.parametrize("name", sorted(EPISODE_BUILDERS))
def test_every_episode_builder_builds_from_its_defaults(name):
    images = {f"c{c}": [f"c{c}/{k}.jpg" for k in range(6)] for c in range(6)}
    episodes, left_out = EPISODE_BUILDERS[name](images, sorted(images), 2, 3, 0)
    assert len(episodes) == 3 and left_out == []
    assert np.all([len(e) > 0 for e in episodes])
