"""Loader settings per device, and per-epoch seeding of persistent workers (resumes draw the same)."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from tasks.config import TrialConfig
from tasks.data.loading import PREFETCH_FACTOR, EpochSeeded, loader_options
from tasks.train import NonFiniteLossError, _check_finite


def test_cpu_loaders_keep_their_settings_and_cuda_loaders_pin_and_prefetch():
    assert loader_options(torch.device("cpu"), 2, persistent=True) == {"num_workers": 2}
    assert loader_options(torch.device("cuda"), 0, persistent=True) == {"num_workers": 0, "pin_memory": True}
    assert loader_options(torch.device("cuda"), 4, persistent=True) == {
        "num_workers": 4,
        "pin_memory": True,
        "prefetch_factor": PREFETCH_FACTOR,
        "persistent_workers": True,
    }
    assert loader_options(torch.device("cuda"), 4)["persistent_workers"] is False


class _Noise(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, k: int) -> torch.Tensor:
        return torch.rand(1)


def _epoch(loader: DataLoader, dataset: EpochSeeded, seed: int) -> torch.Tensor:
    dataset.set_seed(seed)
    return torch.cat(list(loader))


def test_persistent_workers_draw_each_epoch_from_its_seed_as_a_fresh_loader_would():
    def loader() -> tuple[DataLoader, EpochSeeded]:
        dataset = EpochSeeded(_Noise())
        return DataLoader(dataset, batch_size=2, num_workers=2, persistent_workers=True), dataset

    first, dataset = loader()
    epoch0, epoch1 = _epoch(first, dataset, 10), _epoch(first, dataset, 11)
    again = _epoch(first, dataset, 10)
    resumed, resumed_dataset = loader()  # a trial resumed at epoch 1
    assert torch.equal(_epoch(resumed, resumed_dataset, 11), epoch1)
    assert torch.equal(again, epoch0) and not torch.equal(epoch0, epoch1)


def test_deferred_loss_check_names_the_first_non_finite_step():
    config = TrialConfig.model_validate(
        {
            "data": {"dataset": "glyphs", "split_file": "x.json", "split": "0"},
            "method": {"name": "margin"},
        }
    )
    losses = torch.tensor([1.0, 2.0, float("nan"), float("inf")])
    _check_finite(losses, 0, 2, 0, config)
    with pytest.raises(NonFiniteLossError, match=r"\(nan\) at epoch 3, step 2"):
        _check_finite(losses, 1, 4, 3, config)
