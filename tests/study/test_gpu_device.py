"""GPUs as Ray resources, without Ray: which trial given a GPU refuses to run, the GPU fields of the record
and its result rows, and the fractions ``resources.gpus`` takes (tests/study/test_gpu_scheduling.py runs
them on a Ray node that declares a GPU)."""

from __future__ import annotations

import dataclasses

import pytest

from study.results.schema import trial_rows
from study.spec import SpecError, load_spec
from study.trainable import cuda_problem, gpu_refusal
from tasks.record import TrialRecord
from tests.records import make_record
from tests.study.test_spec import BASE

WHERE = {"ray_node_id": "a1b2c3", "hostname": "gpu-box-7"}
NO_CUDA = "torch 2.14.1+cu130 is built for CUDA 13.0 but finds no usable GPU"


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:1"])
def test_a_trial_given_a_gpu_where_torch_has_no_cuda_is_refused_naming_the_node(device):
    error = gpu_refusal(device, ("0", "1"), NO_CUDA, WHERE)
    assert error.startswith("GPUUnavailableError: Ray gave this trial GPU 0, 1 on host gpu-box-7")
    assert "(Ray node a1b2c3)" in error and NO_CUDA in error and f"training.device: {device}" in error
    for remedy in ("CUDA build of torch", "--num-gpus=0", "training.device: cpu"):
        assert remedy in error


@pytest.mark.parametrize(
    ("device", "gpu_ids", "no_cuda"),
    [
        ("cpu", ("0",), NO_CUDA),  # the user asked for the CPU: it runs there, holding Ray's GPU
        ("mps", ("0",), NO_CUDA),
        ("auto", (), NO_CUDA),  # no GPU from Ray: auto picks the CPU, as asked
        ("auto", ("0",), None),  # CUDA works: the trial uses the GPU
        ("cuda", ("0",), None),
    ],
)
def test_a_trial_runs_when_it_holds_no_gpu_can_use_it_or_chose_its_device(device, gpu_ids, no_cuda):
    assert gpu_refusal(device, gpu_ids, no_cuda, WHERE) is None


def test_cuda_problem_says_why_torch_here_cannot_use_cuda():
    import torch

    problem = cuda_problem()
    assert (problem is None) == torch.cuda.is_available()
    assert problem is None or torch.__version__ in problem


def test_the_gpus_ray_gave_a_trial_reach_its_record_json_and_result_rows():
    plain = make_record()
    assert plain.environment.ray_gpu_ids is None  # not run by Ray (oodml trial)
    environment = dataclasses.replace(plain.environment, ray_gpu_ids=("0", "3"), cuda_visible_devices="0,3")
    record = dataclasses.replace(plain, environment=environment)
    assert TrialRecord.from_json(record.to_json()) == record
    rows = trial_rows(record, stage="eval", study="s")
    assert set(rows["ray_gpu_ids"].to_pylist()[0]) == {"0", "3"}
    assert set(rows["cuda_visible_devices"].to_pylist()) == {"0,3"} and set(rows["device"].to_pylist()) == {
        "cpu"
    }
    assert set(trial_rows(plain, stage="eval", study="s")["ray_gpu_ids"].to_pylist()) == {None}
    older = record.to_dict()  # a record written before the GPU fields
    del older["environment"]["ray_gpu_ids"], older["environment"]["cuda_visible_devices"]
    assert TrialRecord.from_dict(older) == plain


@pytest.mark.parametrize("gpus", [0, 0.25, 0.5, 1, 2, 4.0])
def test_resources_take_a_fraction_of_one_gpu_or_whole_gpus(gpus):
    assert load_spec(BASE | {"resources": {"gpus": gpus}}).resources.gpus == gpus


@pytest.mark.parametrize(
    ("gpus", "said"), [(1.5, "use 1 or 2"), (2.25, "use 2 or 3"), (-0.5, "greater than")]
)
def test_resources_refuse_a_fraction_above_one_gpu_or_a_negative_count(gpus, said):
    with pytest.raises(SpecError, match="resources.gpus") as refused:
        load_spec(BASE | {"resources": {"gpus": gpus}})
    assert said in str(refused.value)
