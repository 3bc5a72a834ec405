"""PITOM, the Goldstein et al. 2022 word decoder, layer by layer as in the reference.

conv k3 (no bias) -> ReLU -> BatchNorm -> dropout; max-pool 2 (PyTorch padding 1);
conv k2 (no bias) -> ReLU -> BatchNorm -> dropout; conv k2 -> BatchNorm -> ReLU;
global max-pool over time; dense -> LayerNorm -> tanh (for embedding targets). 143,254
parameters at 183 electrodes and 50 outputs. Options give the original Keras variants: a true
locally-connected last block, L2 penalties `reg` (conv kernels) and `reg_head` (dense), tanh
before LayerNorm, glorot init.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from podbench.models.layers import (
    Call,
    Conv1D,
    LocallyConnected1D,
    apply_bn,
    batch_norm,
    dropout,
    linear,
    max_pool_torch,
)
from podbench.registry import register_model


class Pitom(nnx.Module):
    def __init__(
        self, n_channels: int, n_times: int, n_out: int, p: dict, head: str, rngs: nnx.Rngs
    ):
        f, init = p["filters"], p["init"]
        self.conv1 = Conv1D(n_channels, f, 3, use_bias=False, init=init, rngs=rngs)
        self.bn1 = batch_norm(f, rngs)
        self.conv2 = Conv1D(f, f, 2, use_bias=False, init=init, rngs=rngs)
        self.bn2 = batch_norm(f, rngs)
        t3 = (n_times - 2) // 2 + 1 - 1  # time steps entering the last block
        if t3 < 2:
            raise ValueError(f"PITOM needs at least 6 time bins, got {n_times}")
        self.conv3 = (
            LocallyConnected1D(t3, f, f, 2, init=init, rngs=rngs)
            if p["locally_connected"]
            else Conv1D(f, f, 2, use_bias=True, init=init, rngs=rngs)
        )
        self.bn3 = batch_norm(f, rngs)
        self.dense = linear(f, n_out, init, rngs)
        vector = head == "vector"
        normed = vector or head == "classes_norm"  # the reference's class head: LayerNorm
        self.norm = nnx.LayerNorm(n_out, epsilon=1e-5, rngs=rngs) if normed else None
        self.head_order = p["head_order"] if vector else "norm" if normed else "linear"
        self.reg, self.reg_head = p["reg"], p["reg_head"]

    def __call__(self, x: jax.Array, call: Call) -> jax.Array:
        h = jnp.swapaxes(x, 1, 2)  # [B, C, T] -> [B, T, C]
        h = dropout(apply_bn(self.bn1, jax.nn.relu(self.conv1(h)), call), call, 1)
        h = max_pool_torch(h)
        h = dropout(apply_bn(self.bn2, jax.nn.relu(self.conv2(h)), call), call, 2)
        h = jax.nn.relu(apply_bn(self.bn3, self.conv3(h), call))
        y = self.dense(h.max(axis=1))
        if self.norm is None:  # head_order "linear"
            return y
        if self.head_order == "norm_tanh":
            return jnp.tanh(self.norm(y))
        if self.head_order == "tanh_norm":
            return self.norm(jnp.tanh(y))
        if self.head_order == "norm":
            return self.norm(y)
        return y

    def penalty(self) -> jax.Array:
        """Keras-style L2: reg * sum of conv kernels^2 + reg_head * sum of dense kernel^2."""
        convs = sum(jnp.sum(c.kernel[...] ** 2) for c in (self.conv1, self.conv2, self.conv3))
        return self.reg * convs + self.reg_head * jnp.sum(self.dense.kernel[...] ** 2)


@register_model("pitom")
def pitom(
    params: dict, *, input_shape: tuple[int, ...], output_dim: int, head: str, rngs: nnx.Rngs
) -> Pitom:
    """The reference PITOM decoder for [word, channel, bin] latents.

    head "vector" (embeddings) ends in LayerNorm and tanh; "classes_norm" (a class task's
    parity: reference) in LayerNorm, the reference's class head; other heads (scalar, binary,
    classes) end in the dense layer's raw outputs (logits).
    """
    n_channels, n_times = input_shape
    return Pitom(n_channels, n_times, output_dim, params, head, rngs)
