"""A small MLP decoder, e.g. for foundation-model latents (the seed's [dim, 32, 50] head)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from podbench.models.layers import Call, dropout, linear
from podbench.registry import register_model


class Mlp(nnx.Module):
    """flatten -> [Linear -> LayerNorm -> ReLU -> dropout] per hidden size -> Linear
    (-> LayerNorm)."""

    def __init__(self, n_in: int, n_out: int, p: dict, head: str, rngs: nnx.Rngs):
        sizes = [n_in, *p["hidden"]]
        self.hidden = nnx.List([linear(a, b, p["init"], rngs) for a, b in zip(sizes, sizes[1:])])
        self.norms = nnx.List([nnx.LayerNorm(b, epsilon=1e-5, rngs=rngs) for b in sizes[1:]])
        self.out = linear(sizes[-1], n_out, p["init"], rngs)
        vector = head == "vector"
        self.final = (
            nnx.LayerNorm(n_out, epsilon=1e-5, rngs=rngs) if p["final_norm"] and vector else None
        )
        self.activation = p["output_activation"] if vector else "none"

    def __call__(self, x: jax.Array, call: Call) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for i, (layer, norm) in enumerate(zip(self.hidden, self.norms)):
            h = dropout(jax.nn.relu(norm(layer(h))), call, i + 1)
        y = self.out(h)
        if self.final is not None:
            y = self.final(y)
        return jnp.tanh(y) if self.activation == "tanh" else y

    def penalty(self) -> jax.Array:
        return jnp.zeros(())


@register_model("mlp")
def mlp(
    params: dict, *, input_shape: tuple[int, ...], output_dim: int, head: str, rngs: nnx.Rngs
) -> Mlp:
    """MLP over the flattened latents of any shape (final LayerNorm/activation for vectors)."""
    return Mlp(math.prod(input_shape), output_dim, params, head, rngs)
