"""``oodml splits build`` and ``oodml splits show``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from tasks.splits.build import build_split_file, load_features_npz, write_split_outputs
from tasks.splits.episodes import DEFAULT_EPISODES, DEFAULT_SHOTS, EPISODE_BUILDERS
from tasks.splits.files import SplitFile, read_split_file
from tasks.splits.progressions import ProgressionConfig
from tasks.splits.selection import parse_selection
from tasks.splits.settings import default_settings, default_support

# The paper's few-shot budgets; a whole-class support of 10 shots per class would need more images
# than SOP's test classes hold (about 5 each).
DEFAULT_CLASS_SHOTS = (2, 5)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _options(pairs: list[str]) -> dict[str, object]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    return options


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (a dataset, or precomputed class means)")
    source.add_argument("--dataset", help="dataset name (cub200, cars196, sop, imagefolder, glyphs)")
    source.add_argument(
        "--root", help="dataset folder (for glyphs: the render cache; default ~/.cache/oodml)"
    )
    source.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="dataset option")
    source.add_argument("--features", help="npz with class_names, class_means, train, test")
    source.add_argument(
        "--extractor", help="FID feature extractor (default: resnet50; glyph-classifier for glyphs)"
    )
    source.add_argument("--weights", help="path to the extractor's pretrained weights")
    source.add_argument("--cache-dir", help="where per-image features are cached")
    source.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder for splits.json and splits.pkl")
    prog = parser.add_argument_group("progressions (defaults: the published settings of the dataset)")
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


def progression_config(args: argparse.Namespace, dataset: str | None) -> ProgressionConfig:
    """The dataset's published settings with the command-line overrides applied."""
    config = default_settings(dataset)
    k = args.swaps_per_step

    def override(settings, steps, history):
        changes = {"steps": steps, "history": history, "swaps_per_step": k}
        return replace(settings, **{name: v for name, v in changes.items() if v is not None})

    return ProgressionConfig(
        harder=override(config.harder, args.steps, args.history),
        easier=override(config.easier, args.easier_steps, args.easier_history),
        removal=override(config.removal, args.removal_steps, args.history),
    )


def _from_dataset(args: argparse.Namespace) -> dict:
    from tasks.data import build_dataset
    from tasks.splits.features import class_mean_features, default_extractor

    images = build_dataset(args.dataset, args.root, **_options(args.option))
    extractor = args.extractor or default_extractor(args.dataset)
    features = class_mean_features(
        images,
        extractor,
        cache_dir=args.cache_dir,
        weights=args.weights,
        device=args.device,
    )
    by_class = images.indices_by_class()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    features.save_npz(Path(args.out) / "class_means.npz")  # for the dashboard's projection of splits
    return {
        "class_names": features.class_names,
        "class_means": features.means,
        "initial_train": list(images.default_train),
        "initial_test": list(images.default_test),
        "images_by_class": {c: [images.image_ids[i] for i in idx] for c, idx in by_class.items()},
        "provenance": {
            "dataset": images.name,
            "root": str(images.root),
            "dataset_options": _options(args.option),
            "extractor": extractor,
            "feature_hash": features.feature_hash,
        },
    }


def _from_features(args: argparse.Namespace) -> dict:
    names, means, train, test = load_features_npz(args.features)
    return {
        "class_names": names,
        "class_means": means,
        "initial_train": train,
        "initial_test": test,
        "images_by_class": None,
        "provenance": {"features": str(Path(args.features).resolve())},
    }


def build(args: argparse.Namespace) -> int:
    if bool(args.dataset) == bool(args.features):
        raise ValueError("give exactly one source: --dataset NAME (with --root) or --features FILE.npz")
    source = _from_dataset(args) if args.dataset else _from_features(args)
    support = args.support or default_support(args.dataset)
    shots = args.shots or list(DEFAULT_SHOTS if support == "images" else DEFAULT_CLASS_SHOTS)
    split_file = build_split_file(
        source["class_names"],
        source["class_means"],
        source["initial_train"],
        source["initial_test"],
        config=progression_config(args, args.dataset),
        selection=parse_selection(args.select),
        images_by_class=source["images_by_class"],
        shots=shots,
        episodes=args.episodes,
        support=support,
        seed=args.seed,
        provenance=source["provenance"],
    )
    json_path, pkl_path = write_split_outputs(split_file, args.out)
    print(format_table(split_file))
    for s in split_file.splits:
        for shots, classes in s.too_small.items():
            print(
                f"note: split {s.id}: {len(classes)} test classes have too few images for {shots} shots "
                f"and are left out of its episodes",
                file=sys.stderr,
            )
    print(f"wrote {json_path} and {pkl_path}")
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
