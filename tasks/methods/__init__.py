"""DML methods: losses with their miners and own parameters, registered by name (``METHODS``, ``register_method``);
a composite method is built from registered ones (``composite``, ``Part``).

Importing the package registers the built-in methods' declarations (``tasks/methods/catalog.py``) and
imports no torch; the torch-backed names below (``Method``, ``MarginLoss``, the miners) are imported on
first use, as is each method's module when the method is first built.
"""

from typing import Any

from tasks.methods import catalog  # noqa: F401  (registers the built-in methods)
from tasks.methods.composite import PartFactory, composite
from tasks.methods.declaration import Hyperparameter, MethodSpec, Part
from tasks.methods.registry import METHODS, build_method, check_variant, method_spec, register_method

TORCH_BACKED = {
    "DistanceWeightedSampler",
    "MarginLoss",
    "Method",
    "MinedLoss",
    "Miner",
    "MultiSimilarityMiner",
    "Pairs",
    "RhoDistanceSampler",
    "SemihardMiner",
    "TrainBatch",
    "Triplets",
}


def __getattr__(name: str) -> Any:
    """The torch-backed names: the first asked for imports them all (the losses, miners and samplers)."""
    if name not in TORCH_BACKED:
        raise AttributeError(f"module 'tasks.methods' has no attribute {name!r}")
    from tasks.methods import base, distance_weighted, margin, miners, multisimilarity, rho_distance, semihard

    modules = (base, distance_weighted, margin, miners, multisimilarity, rho_distance, semihard)
    return next(getattr(module, name) for module in modules if hasattr(module, name))


__all__ = [
    "METHODS",
    "DistanceWeightedSampler",
    "Hyperparameter",
    "MarginLoss",
    "Method",
    "MethodSpec",
    "MinedLoss",
    "Miner",
    "MultiSimilarityMiner",
    "Pairs",
    "Part",
    "PartFactory",
    "RhoDistanceSampler",
    "SemihardMiner",
    "TrainBatch",
    "Triplets",
    "build_method",
    "check_variant",
    "composite",
    "method_spec",
    "register_method",
]
