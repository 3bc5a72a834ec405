"""The reference's time-pooling decoder (its volume-level baseline, SimpleTemporalModel).

mean over time -> dense (hidden) -> ReLU -> dropout -> dense (outputs) -> optional output
activation (tanh or sigmoid; none gives logits or raw values, as the other heads need).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from podbench.models.layers import Call, dropout, linear
from podbench.registry import register_model


class TimePool(nnx.Module):
    def __init__(self, n_channels: int, n_out: int, p: dict, head: str, rngs: nnx.Rngs):
        self.hidden = linear(n_channels, p["hidden"], p["init"], rngs)
        self.out = linear(p["hidden"], n_out, p["init"], rngs)
        self.activation = p["output_activation"] if head == "vector" else "none"

    def __call__(self, x: jax.Array, call: Call) -> jax.Array:
        h = x.mean(axis=-1)  # [B, channel, time] -> [B, channel]
        y = self.out(dropout(jax.nn.relu(self.hidden(h)), call, 1))
        if self.activation == "tanh":
            return jnp.tanh(y)
        if self.activation == "sigmoid":
            return jax.nn.sigmoid(y)
        return y

    def penalty(self) -> jax.Array:
        return jnp.zeros(())


@register_model("time_pool")
def time_pool(
    params: dict, *, input_shape: tuple[int, ...], output_dim: int, head: str, rngs: nnx.Rngs
) -> TimePool:
    """Time-pooling decoder for [word, channel, bin] latents (any number of bins >= 1)."""
    return TimePool(input_shape[0], output_dim, params, head, rngs)
