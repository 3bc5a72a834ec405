"""Building blocks shared by podbench's Flax NNX decoders.

Every decoder is called as `model(x, call)` where `call` carries the per-step context: train
or eval mode, the dropout key and rate (a traced per-lane value, so sweeps over dropout can be
lanes of one program), the mask of valid rows (padded rows never touch BatchNorm stats) and the
task's frozen arrays (`Task.frozen`, e.g. a language model: shared by all lanes, never
trained). A decoder registered with `takes_targets=True` is called as `model(x, call, y)` with
the batch's target columns (the LLM task's context tokens), and one registered with
`uses_frozen=True` is built with `frozen=` the task's frozen pytree (for its shapes).
Convolutions are written as im2col matmuls: under vmap over lanes they become batched
matmuls, which XLA runs faster than the grouped convolutions a vmapped lax.conv lowers to.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class Call(NamedTuple):
    """Per-call context of a decoder."""

    train: bool
    rng: jax.Array | None = None
    dropout: jax.Array | float = 0.0
    mask: jax.Array | None = None
    frozen: Any = None  # the task's frozen pytree (Task.frozen), e.g. a language model


def kernel_init(name: str, batch_axis: tuple[int, ...] = ()):
    """torch: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); glorot: Keras glorot_normal."""
    if name == "torch":
        return jax.nn.initializers.variance_scaling(
            1 / 3, "fan_in", "uniform", batch_axis=batch_axis
        )
    if name == "glorot":
        return jax.nn.initializers.variance_scaling(
            1.0, "fan_avg", "truncated_normal", batch_axis=batch_axis
        )
    raise ValueError(f"unknown init {name!r}")


def fan_in_uniform(fan_in: int):
    """PyTorch's bias init for a layer with `fan_in` inputs."""
    bound = 1.0 / fan_in**0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


DROPOUT_LEVELS = 1 << 16  # the rate's resolution: each mask element uses 16 random bits


def mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer mixer (C. Wellons' lowbias32): every output bit depends on
    every input bit."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def random_bits(key: jax.Array, n: int) -> jax.Array:
    """n uint32 words, a deterministic function of `key`: two 32-bit seeds from one threefry
    draw, then each word hashed from its counter, mix32(mix32(i ^ s0) ^ s1). An order of
    magnitude cheaper than threefry per word (its 20 rounds were 11 % of a PITOM epoch), and
    elementwise, so under vmap every lane and member keeps its own stream."""
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    counter = jnp.arange(n, dtype=jnp.uint32)
    return mix32(mix32(counter ^ seeds[0]) ^ seeds[1])


def dropout(x: jax.Array, call: Call, salt: int) -> jax.Array:
    """Inverted dropout with a (possibly traced) rate, rounded to a multiple of 1/65,536;
    identity in eval mode. Each 32-bit word of `random_bits` gives two 16-bit mask elements."""
    if not call.train or call.rng is None:
        return x
    drop = jnp.round(jnp.asarray(call.dropout, jnp.float32) * DROPOUT_LEVELS).astype(jnp.uint32)
    bits = random_bits(jax.random.fold_in(call.rng, salt), -(-x.size // 2))
    level = jnp.concatenate([bits & 0xFFFF, bits >> 16])[: x.size].reshape(x.shape)
    keep_fraction = 1.0 - drop.astype(x.dtype) / DROPOUT_LEVELS
    return jnp.where(level >= drop, x / jnp.maximum(keep_fraction, 1e-6), 0.0)


def patches(x: jax.Array, k: int) -> jax.Array:
    """[B, T, C] -> [B, T-k+1, k*C]: the 'valid' windows of width k, flattened."""
    t = x.shape[1] - k + 1
    return jnp.concatenate([x[:, i : i + t] for i in range(k)], axis=-1)


class Conv1D(nnx.Module):
    """'valid' 1-D convolution over time on [B, T, C] (channels last), as an im2col matmul."""

    def __init__(self, c_in: int, c_out: int, k: int, *, use_bias: bool, init: str, rngs: nnx.Rngs):
        self.k = k
        self.kernel = nnx.Param(kernel_init(init)(rngs.params(), (k * c_in, c_out)))
        self.bias = (
            nnx.Param(fan_in_uniform(k * c_in)(rngs.params(), (c_out,))) if use_bias else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        y = patches(x, self.k) @ self.kernel[...]
        return y + self.bias[...] if self.bias is not None else y


class LocallyConnected1D(nnx.Module):
    """Keras LocallyConnected1D: like Conv1D but with unshared weights per output position."""

    def __init__(self, t_in: int, c_in: int, c_out: int, k: int, *, init: str, rngs: nnx.Rngs):
        self.k = k
        t_out = t_in - k + 1
        self.kernel = nnx.Param(
            kernel_init(init, batch_axis=(0,))(rngs.params(), (t_out, k * c_in, c_out))
        )
        self.bias = nnx.Param(jnp.zeros((t_out, c_out)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.einsum("btk,tkf->btf", patches(x, self.k), self.kernel[...]) + self.bias[...]


def max_pool_torch(x: jax.Array) -> jax.Array:
    """PyTorch MaxPool1d(kernel 2, stride 2, padding 1) over time of [B, T, C]."""
    n_out = x.shape[1] // 2 + 1
    padded = jnp.pad(x, ((0, 0), (1, 1), (0, 0)), constant_values=-jnp.inf)[:, : 2 * n_out]
    return padded.reshape(x.shape[0], n_out, 2, x.shape[2]).max(axis=2)


def batch_norm(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.1 means Flax momentum 0.9, eps 1e-5)."""
    return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def apply_bn(bn: nnx.BatchNorm, x: jax.Array, call: Call) -> jax.Array:
    """BatchNorm over batch and time of [B, T, C], excluding masked (padded) rows."""
    mask = None
    if call.mask is not None and call.train:
        mask = jnp.broadcast_to((call.mask > 0).reshape(-1, *([1] * (x.ndim - 1))), x.shape)
    return bn(x, use_running_average=not call.train, mask=mask)


def linear(c_in: int, c_out: int, init: str, rngs: nnx.Rngs) -> nnx.Linear:
    k_init = kernel_init(init)
    b_init = fan_in_uniform(c_in) if init == "torch" else jax.nn.initializers.zeros
    return nnx.Linear(c_in, c_out, kernel_init=k_init, bias_init=b_init, rngs=rngs)
