"""``oodml splits build`` and ``oodml splits show``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from tasks.splits.build import build_from_dataset, build_split_file, load_features_npz, write_split_outputs
from tasks.splits.episodes import DEFAULT_EPISODES, EPISODE_BUILDERS
from tasks.splits.files import SplitFile, read_split_file
from tasks.splits.progressions import ProgressionConfig
from tasks.splits.selection import parse_selection
from tasks.splits.settings import overrides_of, progression_config


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_options(pairs: list[str]) -> dict[str, object]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)  # 40 -> int, 0.5 -> float, [A, B] -> list, true -> bool
    return options


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (a dataset, or precomputed class means)")
    source.add_argument("--dataset", help="dataset name (cub200, cars196, sop, imagefolder, glyphs)")
    source.add_argument(
        "--root", help="dataset folder (for glyphs: the render cache; default ~/.cache/oodml)"
    )
    source.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option; VALUE is read as YAML (40, 0.5, true, [a, b])",
    )
    source.add_argument("--features", help="npz with class_names, class_means, train, test")
    source.add_argument(
        "--extractor", help="FID feature extractor (default: resnet50; glyph-classifier for glyphs)"
    )
    source.add_argument("--weights", help="path to the extractor's pretrained weights")
    source.add_argument("--cache-dir", help="where per-image features are cached")
    source.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder for splits.json and splits.pkl")
    prog = parser.add_argument_group(
        "progressions (defaults: the dataset's published settings; for others CUB200's, scaled to the class count)"
    )
    prog.add_argument("--steps", type=int, help="harder steps N")
    prog.add_argument("--swaps-per-step", type=int, help="swaps per step K (all progressions)")
    prog.add_argument("--history", type=int, help="swap history H (harder and removal)")
    prog.add_argument("--easier-steps", type=int)
    prog.add_argument("--easier-history", type=int)
    prog.add_argument("--removal-steps", type=int)
    parser.add_argument(
        "--select", help="number of splits (default 8) or comma-separated keys, e.g. -20,0,6,R22"
    )
    parser.add_argument(
        "--shots", type=_ints, help="few-shot budgets (default 2,5,10; 2,5 with whole-class support)"
    )
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    parser.add_argument(
        "--support",
        choices=sorted(EPISODE_BUILDERS),
        help="few-shot support: 'images' per test class, or whole test 'classes' (default: classes for sop, "
        "images otherwise; DESIGN.md 6)",
    )
    parser.add_argument("--seed", type=int, default=0)


def _progression_config(
    args: argparse.Namespace, train: Sequence[str], test: Sequence[str]
) -> ProgressionConfig:
    """The dataset's settings (published, or scaled to its initial partition) with the command-line
    overrides applied."""
    return progression_config(args.dataset, sides=(len(train), len(test)), **overrides_of(args))


def _from_dataset(args: argparse.Namespace) -> SplitFile:
    from tasks.data import build_dataset

    options = parse_options(args.option)
    images = build_dataset(args.dataset, args.root, **options)
    return build_from_dataset(
        args.dataset,
        images,
        args.out,
        extractor=args.extractor,
        weights=args.weights,
        cache_dir=args.cache_dir,
        device=args.device,
        config=_progression_config(args, images.default_train, images.default_test),
        selection=parse_selection(args.select),
        shots=args.shots,
        episodes=args.episodes,
        support=args.support,
        seed=args.seed,
        dataset_options=options,
    )


def _from_features(args: argparse.Namespace) -> SplitFile:
    """Splits from precomputed class means: no image lists, so no few-shot episodes."""
    names, means, train, test = load_features_npz(args.features)
    split_file = build_split_file(
        names,
        means,
        train,
        test,
        config=_progression_config(args, train, test),
        selection=parse_selection(args.select),
        episodes=args.episodes,
        seed=args.seed,
        provenance={"features": str(Path(args.features).resolve())},
    )
    write_split_outputs(split_file, args.out)
    return split_file


def report(split_file: SplitFile, out_dir: str | Path) -> None:
    """The built splits as a table, notes on classes left out of episodes, and where the files are."""
    print(format_table(split_file))
    for s in split_file.splits:
        for shots, classes in s.too_small.items():
            print(
                f"note: split {s.id}: {len(classes)} test classes have too few images for {shots} shots "
                f"and are left out of its episodes",
                file=sys.stderr,
            )
    print(f"wrote {Path(out_dir) / 'splits.json'} and {Path(out_dir) / 'splits.pkl'}")


def build(args: argparse.Namespace) -> int:
    if bool(args.dataset) == bool(args.features):
        raise ValueError("give exactly one source: --dataset NAME (with --root) or --features FILE.npz")
    split_file = _from_dataset(args) if args.dataset else _from_features(args)
    report(split_file, args.out)
    return 0


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="splits.json or an ooDML .pkl")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def split_rows(split_file: SplitFile) -> list[dict]:
    return [
        {
            "id": s.id,
            "key": s.key,
            "progression": s.progression,
            "fid": s.fid,
            "train_classes": len(s.train),
            "test_classes": len(s.test),
        }
        for s in split_file.splits
    ]


def format_table(split_file: SplitFile) -> str:
    lines = [f"{'id':>3}  {'key':>6}  {'progression':<11}  {'FID':>10}  {'#train':>6}  {'#test':>6}"]
    for r in split_rows(split_file):
        lines.append(
            f"{r['id']:>3}  {r['key']:>6}  {r['progression']:<11}  {r['fid']:>10.3f}  "
            f"{r['train_classes']:>6}  {r['test_classes']:>6}"
        )
    return "\n".join(lines)


def show(args: argparse.Namespace) -> int:
    split_file = read_split_file(args.file)
    print(json.dumps(split_rows(split_file), indent=1) if args.json else format_table(split_file))
    return 0


def add_convert_sop_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pickle", help="the ooDML code's SOP split pickle (online_products_splits.pkl)")
    parser.add_argument("--root", required=True, help="the Stanford Online Products folder")
    parser.add_argument("--out", required=True, help="the split file to write (.json)")


def convert_sop(args: argparse.Namespace) -> int:
    from tasks.data import build_dataset
    from tasks.splits.files import write_json
    from tasks.splits.sop_pickle import read_sop_pickle

    split_file = read_sop_pickle(args.pickle, build_dataset("sop", args.root))
    print(format_table(split_file))
    print(f"wrote {write_json(split_file, args.out)}")
    return 0
