"""Which failures of a trial are node losses (retried without counting against max_failures) and which
are its own: real Ray exception objects, built as Ray builds them from the GCS's death cause
(``ray.exceptions.ActorDiedError(ActorDiedErrorContext)``), no cluster."""

from __future__ import annotations

import pickle

import pytest
from ray import ActorID
from ray.core.generated.common_pb2 import ActorDeathCause, ActorDiedErrorContext, NodeDeathInfo
from ray.exceptions import (
    ActorDiedError,
    ActorUnavailableError,
    NodeDiedError,
    RayTaskError,
    WorkerCrashedError,
)

from study.execution import lost_with_node

ACTOR = ActorID.from_random().binary()


def _died(
    reason: int, node: int = NodeDeathInfo.UNSPECIFIED, message: str = ""
) -> tuple[ActorDiedError, ActorDeathCause]:
    """An actor's death as the GCS records it, and the error its caller gets."""
    context = ActorDiedErrorContext(
        actor_id=ACTOR,
        class_name="ImplicitFunc",
        reason=reason,
        error_message=message,
        node_death_info=NodeDeathInfo(reason=node, reason_message="received SIGTERM") if node else None,
    )
    return ActorDiedError(cause=context), ActorDeathCause(actor_died_error_context=context)


@pytest.mark.parametrize("node", [NodeDeathInfo.EXPECTED_TERMINATION, NodeDeathInfo.UNEXPECTED_TERMINATION])
def test_an_actor_that_died_with_its_node_is_a_node_loss(node):
    error, death = _died(ActorDiedErrorContext.NODE_DIED, node, "The actor died because its node has died.")
    assert lost_with_node(error, death)
    again = pickle.loads(pickle.dumps(error))  # as Tune keeps it (error.pkl) and the driver reads it back
    assert again.actor_id == error.actor_id and lost_with_node(again, death)


def test_a_drained_node_and_an_unreachable_or_dead_node_are_node_losses():
    preempted, _ = _died(ActorDiedErrorContext.NODE_DIED, NodeDeathInfo.AUTOSCALER_DRAIN_PREEMPTED)
    assert preempted.preempted and lost_with_node(preempted)
    assert lost_with_node(ActorUnavailableError("the node is unreachable", ACTOR))
    assert lost_with_node(NodeDiedError("node 0123 died"))


@pytest.mark.parametrize(
    "reason",
    [ActorDiedErrorContext.WORKER_DIED, ActorDiedErrorContext.RAY_KILL, ActorDiedErrorContext.OWNER_DIED],
)
def test_an_actor_that_died_on_a_live_node_failed_of_its_own(reason):
    error, death = _died(reason, message="The actor is dead because its worker process has died.")
    assert not lost_with_node(error, death)


def test_the_message_alone_does_not_make_a_node_loss():
    """Without the GCS's record (None) an actor's death is the trial's own, whatever its text says."""
    error, _ = _died(ActorDiedErrorContext.NODE_DIED, NodeDeathInfo.EXPECTED_TERMINATION, "its node has died")
    assert not lost_with_node(error, None)


def test_exceptions_of_the_trial_and_crashed_workers_are_its_own():
    try:
        raise ValueError("bad hyperparameter")
    except ValueError as err:
        raised = RayTaskError("run_planned", "Traceback ...", err)
    assert not lost_with_node(raised)
    assert not lost_with_node(WorkerCrashedError())
    assert not lost_with_node(ValueError("bad hyperparameter"))
