"""DML methods: losses with their miners and own parameters, registered by name (``METHODS``)."""

from tasks.methods.base import Hyperparameter, Method, MethodSpec
from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.margin import MarginLoss
from tasks.methods.registry import METHODS, build_method
from tasks.methods.rho_distance import RhoDistanceSampler

__all__ = [
    "METHODS",
    "DistanceWeightedSampler",
    "Hyperparameter",
    "MarginLoss",
    "Method",
    "MethodSpec",
    "RhoDistanceSampler",
    "build_method",
]
