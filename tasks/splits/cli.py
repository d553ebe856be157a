"""``oodml splits build`` and ``oodml splits show``."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from tasks.splits.files import SplitFile, read_split_file
from tasks.splits.options import ProgressionOverrides, SplitOptions
from tasks.splits.progressions import ProgressionConfig
from tasks.splits.settings import overrides_of, progression_config


def parse_options(pairs: list[str]) -> dict[str, object]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)  # 40 -> int, 0.5 -> float, [A, B] -> list, true -> bool
    return options


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _kinds(field: FieldInfo) -> list:
    return [k for k in get_args(field.annotation) or (field.annotation,) if k is not type(None)]


def _metavar(name: str, field: FieldInfo) -> str:
    """``N`` for a number, ``N,N,...`` for a list of them, ``KEY,KEY,...`` for a list of names."""
    words = {int: "N", list[int]: "N,N,...", list[str]: "KEY,KEY,..."}
    return "|".join(words.get(k, name.upper()) for k in _kinds(field))


def add_option_flags(parser: argparse.ArgumentParser, model: type[BaseModel], groups: dict) -> None:
    """A flag per field of ``model`` (``swaps_per_step`` -> ``--swaps-per-step``), its help the field's
    description and its default the field's; values are checked by the model (``options_from_arguments``).
    ``groups`` maps a model (a base of ``model``) to the argument group its fields go in; the rest go in
    ``parser``."""
    for name, field in model.model_fields.items():
        owner = next((group for base, group in groups.items() if name in base.model_fields), parser)
        default = field.get_default(call_default_factory=True)
        kinds = _kinds(field)  # a list, or a choice of kinds, is read from the flag's text by the model
        kind = kinds[0] if len(kinds) == 1 and kinds[0] in (int, str) else None
        shown = "" if default is None else f" (default: {default})"
        owner.add_argument(
            _flag(name),
            dest=name,
            type=kind,
            default=default,
            metavar=_metavar(name, field),
            help=f"{field.description}{shown}",
        )


def options_from_arguments(args: argparse.Namespace) -> SplitOptions:
    """The build options of parsed flags, checked by the model; an error names the flag."""
    try:
        return SplitOptions.model_validate({name: getattr(args, name) for name in SplitOptions.model_fields})
    except ValidationError as err:
        lines = [
            f"{_flag(str(e['loc'][0])) if e['loc'] else 'splits build'}: "
            + re.sub(r"^Value error, ", "", e["msg"])
            for e in err.errors()
        ]
        raise ValueError("; ".join(lines)) from None


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
    source.add_argument("--cache-dir", help="where per-image features are cached")
    parser.add_argument("--out", required=True, help="output folder for splits.json and splits.pkl")
    progressions = parser.add_argument_group(
        "progressions (defaults: the dataset's published settings; for others CUB200's, scaled to the class count)"
    )
    add_option_flags(parser, SplitOptions, {ProgressionOverrides: progressions})


def _progression_config(
    options: SplitOptions, dataset: str | None, train: Sequence[str], test: Sequence[str]
) -> ProgressionConfig:
    """The dataset's settings (published, or scaled to its initial partition) with the command-line
    overrides applied."""
    return progression_config(dataset, sides=(len(train), len(test)), **overrides_of(options))


def _from_dataset(args: argparse.Namespace, s: SplitOptions) -> SplitFile:
    from tasks.data import build_dataset
    from tasks.splits.build import build_from_dataset  # feature extraction (torch): only when it runs

    options = parse_options(args.option)
    images = build_dataset(args.dataset, args.root, **options)
    return build_from_dataset(
        args.dataset,
        images,
        args.out,
        extractor=s.extractor,
        weights=s.weights,
        cache_dir=args.cache_dir,
        device=s.device,
        config=_progression_config(s, args.dataset, images.default_train, images.default_test),
        selection=s.select,
        shots=s.shots,
        episodes=s.episodes,
        support=s.support,
        seed=s.seed,
        dataset_options=options,
        shift_extractors=s.shift_extractors or (),
    )


def _from_features(args: argparse.Namespace, s: SplitOptions) -> SplitFile:
    """Splits from precomputed class means: no image lists, so no few-shot episodes."""
    from tasks.splits.build import build_split_file, load_features_npz, write_split_outputs

    if s.shift_extractors:
        raise ValueError(
            "--shift-extractors needs the images (--dataset NAME): precomputed class means (--features) "
            "have no features under other extractors"
        )
    names, means, train, test = load_features_npz(args.features)
    split_file = build_split_file(
        names,
        means,
        train,
        test,
        config=_progression_config(s, None, train, test),
        selection=s.select,
        episodes=s.episodes,
        seed=s.seed,
        provenance={"features": str(Path(args.features).resolve())},
        progress=True,
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
    options = options_from_arguments(args)
    split_file = _from_dataset(args, options) if args.dataset else _from_features(args, options)
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
            "shift": s.shift,
        }
        for s in split_file.splits
    ]


def format_table(split_file: SplitFile) -> str:
    """One line per split; a column per shift measure beyond FID that the splits store."""
    rows = split_rows(split_file)
    measures = sorted({name for r in rows for name in r["shift"] or {}})
    lines = [
        f"{'id':>3}  {'key':>6}  {'progression':<11}  {'FID':>10}  {'#train':>6}  {'#test':>6}"
        + "".join(f"  {name:>12}" for name in measures)
    ]
    for r in rows:
        measured = r["shift"] or {}
        lines.append(
            f"{r['id']:>3}  {r['key']:>6}  {r['progression']:<11}  {r['fid']:>10.3f}  "
            f"{r['train_classes']:>6}  {r['test_classes']:>6}"
            + "".join(f"  {measured.get(name, float('nan')):>12.5g}" for name in measures)
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
