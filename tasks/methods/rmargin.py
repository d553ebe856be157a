"""R-Margin: margin loss with ρ-distance sampling (Roth et al., "Revisiting Training Strategies and
Generalization Performance in Deep Metric Learning", ICML 2020), as ooDML trains it: beta 0.6,
margin 0.2, beta learning rate 5e-4, ρ 0.4 (CUB200), 0.35 (CARS196), 0.15 (SOP): ooDML's
``criteria/margin.py`` with ``batchminer/rho_distance.py`` (``--loss margin --batch_mining rho_distance
--miner_rho_distance_cp 0.4 --loss_margin_beta 0.6`` in its ``OOD-Study_ZeroShot.sh``).

The loss and its reduction are :class:`tasks.methods.margin.MarginLoss`'s ``original`` ones (sum over
triplets / number of triplets with a non-zero term); the triplets come from
:class:`tasks.methods.rho_distance.RhoDistanceSampler`. One definition, so no variants.
"""

from __future__ import annotations

from tasks.methods.composite import PartFactory
from tasks.methods.margin import MarginLoss
from tasks.methods.rho_distance import RhoDistanceSampler


def build(num_classes: int, embedding_dim: int, *, criterion: PartFactory, rho: float) -> MarginLoss:
    return criterion(miner=RhoDistanceSampler(rho))
