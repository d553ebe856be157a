import math

import pytest
import torch

from study.results.schema import trial_rows
from tasks.fewshot import resolve_episode
from tasks.splits.episodes import whole_class_episodes
from tasks.splits.files import read_split_file, write_json
from tasks.train import NonFiniteLossError
from tasks.trial import run_trial
from tests.trial.configs import trial_config


@pytest.mark.slow
def test_demo_trial_learns_selects_on_validation_and_adapts(glyph_benchmark, tmp_path):
    torch.set_num_threads(2)
    record = run_trial(trial_config(glyph_benchmark), tmp_path / "trial")
    chance = 1 / record.identity.num_test_classes
    assert record.measurement("test", "recall@1") > 5 * chance  # far above chance after 3 short epochs
    curves = record.curves.values
    assert len(record.curves.epochs) == 3
    assert record.selected_epoch == max(
        range(3), key=lambda e: curves["val/recall@1"][e] + curves["val/map@r"][e]
    )
    flat = record.scalars()
    assert flat["fewshot/2/episodes"] == 2 and flat["fewshot/2/support"] == "images"
    for kind in ("fewshot", "zeroshot"):
        assert 0 <= flat[f"fewshot/2/{kind}/recall@1"] <= 1
        assert not math.isnan(flat[f"fewshot/2/{kind}/recall@1/ci95"])
    assert (tmp_path / "trial" / "best.pt").is_file()
    weights = torch.load(tmp_path / "trial" / "best.pt", weights_only=True)
    assert set(weights) == {"model", "epoch"}


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(glyph_benchmark, tmp_path):
    full = run_trial(trial_config(glyph_benchmark, **{"fewshot.shots": []}), tmp_path / "full")
    first = run_trial(
        trial_config(glyph_benchmark, **{"training.epochs": 2, "fewshot.shots": []}), tmp_path / "resumed"
    )
    assert first.resumed_from_epoch is None
    resumed = run_trial(trial_config(glyph_benchmark, **{"fewshot.shots": []}), tmp_path / "resumed")
    assert resumed.resumed_from_epoch == 2
    # seeded per epoch: training two epochs, stopping, and continuing gives the uninterrupted result
    loss = "train/loss"
    assert resumed.curves.values[loss] == pytest.approx(full.curves.values[loss], rel=1e-5)
    assert resumed.measurement("test", "recall@1") == pytest.approx(full.measurement("test", "recall@1"))


def test_non_finite_loss_names_epoch_and_step(glyph_benchmark, tmp_path):
    config = trial_config(
        glyph_benchmark, **{"training.lr": float("inf"), "training.epochs": 2, "fewshot.shots": []}
    )
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 1"):
        run_trial(config, tmp_path / "nan")


def test_split_naming_unknown_classes_is_refused(glyph_benchmark, tmp_path):
    config = trial_config(glyph_benchmark, **{"data.options": {**glyph_benchmark["options"], "seed": 1}})
    with pytest.raises(ValueError, match="not in dataset"):
        run_trial(config, tmp_path / "x")


def test_whole_class_episodes_adapt_on_some_test_classes_and_query_the_others(glyph_benchmark, tmp_path):
    split_file = read_split_file(glyph_benchmark["split_file"])
    images = glyph_benchmark["images"]
    by_class = {c: [images.image_ids[i] for i in idx] for c, idx in images.indices_by_class().items()}
    split = split_file.split("0")
    episodes, _ = whole_class_episodes(by_class, split.test, 2, episodes=3, seed=0)
    whole = split.model_copy(update={"episodes": {2: episodes}})
    path = tmp_path / "whole-class.json"
    write_json(split_file.model_copy(update={"splits": [whole]}), path)

    for episode in episodes:
        support, query = resolve_episode(images, episode, split.test)
        support_classes = {images.labels[i] for i in support}
        query_classes = {images.labels[i] for i in query}
        assert support_classes == set(episode) and query_classes == set(split.test) - set(episode)
        assert len(support) == sum(len(by_class[c]) for c in episode)  # every image of a support class

    config = trial_config(
        {**glyph_benchmark, "split_file": str(path)},
        **{"training.epochs": 1, "fewshot.episodes": 3, "fewshot.iterations": {2: 10}},
    )
    record = run_trial(config, tmp_path / "trial")
    flat = record.scalars()
    assert flat["fewshot/2/episodes"] == 3 and flat["fewshot/2/left_out_classes"] == 0
    assert flat["fewshot/2/support"] == "classes"
    rows = [r for r in trial_rows(record, stage="eval", study="s").to_pylist() if r["shots"] == 2]
    assert rows and {r["support"] for r in rows} == {"classes"}  # the results table says which protocol
    for kind in ("fewshot", "zeroshot"):
        assert 0 < flat[f"fewshot/2/{kind}/recall@1"] <= 1
        assert not math.isnan(flat[f"fewshot/2/{kind}/recall@1/ci95"])
