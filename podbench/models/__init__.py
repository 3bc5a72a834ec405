"""The built-in decoders, declared here by name with their spec (podbench.specs.DecoderSpec:
kind, parameters, input dims, per-lane dropout, ...), so a config is validated without
importing JAX; each network lives in its own module (imported on first use), which registers
it with `@register_model(name)`.

A plugin decoder registers everything in one module: `@register_model(name, params=...,
input_dims=..., dropout=...)`. `init_from` maps a parameter that names a finished run (its
results folder or config file) to the submodule that starts from that run's parameters
(podbench.train.warm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from podbench.config import opt
from podbench.registry import models
from podbench.specs import Workload


@dataclass
class PitomParams:
    filters: int = opt(128, gt=0, doc="convolution filters")
    dropout: float = opt(0.2, ge=0, lt=1, doc="dropout rate")
    locally_connected: bool = False
    reg: float = opt(0.0, ge=0, doc="L2 penalty of the convolutions")
    reg_head: float = opt(0.0, ge=0, doc="L2 penalty of the head")
    head_order: Literal["norm_tanh", "tanh_norm"] = "norm_tanh"
    init: Literal["torch", "glorot"] = "torch"


@dataclass
class MlpParams:
    hidden: list[int] = opt(factory=lambda: [32], ge=1, doc="width of each hidden layer")
    dropout: float = opt(0.2, ge=0, lt=1, doc="dropout rate")
    final_norm: bool = True
    output_activation: Literal["none", "tanh"] = "none"
    init: Literal["torch", "glorot"] = "torch"


@dataclass
class RidgeParams:
    alphas: list[float] = opt(
        factory=lambda: [1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6],
        gt=0,
        nonempty=True,
        doc="L2 penalties tried per lane; the best on validation is kept",
    )


@dataclass
class LinearParams:
    alphas: list[float] = opt(
        factory=lambda: [1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6],
        gt=0,
        nonempty=True,
        doc="L2 penalties tried per lane; the best on validation is kept (logistic: C = 1/alpha)",
    )
    max_iter: int = opt(200, ge=1, doc="most L-BFGS iterations of each logistic fit")
    tol: float = opt(
        1e-4,
        gt=0,
        doc="a logistic fit has converged when no element of its loss's gradient exceeds it "
        "(scikit-learn's lbfgs criterion and default)",
    )


@dataclass
class TimePoolParams:
    hidden: int = opt(256, ge=1, doc="width of the hidden layer (the reference's hidden_dim)")
    dropout: float = opt(0.2, ge=0, lt=1, doc="dropout after the hidden layer")
    output_activation: Literal["none", "tanh", "sigmoid"] = opt(
        "none", doc="applied to the outputs of vector heads (other heads give logits/values)"
    )
    init: Literal["torch", "glorot"] = opt("torch", doc="weight initialisation")


@dataclass
class LlmPrefixParams:
    encoder: str = "pitom"
    encoder_params: dict = field(default_factory=dict)
    prefix: Literal["brain", "constant"] = "brain"
    prefix_tokens: int = opt(1, ge=1, doc="prefix embeddings the encoder gives")
    dropout: float = opt(0.2, ge=0, lt=1, doc="dropout rate")
    encoder_init: str = opt(
        "",
        doc="stage 1: a finished llm_embedding_pretraining run (its "
        "results folder or its config .yml) whose encoder each "
        "lane starts from; empty: a random encoder",
    )


def pitom_work(load: Workload) -> float:
    """Multiply-adds x 2 of a PITOM lane's epoch: three convolutions (kernel 3 on the bins,
    max-pool 2 with padding 1, two of kernel 2) per event and member, forward and backward
    (about 3x the forward); the dense head is small beside them."""
    channels, bins = load.input_shape[0], math.prod(load.input_shape[1:])
    f = int(load.params.get("filters", 128))
    t1 = max(bins - 2, 1)
    t2 = max(t1 // 2, 1)  # pooled (t1 // 2 + 1) less the kernel 2
    forward = 2 * f * (t1 * channels * 3 + t2 * f * 2 + max(t2 - 1, 1) * f * 2)
    return 3.0 * forward * load.events * load.members


def ridge_work(load: Workload) -> float:
    """A ridge fit: the Gram matrix (2 n F^2) and its eigendecomposition (about 9 F^3), for
    n events of F input elements; the penalties reuse them."""
    n, f = load.events, load.elements
    return 2.0 * n * f * f + 9.0 * f**3


def linear_work(load: Workload) -> float:
    """`linear`: a ridge fit for vector and scalar heads (one step); for binary and class
    heads, one step of the logistic fit, a loss-and-gradient evaluation (the logits and the
    gradient's product with the features: 4 n F per logit; a fit reports how many it made)."""
    if load.head in ("vector", "scalar"):
        return ridge_work(load)
    return 4.0 * load.events * load.elements * load.classes


models.declare(
    "pitom",
    "podbench.models.pitom",
    params=PitomParams,
    input_dims=("channel", "bin"),
    dropout="dropout",
    work=pitom_work,
)
models.declare("mlp", "podbench.models.mlp", params=MlpParams, dropout="dropout")
models.declare(
    "ridge", "podbench.models.ridge", kind="closed_form", params=RidgeParams, work=ridge_work
)
models.declare(
    "linear",
    "podbench.models.linear",
    kind="closed_form",
    params=LinearParams,
    classifier=True,
    work=linear_work,
)
models.declare(
    "time_pool",
    "podbench.models.time_pool",
    params=TimePoolParams,
    input_dims=("channel", "bin"),
    dropout="dropout",
)
models.declare(
    "llm_prefix",
    "podbench.models.llm_prefix",
    params=LlmPrefixParams,
    takes_targets=True,
    uses_frozen=True,
    init_from={"encoder_init": "encoder"},
    dropout="dropout",
)
