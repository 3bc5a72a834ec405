"""llm_prefix: a brain encoder whose outputs are prefix embeddings of a frozen language model.

An encoder (any registered trained decoder, e.g. PITOM or the MLP, with raw linear outputs)
maps the brain window to `prefix_tokens` embeddings of the LM's width. The frozen GPT-2 (the
task's shared `call.frozen`, never a parameter) runs over [prefix, context tokens, target
tokens but the last] with padding masked out of attention; each target token is scored from
the state before it. Output per word: the target tokens' cross-entropies, then their ranks.
`prefix: constant` is the no-brain control: the same encoder applied to an all-zero window,
so the prefix is a learned constant with the brain prefix's parameterisation, initialisation
and optimiser (a free constant embedding optimises worse through the frozen LM: on the
stand-in it lost to a brain prefix trained on shuffled targets, so it measured optimisation,
not the brain). `encoder_init` starts each lane's encoder from a stage-1 run
(podbench.train.warm).

Logits are made one target position at a time (a [batch, vocab] block, recomputed in the
backward pass), so GPT-2's 50,257-token vocabulary never needs [batch, tokens, vocab] at once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from podbench import registry
from podbench.config import build_params
from podbench.errors import ConfigError
from podbench.models.layers import Call
from podbench.registry import register_model
from podbench.specs import BuildTrained


def token_scores(lm, states: jax.Array, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cross-entropy and rank of the true ids [B, T] under the logits of states [B, T, d]."""

    @jax.checkpoint
    def one(args):
        h, i = args
        logits = lm.logits(h)  # [B, vocab]
        true = jnp.take_along_axis(logits, i[:, None], axis=1)
        nll = jax.nn.logsumexp(logits, axis=-1) - true[:, 0]
        rank = jnp.sum(jax.lax.stop_gradient(logits) > jax.lax.stop_gradient(true), axis=-1)
        return nll, rank.astype(logits.dtype)

    nll, rank = jax.lax.map(one, (jnp.swapaxes(states, 0, 1), ids.T))
    return nll.T, rank.T


class LlmPrefix(nnx.Module):
    def __init__(self, p: dict, input_shape: tuple, n_target: int, width: int, rngs: nnx.Rngs):
        self.n_target = n_target
        self.n_prefix = p["prefix_tokens"]
        self.width = width
        self.brain = p["prefix"] == "brain"
        entry = registry.models.entry(p["encoder"], "model.params.encoder")
        if entry.spec.closed_form or entry.spec.takes_targets:
            raise ConfigError(
                f"model.params.encoder = {p['encoder']!r}: expected a trained "
                "decoder of the brain window (e.g. pitom, mlp)"
            )
        dims = entry.spec.input_dims
        if dims is not None and len(dims) != len(input_shape):
            raise ConfigError(
                f"model.params.encoder = {p['encoder']!r} takes latents with "
                f"dims {dims}; the latents are {len(input_shape)}-d per lag"
            )
        params = build_params(entry.spec.params, p["encoder_params"], "model.params.encoder_params")
        build: BuildTrained = entry.obj
        self.encoder = build(
            params,
            input_shape=input_shape,
            output_dim=self.n_prefix * width,
            head="scalar",
            rngs=rngs,
        )

    def __call__(self, x: jax.Array, call: Call, y: jax.Array) -> jax.Array:
        lm = call.frozen
        b, n_prefix, n_target = x.shape[0], self.n_prefix, self.n_target
        n_context = y.shape[-1] - n_target
        ids = y.astype(jnp.int32)
        context, target = ids[:, :n_context], ids[:, n_context:]
        window = x if self.brain else jnp.zeros_like(x)
        prefix = self.encoder(window, call).reshape(b, n_prefix, self.width)
        tokens = jnp.concatenate([context, target[:, :-1]], axis=1)
        embeds = jnp.concatenate([prefix, lm.embed(jnp.maximum(tokens, 0))], axis=1)
        valid = jnp.concatenate([jnp.ones((b, n_prefix), bool), tokens >= 0], axis=1)
        states = lm.hidden(embeds, valid)
        # target j is scored from position n_prefix + n_context - 1 + j; the first one from the
        # last prefix embedding when the word has no context
        last = n_prefix + n_context - 1
        first = jnp.where(context[:, -1] >= 0, last, n_prefix - 1)
        where = jnp.concatenate(
            [first[:, None], jnp.broadcast_to(last + jnp.arange(1, n_target), (b, n_target - 1))],
            axis=1,
        )
        picked = jnp.take_along_axis(states, where[..., None], axis=1)
        nll, rank = token_scores(lm, picked, jnp.maximum(target, 0))
        real = target >= 0
        return jnp.concatenate([jnp.where(real, nll, 0.0), jnp.where(real, rank, 0.0)], axis=-1)

    def penalty(self) -> jax.Array:
        return self.encoder.penalty()


@register_model("llm_prefix")
def llm_prefix(
    params: dict,
    *,
    input_shape: tuple[int, ...],
    output_dim: int,
    head: str,
    rngs: nnx.Rngs,
    frozen,
) -> LlmPrefix:
    """Brain prefix (or a learned constant) in front of the task's frozen language model."""
    if frozen is None or not hasattr(frozen, "wte"):
        raise ConfigError(
            "model.name = 'llm_prefix': needs a task that provides a frozen "
            "language model (task: llm_decoding)"
        )
    return LlmPrefix(params, input_shape, output_dim // 2, frozen.spec.n_embd, rngs)
