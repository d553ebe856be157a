"""A dataset's split file: the one the spec names, or one built once in the study folder.

Building is ``oodml splits build`` itself (``tasks.splits.cli``), driven with the spec's options, so
the study and the command line can never build differently. The options are saved next to the
output; a later run with other options is refused rather than silently mixing results of two split
sets in one study.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from study.spec import DatasetEntry, SpecError

SPLITS_DIR = "splits"
OPTIONS_FILE = "build-options.json"


def build_arguments(entry: DatasetEntry, shots: list[int]) -> list[str]:
    """The ``oodml splits build`` arguments for ``entry`` (without ``--out``)."""
    s = entry.build
    select = s.select if isinstance(s.select, int) else ",".join(s.select)
    argv = ["--dataset", entry.name, "--select", str(select), "--episodes", str(s.episodes)]
    argv += ["--shots", ",".join(map(str, s.shots if s.shots is not None else shots))]
    argv += ["--seed", str(s.seed), "--device", s.device]
    optional = {
        "--root": entry.root,
        "--support": s.support,
        "--extractor": s.extractor,
        "--weights": s.weights,
        "--steps": s.steps,
        "--swaps-per-step": s.swaps_per_step,
        "--history": s.history,
        "--easier-steps": s.easier_steps,
        "--easier-history": s.easier_history,
        "--removal-steps": s.removal_steps,
    }
    argv += [str(x) for flag, value in optional.items() if value is not None for x in (flag, value)]
    for key, value in sorted(entry.loader_options().items()):
        argv += ["--option", f"{key}={value}"]
    return argv


def split_file(entry: DatasetEntry, shots: list[int], study_dir: Path) -> Path:
    """The split file of ``entry``, building it into ``<study>/splits/<dataset>/`` on first use."""
    if entry.split_file:
        return Path(entry.split_file)
    from tasks.splits import cli

    out = study_dir / SPLITS_DIR / entry.name
    argv = build_arguments(entry, shots)
    built, options = out / "splits.json", out / OPTIONS_FILE
    if built.is_file():
        recorded = json.loads(options.read_text()) if options.is_file() else None
        if recorded != argv:
            raise SpecError(
                f"datasets[{entry.name}]: {built} was built with other options ({recorded}); this spec asks "
                f"for {argv}. Use a new study folder (storage.root), or delete {out} and its results."
            )
        return built
    parser = argparse.ArgumentParser(prog="oodml splits build")
    cli.add_build_arguments(parser)
    out.mkdir(parents=True, exist_ok=True)
    options.write_text(json.dumps(argv))  # first: splits.json (written last, atomically) is the marker
    cli.build(parser.parse_args([*argv, "--out", str(out)]))
    return built
