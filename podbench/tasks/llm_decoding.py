"""llm_decoding: a word's language-model tokens from the brain window around it plus the text
before it, through a frozen GPT-2 (the reference's llm_decoding_task, GPT2Brain).

Tokens: the transcript's GPT-2 tokens (`hftoken`, one row per token, grouped by word_idx),
each mapped to the language model's vocabulary: its id when the tokenizer in
`task_params.lm_dir` has that token (always, for GPT-2 itself), else the tokenizer's encoding
of the token's text. A word's targets are its first `target_tokens` tokens; its context is the
`context_tokens` tokens before them (fewer at the start of the transcript).

Targets store: per word, `context_tokens` context ids then `target_tokens` target ids, as float
columns, -1 where there is no token (left of a short context, right of a short word).

The decoder (`llm_prefix`) runs the frozen language model over [prefix, context, targets] and
returns, per target token, its cross-entropy (-log p of the true token, teacher forced) and its
rank among the vocabulary's logits (0 = the most likely token). Loss: a word's summed token
cross-entropy. Early stopping: the validation token cross-entropy ("min"). Metrics over whole
splits: `cross_entropy` (mean over tokens), `perplexity` = exp(cross_entropy), and
`top{1,5,10}_accuracy` (share of tokens whose true id is among the k most likely).

The no-brain control is the same config with `model.params.prefix: constant` (the encoder sees
an all-zero window, so the prefix is a learned constant), trained and scored on the same folds.
The prefix model is trained end to end; the reference's stage 1 (pretraining the encoder to the
word's mean token embedding) is not run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from podbench import registry
from podbench.config import Config, build_params, opt
from podbench.data.dataset import Dataset, read_table, word_table
from podbench.errors import ConfigError, DataError
from podbench.registry import register_task
from podbench.tasks.base import Task

TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json", "added_tokens.json")
TOP_K = (1, 5, 10)


@dataclass
class LlmDecodingParams:
    """Parameters of the LLM-decoding task."""

    lm_dir: str = opt("", doc="local Hugging Face directory of a GPT-2 (config.json, "
                              "model.safetensors or pytorch_model.bin, tokenizer files); "
                              "never downloaded")
    context_tokens: int = opt(32, ge=1, doc="tokens of text before the word given to the LM")
    target_tokens: int = opt(16, ge=1, doc="a word's tokens scored at most (longer: cut)")


def lm_path(cfg: Config) -> Path:
    return Path(cfg.task_params["lm_dir"]).expanduser()


def load_tokenizer(lm_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(lm_dir, local_files_only=True)
    except Exception as err:  # transformers raises OSError, ValueError, ... here
        raise ConfigError(f"task_params.lm_dir = {str(lm_dir)!r}: no loadable tokenizer "
                          f"({type(err).__name__}: {err})") from err


def token_ids(tokens: list[str], tokenizer) -> list[list[int]]:
    """The language model's ids of each transcript token (see the module docstring)."""
    vocab = tokenizer.get_vocab()
    cache: dict[str, list[int]] = {}
    out = []
    for token in tokens:
        if token not in cache:
            cache[token] = ([vocab[token]] if token in vocab else tokenizer.encode(
                tokenizer.convert_tokens_to_string([token]), add_special_tokens=False))
        out.append(cache[token])
    return out


def word_tokens(word_idx: np.ndarray, ids: list[list[int]], words: np.ndarray,
                n_context: int, n_target: int) -> tuple[np.ndarray, np.ndarray]:
    """[len(words), n_context + n_target] context and target ids (-1: none) of each word, from
    the token rows' word_idx and ids (in transcript order), and each word's number of tokens."""
    flat = np.array([i for row in ids for i in row], np.int64)
    owner = np.repeat(word_idx, [len(row) for row in ids])
    first = np.searchsorted(owner, words, side="left")
    end = np.searchsorted(owner, words, side="right")
    out = np.full((len(words), n_context + n_target), -1, np.int64)
    for r, (f, e) in enumerate(zip(first, end)):
        context = flat[max(0, f - n_context):f]
        target = flat[f:min(e, f + n_target)]
        out[r, n_context - len(context):n_context] = context
        out[r, n_context:n_context + len(target)] = target
    return out, end - first


def split_columns(pred, y):
    """Per-token cross-entropy, rank and validity of model outputs [n, 2T] and targets [n, C+T]."""
    n_target = pred.shape[-1] // 2
    valid = y[:, y.shape[-1] - n_target:] >= 0
    return pred[:, :n_target], pred[:, n_target:], valid


@register_task("llm_decoding", params=LlmDecodingParams)
class LlmDecoding(Task):
    """A word's tokens through a frozen GPT-2 with a brain-derived prefix; perplexity, top-k."""

    head = "tokens"
    stop_mode = "min"
    headline = "test_perplexity"
    headline_mode = "min"

    def validate(self, cfg: Config) -> None:
        if not cfg.task_params["lm_dir"]:
            raise ConfigError("task_params.lm_dir: required (a local Hugging Face GPT-2 "
                              "directory)")
        meta = registry.models.entry(cfg.model.name, "model.name").meta
        if not meta.get("takes_targets"):
            raise ConfigError(f"model.name = {cfg.model.name!r}: task 'llm_decoding' needs a "
                              "decoder that feeds the language model (llm_prefix)")
        if "encoder" in cfg.model.params:  # llm_prefix: check its encoder's params now
            encoder = registry.models.entry(cfg.model.params["encoder"], "model.params.encoder")
            build_params(encoder.meta.get("params"), cfg.model.params["encoder_params"],
                         "model.params.encoder_params")
        if cfg.model.members != 1:
            raise ConfigError(f"model.members = {cfg.model.members}: llm_decoding takes 1 (the "
                              "members' token distributions cannot be combined from their "
                              "per-token cross-entropies)")
        if cfg.training.loss != "mse":
            raise ConfigError(f"training.loss = {cfg.training.loss!r}: llm_decoding has its own "
                              "loss; training.loss applies to embedding tasks only")

    def describe(self, cfg: Config) -> str:
        return f"llm_decoding ({cfg.model.params.get('prefix', 'brain')} prefix)"

    # ---------------------------------------------------------------- targets

    def _tokenizer_files(self, cfg: Config) -> list[Path]:
        return [p for p in (lm_path(cfg) / name for name in TOKENIZER_FILES) if p.is_file()]

    def targets_fragment(self, cfg: Config, dataset: Dataset) -> tuple[dict, bool]:
        if not (lm_path(cfg) / "config.json").is_file():
            raise ConfigError(f"task_params.lm_dir = {cfg.task_params['lm_dir']!r}: no "
                              "config.json there (expected a local Hugging Face GPT-2 "
                              "directory; see configs/tasks/llm_decoding.yml)")
        digest = hashlib.sha256()
        for path in self._tokenizer_files(cfg):
            digest.update(path.name.encode() + path.read_bytes())
        return {"root": str(dataset.root), "task": cfg.task, "params": cfg.task_params,
                "tokenizer": digest.hexdigest()}, False

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path, *self._tokenizer_files(cfg)]

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_words):
        import json

        import xarray as xr

        lm_dir = lm_path(cfg)
        tokenizer = load_tokenizer(lm_dir)
        rows = read_table(dataset.transcript_path, ("word_idx", "hftoken"), index_col=0,
                          dtype={"hftoken": str})
        if rows["hftoken"].isna().any():
            raise DataError(f"{dataset.transcript_path}: empty hftoken in row "
                            f"{int(np.flatnonzero(rows['hftoken'].isna())[0])}")
        word_idx = rows["word_idx"].to_numpy().astype(np.int64)
        if np.any(np.diff(word_idx) < 0):
            raise DataError(f"{dataset.transcript_path}: word_idx is not in transcript order")
        ids = token_ids(rows["hftoken"].tolist(), tokenizer)
        words = word_table(dataset)
        p = cfg.task_params
        columns, counts = word_tokens(word_idx, ids, words["word_idx"].to_numpy(),
                                      p["context_tokens"], p["target_tokens"])
        has = counts > 0
        # config.json is there: targets_fragment, which the key needs first, checked it
        vocab = json.loads((lm_dir / "config.json").read_text()).get("vocab_size")
        if vocab is not None and columns.max() >= vocab:
            raise ConfigError(f"task_params.lm_dir = {str(lm_dir)!r}: the tokenizer gives id "
                              f"{int(columns.max())}, the model's vocab_size is {vocab}")
        kept = words[has]
        ds = xr.Dataset({"target": (("word", "dim"), columns[has].astype(np.float32))},
                        coords={"word": kept["word_idx"].to_numpy(),
                                "label": ("word", kept["word"].to_numpy().astype(object))})
        return ds, {"dropped_words": words["word_idx"][~has].astype(int).tolist(),
                    "lm_tokens": int(counts.sum()),
                    "cut_words": int((counts > p["target_tokens"]).sum())}

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        """Per target token: its cross-entropy, then its rank."""
        return 2 * cfg.task_params["target_tokens"]

    # ---------------------------------------------------------------- the program

    def frozen(self, cfg: Config):
        """The frozen language model every lane shares."""
        from podbench.tasks.gpt2 import load_gpt2

        return load_gpt2(lm_path(cfg))

    def program_key(self, cfg: Config) -> dict:
        return {**super().program_key(cfg), "lm_dir": str(lm_path(cfg).resolve()),
                "tokens": [cfg.task_params["context_tokens"], cfg.task_params["target_tokens"]]}

    def loss(self, pred, y, cfg: Config):
        import jax.numpy as jnp

        nll, _, valid = split_columns(pred, y)
        return jnp.sum(jnp.where(valid, nll, 0.0), axis=-1)

    def stop_value(self, pred, y, mask):
        import jax.numpy as jnp

        nll, _, valid = split_columns(pred, y)
        weight = valid * mask[:, None]
        return jnp.sum(jnp.where(valid, nll, 0.0) * weight) / jnp.maximum(jnp.sum(weight), 1.0)

    def split_metrics(self, pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
        nll, rank, valid = split_columns(np.asarray(pred, np.float64), np.asarray(y))
        n = max(int(valid.sum()), 1)
        ce = float(nll[valid].sum() / n)
        out = {"cross_entropy": ce, "perplexity": float(np.exp(ce))}
        for k in TOP_K:
            out[f"top{k}_accuracy"] = float((rank[valid] < k).sum() / n)
        return out
