"""The Ray Tune function trainable: one planned trial, checkpointed after every epoch.

Runs on a Ray worker, whose working directory is not the study folder, so every path is absolute.
The trial's working folder is ``<study>/trials/<trial id>``; ``run_trial`` resumes from it, and a
retried trial first restores it from its latest Tune checkpoint (the retry may run on another node). For a
study folder on an object store the trial works in the node's scratch space (``study.scratch``): its folder
is pulled from the store when it starts and pushed after every epoch, which serves a retry on any node
and a resumed study alike, so Tune keeps no per-epoch checkpoint of it.
The final report carries the whole trial record (``TrialRecord.to_json``) and the selected weights as its
checkpoint; the driver turns them into result rows and an MLflow run.

GPUs (``resources.gpus``, docs/cluster.md): Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it gives a trial,
so torch sees those only. The record keeps Ray's ids and that variable beside the device the trial used. A
trial given GPUs on a node where torch cannot use CUDA stops (``gpu_refusal``) instead of training on the
CPU under ``training.device: auto``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from study.expand import PlannedTrial, with_hyperparameters
from study.plugins import PluginError, PluginSource
from study.plugins import load as load_plugins
from study.results.layout import trial_dir
from study.results.storage import StudyPath, Where
from study.scratch import TrialFolder, localized

if TYPE_CHECKING:
    from tasks.record import TrialRecord

OBJECTIVE = "objective"  # best validation value so far of the tuning metric (what the search maximises)
RECORD = "trial_record"
ERROR = "trial_error"
SEARCH = "search"  # in a tuning trial's config: which search (dataset/method) suggested it
WHERE = ("ray_node_id", "hostname")  # in every report: the Ray node and host the trial runs on
# Raised the same way on every attempt (bad values, a diverging loss): recorded as failed, not retried.
DETERMINISTIC = (ValueError, FloatingPointError)


def trial_workdir(study_dir: Where, trial_id: str) -> StudyPath:
    return trial_dir(study_dir, trial_id)


def planned_trial(config: dict, bases: dict[str, dict] | None) -> PlannedTrial:
    """The trial a Tune config stands for: a grid entry, or searched values on their search's base."""
    if bases is None:
        return PlannedTrial.from_dict(config["trial"])
    values = {k: v for k, v in config.items() if k != SEARCH}
    return with_hyperparameters(PlannedTrial.from_dict(bases[config[SEARCH]]), values)


def cuda_problem() -> str | None:
    """Why torch cannot use CUDA in this process, or None if it can."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    absent = (
        "this machine has none" if visible is None else f"CUDA_VISIBLE_DEVICES={visible!r} names none here"
    )
    return (
        f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable GPU (NVIDIA "
        f"driver missing or too old, or {absent})"
    )


def gpu_refusal(
    device: str, gpu_ids: Sequence[str], no_cuda: str | None, where: Mapping[str, str]
) -> str | None:
    """Why a trial that Ray gave ``gpu_ids`` must not run on this node (``where``: ``WHERE``'s values), or
    None. It must not when torch cannot use CUDA here (``no_cuda`` says why) and ``training.device`` is
    ``auto`` (it would train on the CPU, slowly, holding a GPU nobody uses) or ``cuda``. ``cpu`` (or
    ``mps``) is the user's deliberate choice: the trial runs so.

    Recorded as a failed trial, not retried: the node stays as it is, so an attempt on it fails the same
    way, and Tune may well place the retry there again. The error names the node so that it gets fixed;
    ``oodml resume`` then reruns the failed trials."""
    if not gpu_ids or no_cuda is None or not (device == "auto" or device.startswith("cuda")):
        return None
    return (
        f"GPUUnavailableError: Ray gave this trial GPU {', '.join(gpu_ids)} on host {where['hostname']} "
        f"(Ray node {where['ray_node_id']}), but {no_cuda}; with training.device: {device} it would not "
        "use that GPU. Install a CUDA build of torch on that node or fix its NVIDIA driver; if it has no "
        "GPU, start it without declaring any (ray start --num-gpus=0); or set training.device: cpu to "
        "train on the CPU deliberately"
    )


def _with_gpus(record: TrialRecord, gpu_ids: tuple[str, ...]) -> TrialRecord:
    """The record with the GPUs Ray gave the trial and the CUDA_VISIBLE_DEVICES it ran under."""
    environment = dataclasses.replace(
        record.environment,
        ray_gpu_ids=gpu_ids,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    return dataclasses.replace(record, environment=environment)


def _numbers(row: dict) -> dict:
    return {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_planned(
    config: dict,
    *,
    study_dir: str,
    metric: str,
    bases: dict[str, dict] | None = None,
    plugins: tuple[PluginSource, ...] = (),
) -> None:
    """Tune entry point (bind ``study_dir``, ``metric``, the study's ``plugins`` and, for tuning, ``bases``
    with tune.with_parameters). The plugins load first: the trial may name their components."""
    import ray
    from ray import tune

    from tasks.trial import run_trial

    here = dict(zip(WHERE, (ray.get_runtime_context().get_node_id(), socket.gethostname()), strict=True))

    def send(metrics: dict, checkpoint=None) -> None:  # tune.report, saying where the trial runs
        tune.report({**metrics, **here}, checkpoint=checkpoint)

    try:
        load_plugins(plugins)
    except PluginError as err:  # the driver loaded them: this node lacks what they import
        send({OBJECTIVE: math.nan, ERROR: f"{type(err).__name__} on this worker: {err}"})
        return
    trial = planned_trial(config, bases)
    gpu_ids = tuple(str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", ()))
    refusal = gpu_refusal(trial.config.training.device, gpu_ids, cuda_problem() if gpu_ids else None, here)
    if refusal:
        send({OBJECTIVE: math.nan, ERROR: refusal})
        return
    folder = TrialFolder(trial_workdir(study_dir, trial.trial_id))
    workdir = folder.pull()
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            shutil.copytree(saved, workdir, dirs_exist_ok=True)
    best = -math.inf

    def report(row: dict, directory: Path) -> None:
        nonlocal best
        best = max(best, row.get(metric, -math.inf))
        folder.push()
        epoch = None if folder.remote else tune.Checkpoint.from_directory(directory)
        send({**_numbers(row), OBJECTIVE: best}, checkpoint=epoch)

    try:
        record = run_trial(localized(trial.config), workdir, on_epoch=report)
    except DETERMINISTIC as err:
        send({OBJECTIVE: math.nan, ERROR: f"{type(err).__name__}: {err}"})
        return
    if record.trial_id != trial.trial_id:  # one identity function: only a changed split file gets here
        send({OBJECTIVE: math.nan, ERROR: _changed_split(trial, record.trial_id)})
        return
    folder.push()
    weights = record.checkpoint  # a local path (in the scratch space for a study on an object store)
    record = _with_gpus(record, gpu_ids)
    if weights is not None:
        record = dataclasses.replace(record, checkpoint=folder.stored_path(weights))
    curve = record.curves.values.get(metric) or [_final(record, metric)]  # untrained: no epochs
    final = {OBJECTIVE: max(curve), RECORD: record.to_json()}
    if weights is None:  # untrained (frozen baseline): its weights are the published ones
        send(final)
        return
    with tempfile.TemporaryDirectory() as selected:
        shutil.copy2(weights, selected)
        send(final, checkpoint=tune.Checkpoint.from_directory(selected))


def _final(record: TrialRecord, metric: str) -> float:
    """The recorded value of a tuning metric (a display name such as ``val/recall@1``), else NaN."""
    found = [m.value for m in record.measurements if m.name == metric]
    return found[0] if found else math.nan


def _changed_split(trial: PlannedTrial, trial_id: str) -> str:
    return (
        f"ValueError: trial {trial.label} was planned as {trial.trial_id} but ran as {trial_id}: its split "
        f"file {trial.config.data.split_file} changed after the study read it; rerun the study"
    )
