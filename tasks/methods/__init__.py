"""DML methods: losses with their miners and own parameters, registered by name (``METHODS``, ``register_method``);
a composite method is built from registered ones (``composite``, ``Part``)."""

from tasks.methods.base import Hyperparameter, Method, MethodSpec, Part, TrainBatch
from tasks.methods.composite import PartFactory, composite
from tasks.methods.distance_weighted import DistanceWeightedSampler
from tasks.methods.margin import MarginLoss
from tasks.methods.miners import MinedLoss, Miner, Pairs, Triplets
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
