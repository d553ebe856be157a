"""The built-in methods' declarations: each :class:`~tasks.methods.declaration.MethodSpec` (description,
hyperparameters with defaults and search ranges, variants, parts, what follows the training's settings),
its builder named by reference to the module that implements it. Importing this module registers them,
in this order (a composite after its parts), and imports no torch: ``oodml list methods`` and the
config checks read the declarations; a method's module is imported when it is first built.
"""

from __future__ import annotations

from tasks.methods.composite import composite
from tasks.methods.declaration import Hyperparameter, MethodSpec, Part
from tasks.methods.registry import register_method

register_method(
    MethodSpec(
        name="margin",
        build="tasks.methods.margin:build",
        hyperparameters={
            "beta": Hyperparameter(1.2, 0.5, 1.6),
            "margin": Hyperparameter(0.2, 0.05, 0.5),
            "nu": Hyperparameter(0.0, 0.0, 0.1),
            "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-2, log=True),
        },
        margin_beta="beta",
        description="Margin loss + distance-weighted sampling: Wu et al., Sampling Matters in Deep Embedding "
        "Learning, ICCV 2017; settings of Milbich, Roth et al., NeurIPS 2021 (ooDML).",
        variants={
            "original": "ooDML criteria/margin.py: sum over triplets / number of triplets with a non-zero term",
            "wu": "Wu et al.'s code: (sum + nu * sum beta) / number of non-zero pair terms",
        },
    )
)

register_method(
    composite(
        MethodSpec(
            name="rmargin",
            build="tasks.methods.rmargin:build",
            hyperparameters={"rho": Hyperparameter(0.4, 0.0, 0.6)},
            margin_beta="beta",
            description="Margin loss + rho-distance sampling (R-Margin): Roth et al., Revisiting Training "
            "Strategies and Generalization Performance in Deep Metric Learning, ICML 2020.",
        ),
        # the margin loss at R-Margin's ooDML boundary (CUB200)
        criterion=Part("margin", hyperparameters={"beta": Hyperparameter(0.6, 0.3, 1.6)}),
    )
)

register_method(
    MethodSpec(
        name="multisimilarity",
        build="tasks.methods.multisimilarity:build",
        hyperparameters={
            "alpha": Hyperparameter(2.0, 0.5, 10.0, log=True),
            "beta": Hyperparameter(40.0, 10.0, 80.0, log=True),
            "base": Hyperparameter(0.5, 0.0, 1.0),
            "epsilon": Hyperparameter(0.1, 0.0, 0.5),
        },
        description="Multi-similarity loss + miner: Wang et al., Multi-Similarity Loss with General Pair "
        "Weighting for Deep Metric Learning, CVPR 2019.",
        variants={
            "original": "ooDML criteria/multisimilarity.py: positive and negative terms each averaged over "
            "the anchors with mined pairs, scaled by 1/alpha and 1/beta",
            "pml": "pytorch-metric-learning: mean over all anchors of the paper's per-anchor loss",
        },
    )
)

register_method(
    MethodSpec(
        name="arcface",
        build="tasks.methods.arcface:build",
        hyperparameters={
            "margin": Hyperparameter(0.5, 0.1, 1.0),
            "scale": Hyperparameter(16.0, 4.0, 64.0, log=True),
            "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-2, log=True),
        },
        description="ArcFace (margin in radians): Deng et al., ArcFace: Additive Angular Margin Loss for Deep "
        "Face Recognition, CVPR 2019.",
        variants={
            "original": "ooDML criteria/arcface.py: all cosines clamped to [1e-10, 1-1e-10], cos(theta + m)",
            "pml": "pytorch-metric-learning ArcFaceLoss: unclamped cosines, monotonic past theta = pi - m",
        },
    )
)

register_method(
    MethodSpec(
        name="proxyanchor",
        build="tasks.methods.proxyanchor:build",
        hyperparameters={
            "alpha": Hyperparameter(32.0, 4.0, 64.0, log=True),
            "delta": Hyperparameter(0.1, 0.0, 0.5),
            "loss_lr": Hyperparameter(2e-2, 1e-4, 1e-1, log=True),
        },
        description="Proxy-Anchor loss: Kim et al., Proxy Anchor Loss for Deep Metric Learning, CVPR 2020.",
        variants={
            "original": "ooDML criteria/oproxy.py (anchor mode): positive term per sample, averaged over the "
            "batch; negative over proxies with negatives; proxies N(0,1)/8",
            "pml": "pytorch-metric-learning ProxyAnchorLoss: positive term averaged over proxies present",
        },
    )
)

register_method(
    MethodSpec(
        name="proxynca",
        build="tasks.methods.proxynca:build",
        hyperparameters={
            "scale": Hyperparameter(3.0, 1.0, 8.0),
            "loss_lr": Hyperparameter(5e-4, 1e-5, 1e-1, log=True),
        },
        description="ProxyNCA: Movshovitz-Attias et al., No Fuss Distance Metric Learning using Proxies, "
        "ICCV 2017.",
    )
)

register_method(
    MethodSpec(
        name="triplet",
        build="tasks.methods.triplet:build",
        hyperparameters={"margin": Hyperparameter(0.2, 0.05, 0.5)},
        description="Triplet loss + semi-hard mining: Schroff et al., FaceNet, CVPR 2015.",
        variants={
            "original": "ooDML criteria/triplet.py: one semi-hard triplet per anchor, squared distances, mean",
            "pml": "pytorch-metric-learning: all semi-hard triplets, plain distances, mean over non-zero",
        },
    )
)

register_method(
    MethodSpec(
        name="contrastive",
        build="tasks.methods.contrastive:build",
        hyperparameters={
            "pos_margin": Hyperparameter(0.0, 0.0, 0.5),
            "neg_margin": Hyperparameter(1.0, 0.5, 1.6),
        },
        description="Contrastive loss: Hadsell et al., Dimensionality Reduction by Learning an Invariant "
        "Mapping, CVPR 2006.",
        variants={
            "original": "ooDML criteria/contrastive.py: pairs of distance-weighted triplets, each term's mean",
            "pml": "pytorch-metric-learning: all pairs, each term averaged over its non-zero pairs",
        },
    )
)

register_method(
    MethodSpec(
        name="softtriple",
        build="tasks.methods.softtriple:SoftTriple",
        hyperparameters={
            "centers_per_class": Hyperparameter(10, 2, 20),
            "la": Hyperparameter(20.0, 4.0, 40.0),
            "gamma": Hyperparameter(0.1, 0.01, 0.5, log=True),
            "delta": Hyperparameter(0.01, 0.0, 0.1),
            "tau": Hyperparameter(0.2, 0.0, 0.5),
            "loss_lr": Hyperparameter(1e-2, 1e-4, 1e-1, log=True),
        },
        description="SoftTriple loss: Qian et al., SoftTriple Loss: Deep Metric Learning Without Triplet "
        "Sampling, ICCV 2019.",
    )
)

register_method(
    MethodSpec(
        name="circle",
        build="tasks.methods.circle:build",
        hyperparameters={
            "m": Hyperparameter(0.4, 0.1, 0.5),
            "gamma": Hyperparameter(80.0, 16.0, 256.0, log=True),
        },
        description="Circle loss: Sun et al., Circle Loss: A Unified Perspective of Pair Similarity "
        "Optimization, CVPR 2020.",
    )
)

register_method(
    composite(
        MethodSpec(
            name="diva",
            build="tasks.methods.diva:Diva",
            hyperparameters={
                "alpha_ssl": Hyperparameter(0.3, 0.0, 1.0),
                "alpha_shared": Hyperparameter(0.3, 0.0, 1.0),
                "alpha_intra": Hyperparameter(0.3, 0.0, 1.0),
                "rho_ssl": Hyperparameter(1500.0, 10.0, 5000.0, log=True),
                "rho_shared": Hyperparameter(1500.0, 10.0, 5000.0, log=True),
                "rho_intra": Hyperparameter(1500.0, 10.0, 5000.0, log=True),
                "decorrnet_dim": Hyperparameter(512, 64, 2048, tune=False),
                # the original sets the separation MLPs' rate to the backbone's: it follows training.lr
                "decorrnet_lr": Hyperparameter(1e-5, 1e-6, 1e-3, log=True, tune=False),
                "temperature": Hyperparameter(0.01, 0.001, 0.1, log=True),
                "momentum": Hyperparameter(0.9, 0.5, 0.999),
                "n_key_batches": Hyperparameter(30, 1, 100, tune=False),
                # the reported embedding's weighting (task_weights): the original's three
                "discriminative_weight": Hyperparameter(1.0, 0.5, 1.0, choices=(1.0, 0.75, 0.5)),
            },
            description="DiVA: Milbich et al., DiVA: Diverse Visual Feature Aggregation for Deep Metric Learning, "
            "ECCV 2020; four 128-d embeddings (margin/distance, shared, intra, fast MoCo) with adversarial "
            "separation, settings of Milbich, Roth et al., NeurIPS 2021 (ooDML, CUB200).",
            follows={"decorrnet_lr": "lr"},
            margin_beta="beta",
        ),
        criterion=Part("margin"),  # at the margin method's ooDML values
        parts_last=True,  # Diva takes its criterion after its own hyperparameters
    )
)

register_method(
    composite(
        MethodSpec(
            name="uniformity",
            build="tasks.methods.uniformity:build",
            hyperparameters={
                # the prior's (ood_main.py --maxentropy_*; w 0.2 as the CUB/CARS runs set it)
                "weight": Hyperparameter(0.2, 0.0, 1.0),
                "disc_every": Hyperparameter(10, 1, 500),
                "disc_latent": Hyperparameter(100, 10, 500),
                "chunk_size": Hyperparameter(128, 16, 2048, tune=False),
                "disc_lr_multiplier": Hyperparameter(1.0, 0.1, 100.0, log=True),
                "network_lr": Hyperparameter(1e-5, 1e-6, 1e-2, log=True, tune=False),  # follows training.lr
                "disc_milestone": Hyperparameter(10000, 1, 10000, tune=False),
                "disc_gamma": Hyperparameter(0.1, 0.01, 1.0),
            },
            description="Uniformity prior: margin loss + distance-weighted sampling with an adversarial uniform "
            "prior on the pooled features (Sinha et al., Uniform Priors for Data-Efficient Transfer, 2020), as "
            "ooDML's --with_entropy runs it (Milbich, Roth et al., NeurIPS 2021).",
            follows={"network_lr": "lr"},
            margin_beta="beta",
        ),
        criterion=Part("margin"),  # at the margin method's ooDML values
    )
)

register_method(
    composite(
        MethodSpec(
            name="s2sd",
            build="tasks.methods.s2sd:build",
            hyperparameters={
                # S2SD's own (ood_main.py --loss_s2sd_*)
                "head_lr": Hyperparameter(1e-5, 1e-6, 1e-2, log=True, tune=False),  # follows training.lr
                "temperature": Hyperparameter(1.0, 0.1, 10.0, log=True),
                "weight": Hyperparameter(50.0, 0.0, 100.0),
                "feat_weight": Hyperparameter(50.0, 0.0, 100.0),
                # switches and sizes: settings of the method, not tuned by `search: true`
                "feat_distill": Hyperparameter(1, 0, 1, tune=False, choices=(0, 1)),
                "feat_delay": Hyperparameter(0, 0, 10000, tune=False),
                "pool_aggr": Hyperparameter(1, 0, 1, tune=False, choices=(0, 1)),
                "target_dim1": Hyperparameter(1024, 16, 4096, tune=False),
                "target_dim2": Hyperparameter(1536, 16, 4096, tune=False),
                "target_dim3": Hyperparameter(2048, 16, 4096, tune=False),
            },
            description="S2SD: Roth et al., Simultaneous Similarity-based Self-Distillation for Deep Metric "
            "Learning, ICML 2021 (margin loss with rho-distance sampling as source and target criteria); "
            "settings of Milbich, Roth et al., NeurIPS 2021 (ooDML).",
            follows={"loss_lr": "lr", "head_lr": "lr"},
            margin_beta="beta",
        ),
        # the source and target criteria: R-Margin at the S2SD runs' settings (CUB200), its boundaries at the
        # network's rate, which loss_lr follows
        criterion=Part(
            "rmargin", hyperparameters={"loss_lr": Hyperparameter(1e-5, 1e-6, 1e-2, log=True, tune=False)}
        ),
    )
)

register_method(
    MethodSpec(
        name="frozen",
        build="tasks.methods.frozen:build",
        hyperparameters={},
        description="The pretrained backbone's pooled features, L2-normalised, untrained (a baseline for the "
        "DML methods)",
    )
)
