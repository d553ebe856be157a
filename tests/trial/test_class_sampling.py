"""``training.class_sampling`` reaches the batches a trial trains on (tasks/train.py builds the sampler).

The batches are recorded where the trial's training loop meets them: the positions its ``DataLoader``
draws (into the trial's training images) and the labels its method's loss is given. ``distinct``: a
batch's classes are distinct and so are each class's images (every glyph class has 8 images, more than the
4 a batch takes), so every batch holds 8 classes x 4 different images. ``with_replacement`` (the ooDML
sampler): every class slot and every image is an independent draw, so classes and images repeat.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

import tasks.train
from tasks.splits.files import read_split_file
from tasks.train import train_model, training_classes
from tests.trial.configs import trial_config

BATCHES, BATCH_SIZE, PER_CLASS = 12, 32, 4
SLOTS = BATCH_SIZE // PER_CLASS  # class slots per batch


def _train_and_record(bench, tmp_path, monkeypatch, class_sampling: str):
    """Train one epoch of ``BATCHES`` batches; return the sampled positions per batch, the labels per
    batch as the loss saw them, and the number of training classes."""
    torch.set_num_threads(1)
    config = trial_config(
        bench,
        **{
            "model.embedding_dim": 16,
            "training.epochs": 1,
            "training.batch_size": BATCH_SIZE,
            "training.samples_per_class": PER_CLASS,
            "training.iterations_per_epoch": BATCHES,
            "training.class_sampling": class_sampling,
            "fewshot.shots": [],
        },
    )
    split = read_split_file(config.data.split_file).split("0")
    positions: list[list[int]] = []
    labels: list[list[int]] = []
    real_loader, real_method = tasks.train.DataLoader, tasks.train.build_method

    class Recorded:
        def __init__(self, batches):
            self.batches = batches

        def __len__(self):
            return len(self.batches)

        def __iter__(self):
            for batch in self.batches:
                positions.append(list(batch))
                yield batch

    def loader(dataset, batch_sampler, **options):
        return real_loader(dataset, batch_sampler=Recorded(batch_sampler), **options)

    def method(*args, **kwargs):
        built = real_method(*args, **kwargs)
        loss = built.training_loss

        def recording_loss(batch):
            labels.append(batch.labels.tolist())
            return loss(batch)

        built.training_loss = recording_loss
        return built

    monkeypatch.setattr(tasks.train, "DataLoader", loader)
    monkeypatch.setattr(tasks.train, "build_method", method)
    monkeypatch.setattr(tasks.train, "evaluate_classes", lambda *a, **k: {"recall@1": 0.5, "map@r": 0.5})
    train_model(config, bench["images"], split, tmp_path / class_sampling)
    assert len(labels) == BATCHES and all(len(b) == BATCH_SIZE for b in labels)
    return positions, labels, len(training_classes(config, split))


def test_distinct_batches_hold_distinct_classes_and_images(glyph_benchmark, tmp_path, monkeypatch):
    positions, labels, _ = _train_and_record(glyph_benchmark, tmp_path, monkeypatch, "distinct")
    for batch in labels:
        assert sorted(Counter(batch).values()) == [PER_CLASS] * SLOTS  # 8 classes, 4 images each
    assert all(len(set(batch)) == BATCH_SIZE for batch in positions)  # no image twice


def test_with_replacement_batches_repeat_classes_and_images(glyph_benchmark, tmp_path, monkeypatch):
    positions, labels, n_classes = _train_and_record(
        glyph_benchmark, tmp_path, monkeypatch, "with_replacement"
    )
    # Drawn with replacement, a batch's 8 slots are all different classes with probability
    # prod_{i<8} (1 - i / C), and a slot's 4 images all different with 8*7*6*5 / 8^4 = 0.41: over 12 batches
    # a run without any repeated class, or without any repeated image, is (practically) impossible.
    no_repeat = math.prod(1 - i / n_classes for i in range(SLOTS))
    assert no_repeat**BATCHES < 1e-6 and (8 * 7 * 6 * 5 / 8**4) ** (BATCHES * SLOTS) < 1e-6
    counts = [Counter(batch) for batch in labels]
    assert all(c % PER_CLASS == 0 for count in counts for c in count.values())  # whole slots of 4
    assert any(len(count) < SLOTS for count in counts)  # some batch holds a class in two slots
    assert any(len(set(batch)) < BATCH_SIZE for batch in positions)  # some image drawn twice
    # and not only within a slot: some class fills more than one slot of a batch
    assert any(max(count.values()) > PER_CLASS for count in counts)
