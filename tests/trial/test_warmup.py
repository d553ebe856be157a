"""Warm-up epochs (``training.warmup_epochs``): the backbone is frozen, as the original's ``--warmup``
runs its first epochs (the backbone under ``no_grad``, so its weights stay where they were), while the
head and the method's own parameters train; afterwards everything trains."""

from __future__ import annotations

import torch

from tasks.models import build_model
from tasks.splits.files import read_split_file
from tasks.train import train_model
from tests.trial.configs import trial_config


def _snapshots(glyph_benchmark, tmp_path, warmup: int) -> list[dict[str, dict[str, torch.Tensor]]]:
    torch.set_num_threads(2)
    config = trial_config(
        glyph_benchmark,
        **{
            "method.name": "proxyanchor",
            "model.embedding_dim": 16,
            "training.epochs": 3,
            "training.batch_size": 16,
            "training.iterations_per_epoch": 2,
            "training.warmup_epochs": warmup,
            "training.record_test_curve": False,
            "fewshot.shots": [],
        },
    )
    split = read_split_file(config.data.split_file).split("0")
    seen: list[dict[str, dict[str, torch.Tensor]]] = []
    torch.manual_seed(config.seed)
    start = build_model(config.model.backbone, config.model.embedding_dim, pretrained=False)
    seen.append({"backbone": {k: v.clone() for k, v in start.backbone.state_dict().items()}})

    def on_epoch(record, workdir):
        state = torch.load(workdir / "last.pt", weights_only=True)
        seen.append(
            {
                part: {k[len(part) + 1 :]: v for k, v in state["model"].items() if k.startswith(f"{part}.")}
                for part in ("backbone", "head")
            }
            | {"method": state["method"]}
        )

    train_model(config, glyph_benchmark["images"], split, tmp_path / "trial", on_epoch=on_epoch)
    return seen


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal weights; BatchNorm statistics are left out: the glyph CNN does not freeze them, and the
    original's warm-up (a forward under no_grad in train mode) updates unfrozen ones too."""
    weights = [k for k in a if "running_" not in k and "num_batches" not in k]
    return all(torch.equal(a[k], b[k]) for k in weights)


def test_the_backbone_is_frozen_during_warm_up_and_trains_after(glyph_benchmark, tmp_path) -> None:
    start, first, second, third = _snapshots(glyph_benchmark, tmp_path, warmup=2)
    assert _same(start["backbone"], first["backbone"]) and _same(first["backbone"], second["backbone"])
    assert not _same(first["head"], second["head"])  # the head trains while the backbone waits
    assert not _same(first["method"], second["method"])  # and the proxies
    assert not _same(second["backbone"], third["backbone"])  # after the warm-up, the backbone trains


def test_without_warm_up_the_backbone_trains_from_the_first_epoch(glyph_benchmark, tmp_path) -> None:
    start, first, *_ = _snapshots(glyph_benchmark, tmp_path, warmup=0)
    assert not _same(start["backbone"], first["backbone"])
