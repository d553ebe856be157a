"""``oodml trial`` reports a bad config as ``oodml run`` does: one line per field, the allowed keys and the
closest one for a misspelt key, no raw pydantic output."""

from __future__ import annotations

import yaml

from study.cli import main


def test_a_misspelt_and_a_mistyped_field_are_named(tmp_path, capsys):
    config = yaml.safe_load(open("configs/trial_glyphs.yaml"))
    config["training"]["epoch"] = 3
    config["seed"] = "zero"
    path = tmp_path / "trial.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["trial", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"oodml trial: error: {path}: invalid trial config:\n")
    assert "  training.epoch: unknown key; allowed: " in err and "did you mean 'epochs'?" in err
    assert "  seed: Input should be a valid integer" in err
    assert "pydantic" not in err and "For further information" not in err


def test_a_config_that_is_not_a_mapping(tmp_path, capsys):
    path = tmp_path / "trial.yaml"
    path.write_text("- a list\n")
    assert main(["trial", str(path)]) == 2
    assert "expected a mapping at the top level, got list" in capsys.readouterr().err
