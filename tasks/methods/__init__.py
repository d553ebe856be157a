"""DML methods: losses with their miners and own parameters, registered by name (``METHODS``, ``register_method``)."""

from tasks.methods.base import Hyperparameter, Method, MethodSpec, TrainBatch
from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.margin import MarginLoss
from tasks.methods.multisimilarity import MultiSimilarityMiner
from tasks.methods.registry import METHODS, build_method, check_variant, method_spec, register_method
from tasks.methods.rho_distance import RhoDistanceSampler
from tasks.methods.semihard import SemihardMiner

__all__ = [
    "METHODS",
    "DistanceWeightedSampler",
    "Hyperparameter",
    "MarginLoss",
    "Method",
    "MethodSpec",
    "MultiSimilarityMiner",
    "RhoDistanceSampler",
    "SemihardMiner",
    "TrainBatch",
    "build_method",
    "check_variant",
    "method_spec",
    "register_method",
]
