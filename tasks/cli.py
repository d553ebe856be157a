"""``oodml trial CONFIG.yaml``: run one trial from the command line."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from tasks.config import load_trial_config


def add_trial_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="trial config (YAML)")
    parser.add_argument("--workdir", help="checkpoint folder (default: runs/trials/<trial id>)")
    parser.add_argument("--out", help="write the trial record as JSON here")
    parser.add_argument(
        "--json", action="store_true", help="print the whole trial record as JSON (default: its values, flat)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def trial(args: argparse.Namespace) -> int:
    from tasks.identity import describe
    from tasks.trial import run_trial

    config = load_trial_config(args.config)
    trial_id = describe(config).trial_id  # the id a study gives the same trial
    workdir = Path(args.workdir or Path("runs") / "trials" / trial_id)

    def report(row: dict, _: Path) -> None:
        shown = {
            k: round(v, 4) for k, v in row.items() if k in ("train/loss", "val/recall@1", "test/recall@1")
        }
        print(f"epoch {row['epoch']}: {shown}", flush=True)

    quiet = args.quiet or args.json
    record = run_trial(config, workdir, on_epoch=None if quiet else report, progress=not quiet)
    if args.out:
        Path(args.out).write_text(record.to_json(indent=1))
    if args.json:
        print(record.to_json(indent=1))
        return 0
    flat = asdict(record.identity) | record.scalars()
    flat |= {"device": record.environment.device, "checkpoint": record.checkpoint}
    for key, value in flat.items():
        if value is not None:
            print(f"{key}: {_shown(value)}")
    print(f"checkpoints in {workdir}")
    return 0


def _shown(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
