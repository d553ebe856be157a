"""Bad plugins (issue 12): a plugin that cannot be imported, registers a name oodml already has, registers a
component without its declaration, or registers nothing is refused by ``oodml run`` before anything is
written (``refused`` in conftest.py: exit code 2, one error line, no file written, no Ray started), in one
line naming the file and what to do."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tasks.methods import METHODS
from tests.registries import isolated_registries  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("isolated_registries")

LOSS = """
from tasks.methods import Hyperparameter, Method, MethodSpec, register_method


class Loss(Method):
    def __init__(self, margin):
        super().__init__()
        self.margin = margin

    def forward(self, embeddings, labels):
        return (embeddings.sum() * 0 + self.margin)


def build(num_classes, embedding_dim, *, margin):
    return Loss(margin)
"""


def plugin(tmp_path: Path, body: str, name: str = "my_plugin.py") -> Path:
    path = tmp_path / "plugins" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def spec(tmp_path: Path, tiny_spec) -> dict:
    return tiny_spec(tmp_path / "study") | {"plugins": ["plugins/my_plugin.py"]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "import torch\nx = 1\nfrom tasks.methods import no_such_name\n",
            "importing it failed: ImportError: cannot import name 'no_such_name' from 'tasks.methods'",
        ),
        ("x = (\n", "importing it failed: SyntaxError: '(' was never closed"),
        (
            "import not_a_module_anywhere\n",
            "No module named 'not_a_module_anywhere' (line 1); install what it imports",
        ),
        (
            LOSS
            + "register_method(MethodSpec('margin', build, {'margin': Hyperparameter(0.2, 0.0, 1.0)}, 'a clash'))\n",
            "method 'margin' is already built in: give this one another name",
        ),
        (
            LOSS + "register_method(MethodSpec('mine', build, {}, 'undeclared margin'))\n",
            "method 'mine': its builder takes ['margin'], which the MethodSpec does not declare: add a "
            "Hyperparameter(default, low, high) for each to MethodSpec.hyperparameters",
        ),
        (
            LOSS
            + "METHODS_TO_ADD = [build]\nfrom tasks.methods import METHODS\nMETHODS.register(build, name='mine')\n",
            "which is not a MethodSpec",
        ),
        (LOSS, "it registers no component: call register_method(MethodSpec(...))"),
    ],
    ids=[
        "import-error",
        "syntax-error",
        "missing-module",
        "clash",
        "undeclared-hyperparameter",
        "no-spec",
        "nothing",
    ],
)
def test_a_bad_plugin_is_refused_naming_the_file(refused, spec, tmp_path, body, expected):
    path = plugin(tmp_path, body)
    message = refused(spec)
    assert message.startswith(f"{tmp_path / 'study.yaml'}: plugins: plugin file {path}: "), message
    assert expected in message and "\n" not in message
    assert "mine" not in METHODS  # whatever the failed plugin registered is undone


def test_a_missing_plugin_file_or_module_is_named(refused, spec, tmp_path):
    message = refused(spec)
    assert message.startswith(
        f"{tmp_path / 'study.yaml'}: plugins: plugin file {tmp_path / 'plugins/my_plugin.py'} "
    )
    assert "cannot be read" in message and "relative path is taken from the spec file's folder" in message
    message = refused(spec | {"plugins": ["no_such_oodml_plugin_module"]})
    assert message.endswith(
        "plugin no_such_oodml_plugin_module: no such module: install it, or name a .py file (a path ending in .py)"
    )


def test_a_plugin_method_with_an_undeclared_name_in_the_spec_still_gets_a_did_you_mean(
    refused, spec, tmp_path
):
    plugin(
        tmp_path,
        LOSS
        + "register_method(MethodSpec('hinge_plugin', build, {'margin': Hyperparameter(0.2, 0.0, 1.0)}, 'x'))\n",
    )
    spec["methods"] = [{"name": "hinge_plugn"}]
    message = refused(spec)
    assert "methods.0.name: method: unknown name 'hinge_plugn'; did you mean 'hinge_plugin'?" in message
