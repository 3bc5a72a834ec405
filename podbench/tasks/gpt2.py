"""GPT-2 in Flax NNX, with weights read from a local Hugging Face directory.

token + position embeddings -> pre-LN blocks (LayerNorm -> causal self-attention -> residual,
LayerNorm -> MLP with the tanh GELU -> residual) -> final LayerNorm -> LM head tied to the
token embeddings: the forward of `transformers`' GPT2LMHeadModel (equal logits, tested). The
LLM-decoding task runs it frozen, with brain-derived embeddings in front of the text (it
lives with the tasks: it is what the task scores with, not a decoder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from podbench.errors import ConfigError


@dataclass(frozen=True)
class GPT2Shape:
    """What a GPT-2 checkpoint's config.json fixes."""

    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    layer_norm_epsilon: float = 1e-5


class Block(nnx.Module):
    def __init__(self, s: GPT2Shape, rngs: nnx.Rngs):
        d = s.n_embd
        self.n_head = s.n_head
        self.ln_1 = nnx.LayerNorm(d, epsilon=s.layer_norm_epsilon, rngs=rngs)
        self.c_attn = nnx.Linear(d, 3 * d, rngs=rngs)
        self.attn_proj = nnx.Linear(d, d, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(d, epsilon=s.layer_norm_epsilon, rngs=rngs)
        self.c_fc = nnx.Linear(d, 4 * d, rngs=rngs)
        self.mlp_proj = nnx.Linear(4 * d, d, rngs=rngs)

    def __call__(self, h: jax.Array, allowed: jax.Array) -> jax.Array:
        """h [B, S, d]; allowed [B, S, S] (query, key) attention pattern."""
        b, s, d = h.shape
        q, k, v = jnp.split(self.c_attn(self.ln_1(h)), 3, axis=-1)

        def heads(t):
            return t.reshape(b, s, self.n_head, d // self.n_head)

        scores = jnp.einsum("bqhc,bkhc->bhqk", heads(q), heads(k)) / np.sqrt(d // self.n_head)
        scores = jnp.where(allowed[:, None], scores, jnp.finfo(scores.dtype).min)
        att = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(scores, axis=-1), heads(v))
        h = h + self.attn_proj(att.reshape(b, s, d))
        return h + self.mlp_proj(jax.nn.gelu(self.c_fc(self.ln_2(h)), approximate=True))


class GPT2(nnx.Module):
    """GPT-2: `embed` token ids, run `hidden` over any embeddings, `logits` via the tied head."""

    def __init__(self, s: GPT2Shape, rngs: nnx.Rngs):
        self.spec = s
        self.wte = nnx.Embed(s.vocab_size, s.n_embd, rngs=rngs)
        self.wpe = nnx.Embed(s.n_positions, s.n_embd, rngs=rngs)
        self.blocks = nnx.List([Block(s, rngs) for _ in range(s.n_layer)])
        self.ln_f = nnx.LayerNorm(s.n_embd, epsilon=s.layer_norm_epsilon, rngs=rngs)

    def embed(self, ids: jax.Array) -> jax.Array:
        return self.wte(ids)

    def hidden(self, embeds: jax.Array, valid: jax.Array | None = None) -> jax.Array:
        """Final-LayerNorm states [B, S, d] of input embeddings [B, S, d]; `valid` [B, S]
        marks real positions (others are never attended to; positions count real ones)."""
        b, s, _ = embeds.shape
        if valid is None:
            valid = jnp.ones((b, s), bool)
        positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)
        allowed = jnp.tril(jnp.ones((s, s), bool))[None] & valid[:, None, :]
        h = embeds + self.wpe(positions)
        for block in self.blocks:
            h = block(h, allowed)
        return self.ln_f(h)

    def logits(self, h: jax.Array) -> jax.Array:
        return h @ self.wte.embedding[...].T

    def __call__(self, ids: jax.Array) -> jax.Array:
        """Next-token logits [B, S, vocab] of token ids [B, S]."""
        return self.logits(self.hidden(self.embed(ids)))


def _read_shape(lm_dir: Path, where: str) -> GPT2Shape:
    path = lm_dir / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{where} = {str(lm_dir)!r}: no config.json there (expected a local "
            "Hugging Face GPT-2 directory, e.g. from save_pretrained)"
        )
    raw = json.loads(path.read_text())
    if raw.get("model_type") != "gpt2":
        raise ConfigError(f"{path}: model_type = {raw.get('model_type')!r}, expected 'gpt2'")
    if raw.get("activation_function", "gelu_new") != "gelu_new":
        raise ConfigError(
            f"{path}: activation_function = {raw['activation_function']!r}, "
            "expected 'gelu_new' (GPT-2's tanh GELU)"
        )
    try:
        n_layer, n_head, n_embd, n_positions, vocab_size = (
            int(raw[k]) for k in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")
        )
        return GPT2Shape(
            n_layer,
            n_head,
            n_embd,
            n_positions,
            vocab_size,
            float(raw.get("layer_norm_epsilon", 1e-5)),
        )
    except KeyError as err:
        raise ConfigError(f"{path}: missing {err.args[0]!r}") from err


def _read_weights(lm_dir: Path, where: str) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name, without the `transformer.` prefix."""
    safetensors, torch_bin = lm_dir / "model.safetensors", lm_dir / "pytorch_model.bin"
    if safetensors.is_file():
        from safetensors.numpy import load_file

        tensors = load_file(safetensors)
    elif torch_bin.is_file():
        import torch

        tensors = {
            k: v.float().numpy()
            for k, v in torch.load(torch_bin, map_location="cpu", weights_only=True).items()
        }
    else:
        raise ConfigError(
            f"{where} = {str(lm_dir)!r}: neither model.safetensors nor "
            "pytorch_model.bin there (sharded checkpoints are not supported)"
        )
    return {k.removeprefix("transformer."): np.asarray(v, np.float32) for k, v in tensors.items()}


def token_embeddings(lm_dir: str | Path, where: str = "task_params.lm_dir") -> np.ndarray:
    """The input token embeddings (wte) [vocab, n_embd] of a local GPT-2 directory."""
    lm_dir = Path(lm_dir).expanduser()
    shape = _read_shape(lm_dir, where)
    wte = _read_weights(lm_dir, where).get("wte.weight")
    if wte is None or wte.shape != (shape.vocab_size, shape.n_embd):
        raise ConfigError(
            f"{where} = {str(lm_dir)!r}: no wte.weight of shape "
            f"{(shape.vocab_size, shape.n_embd)} in the checkpoint"
        )
    return wte


def load_gpt2(lm_dir: str | Path, where: str = "task_params.lm_dir") -> GPT2:
    """The GPT-2 of a local Hugging Face directory (GPT2Model or GPT2LMHeadModel weights)."""
    lm_dir = Path(lm_dir).expanduser()
    shape = _read_shape(lm_dir, where)
    tensors = _read_weights(lm_dir, where)
    model = GPT2(shape, nnx.Rngs(0))
    targets: dict[str, Any] = {
        "wte.weight": model.wte.embedding,
        "wpe.weight": model.wpe.embedding,
        "ln_f.weight": model.ln_f.scale,
        "ln_f.bias": model.ln_f.bias,
    }
    for i, block in enumerate(model.blocks):
        for name, layer in (("ln_1", block.ln_1), ("ln_2", block.ln_2)):
            targets[f"h.{i}.{name}.weight"] = layer.scale
            targets[f"h.{i}.{name}.bias"] = layer.bias
        # transformers' Conv1D stores [in, out] like nnx.Linear's kernel
        for name, linear in (
            ("attn.c_attn", block.c_attn),
            ("attn.c_proj", block.attn_proj),
            ("mlp.c_fc", block.c_fc),
            ("mlp.c_proj", block.mlp_proj),
        ):
            targets[f"h.{i}.{name}.weight"] = linear.kernel
            targets[f"h.{i}.{name}.bias"] = linear.bias
    for name, variable in targets.items():
        if name not in tensors:
            raise ConfigError(f"{where} = {str(lm_dir)!r}: the checkpoint has no tensor {name!r}")
        value = tensors[name]
        if value.shape != variable.shape:
            raise ConfigError(
                f"{where} = {str(lm_dir)!r}: {name} has shape {value.shape}, "
                f"config.json implies {variable.shape}"
            )
        variable[...] = jnp.asarray(value)
    return model
