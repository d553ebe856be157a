"""Split-build options are declared once (``tasks.splits.options``): ``oodml splits build``'s flags and a
study spec's ``splits:`` section both come from that model, with one set of defaults."""

from __future__ import annotations

import argparse

import pytest

from study.spec import DatasetEntry
from tasks.splits.cli import add_build_arguments, options_from_arguments
from tasks.splits.options import ProgressionOverrides, SplitOptions
from tasks.splits.settings import OVERRIDES, overrides_of

SOURCE_FLAGS = {"dataset", "root", "option", "features", "cache_dir", "out"}  # what to build from, not how


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_build_arguments(parser)
    return parser


def flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def test_every_option_has_one_flag_with_its_default_and_help_and_no_flag_is_extra():
    actions = flags(build_parser())
    assert set(actions) - SOURCE_FLAGS == set(SplitOptions.model_fields)
    for name, field in SplitOptions.model_fields.items():
        action = actions[name]
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.default == field.default
        assert field.description and action.help.startswith(field.description)


def test_the_study_spec_embeds_the_same_model():
    assert DatasetEntry.model_fields["splits"].annotation == SplitOptions | None
    assert DatasetEntry(name="glyphs").build == SplitOptions()
    assert OVERRIDES == tuple(ProgressionOverrides.model_fields)


def test_unset_flags_give_the_models_defaults_and_set_ones_parse_as_the_spec_reads_them():
    parser = build_parser()
    assert options_from_arguments(parser.parse_args(["--out", "x"])) == SplitOptions()
    argv = ["--out", "x", "--steps", "3", "--swaps-per-step", "2", "--select=-20,0,R22", "--shots", "2,5"]
    argv += ["--support", "classes", "--episodes", "4", "--seed", "1", "--device", "cuda"]
    parsed = options_from_arguments(parser.parse_args(argv))
    as_yaml = {"steps": 3, "swaps_per_step": 2, "select": ["-20", "0", "R22"], "shots": [2, 5]}
    as_yaml |= {"support": "classes", "episodes": 4, "seed": 1, "device": "cuda"}
    assert parsed == SplitOptions.model_validate(as_yaml)
    assert overrides_of(parsed) == {**dict.fromkeys(OVERRIDES), "steps": 3, "swaps_per_step": 2}
    assert options_from_arguments(parser.parse_args(["--out", "x", "--select", "6"])).select == 6
    assert options_from_arguments(parser.parse_args(["--out", "x", "--select", "-20"])).select == ["-20"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--select", "0"], "--select: expected a number of splits >= 1"),
        (["--support", "image"], "--support: episode builder: unknown name 'image'; did you mean 'images'?"),
        (["--shots", "2,x"], "--shots"),
    ],
)
def test_a_bad_flag_is_named_in_the_error(argv, message):
    with pytest.raises(ValueError, match="^" + message.replace("?", r"\?")):
        options_from_arguments(build_parser().parse_args(["--out", "x", *argv]))
