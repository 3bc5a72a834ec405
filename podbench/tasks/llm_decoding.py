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

Stage 1 (the reference's llm_embedding_pretraining_task) is its own task,
`llm_embedding_pretraining`: the same encoder regresses the mean of the language model's input
embeddings (wte rows) of the word's target tokens, MSE, raw linear outputs; cosine similarity
and MSE per split. Stage 2 starts each lane's encoder from that run's best parameters of the
same (lag, fold) with `model.params.encoder_init: <stage-1 results folder or config>` (see
podbench.train.warm); without it the prefix model is trained end to end from a random encoder.

Keys follow content: the language model enters every key by the digests of its files
(config.json, weights, tokenizer), never by its path, and a stage-1 run by its training key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, RunReference, build_params, load, opt
from podbench.data.dataset import Dataset, read_table, word_table
from podbench.errors import ConfigError, DataError
from podbench.registry import register_task
from podbench.tasks.base import Task
from podbench.tasks.common import the_words
from podbench.tasks.keying import Fingerprint, TaskKeying

STAGE_ONE = "llm_embedding_pretraining"

TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOP_K = (1, 5, 10)


@dataclass
class LlmDecodingParams:
    """Parameters of the LLM-decoding task."""

    lm_dir: str = opt(
        "",
        doc="local Hugging Face directory of a GPT-2 (config.json, "
        "model.safetensors or pytorch_model.bin, tokenizer files); "
        "never downloaded",
    )
    context_tokens: int = opt(32, ge=1, doc="tokens of text before the word given to the LM")
    target_tokens: int = opt(16, ge=1, doc="a word's tokens scored at most (longer: cut)")


def lm_path(cfg: Config) -> Path:
    return Path(cfg.task_params["lm_dir"]).expanduser()


def lm_files(lm_dir: Path, weights: bool = True) -> list[Path]:
    """The files of a language-model directory that decide its tokens (and outputs)."""
    names = ("config.json", *TOKENIZER_FILES, *(WEIGHT_FILES if weights else ()))
    return [p for p in (lm_dir / name for name in names) if p.is_file()]


def load_tokenizer(lm_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(lm_dir, local_files_only=True)
    except Exception as err:  # transformers raises OSError, ValueError, ... here
        raise ConfigError(
            f"task_params.lm_dir = {str(lm_dir)!r}: no loadable tokenizer "
            f"({type(err).__name__}: {err})"
        ) from err


def token_ids(tokens: list[str], tokenizer) -> list[list[int]]:
    """The language model's ids of each transcript token (see the module docstring)."""
    vocab = tokenizer.get_vocab()
    cache: dict[str, list[int]] = {}
    out = []
    for token in tokens:
        if token not in cache:
            cache[token] = (
                [vocab[token]]
                if token in vocab
                else tokenizer.encode(
                    tokenizer.convert_tokens_to_string([token]), add_special_tokens=False
                )
            )
        out.append(cache[token])
    return out


def word_tokens(
    word_idx: np.ndarray, ids: list[list[int]], words: np.ndarray, n_context: int, n_target: int
) -> tuple[np.ndarray, np.ndarray]:
    """[len(words), n_context + n_target] context and target ids (-1: none) of each word, from
    the token rows' word_idx and ids (in transcript order), and each word's number of tokens."""
    flat = np.array([i for row in ids for i in row], np.int64)
    owner = np.repeat(word_idx, [len(row) for row in ids])
    first = np.searchsorted(owner, words, side="left")
    end = np.searchsorted(owner, words, side="right")
    out = np.full((len(words), n_context + n_target), -1, np.int64)
    for r, (f, e) in enumerate(zip(first, end)):
        context = flat[max(0, f - n_context) : f]
        target = flat[f : min(e, f + n_target)]
        out[r, n_context - len(context) : n_context] = context
        out[r, n_context : n_context + len(target)] = target
    return out, end - first


def split_columns(pred, y):
    """Per-token cross-entropy, rank and validity of model outputs [n, 2T] and targets [n, C+T]."""
    n_target = pred.shape[-1] // 2
    valid = y[:, y.shape[-1] - n_target :] >= 0
    return pred[:, :n_target], pred[:, n_target:], valid


class LanguageModelKeying(TaskKeying):
    """Keys that follow the language model's files rather than their path (the training
    key), and the model's folder in the program."""

    task: LanguageModelTask

    def targets(self, cfg: Config, dataset: Dataset) -> dict:
        self.task.check_lm(cfg)
        params = {k: v for k, v in cfg.task_params.items() if k != "lm_dir"}
        return {"root": str(dataset.root), "task": cfg.task, "params": params}

    def training(self, cfg: Config, fingerprint: Fingerprint) -> dict:
        """The language model by the digests of its files, not by its path."""
        self.task.check_lm(cfg)
        fragment = super().training(cfg, fingerprint)
        fragment["task_params"] = {
            **fragment["task_params"],
            "lm_dir": fingerprint(lm_files(lm_path(cfg))),
        }
        return fragment

    def program(self, cfg: Config) -> dict:
        """Plus the language model, whose frozen weights (llm_decoding) or width (stage 1)
        the program takes."""
        return {**super().program(cfg), "lm_dir": str(lm_path(cfg).resolve())}


class LlmDecodingKeying(LanguageModelKeying):
    """Plus the token columns, which fix the program's target shape."""

    def program(self, cfg: Config) -> dict:
        return {
            **super().program(cfg),
            "tokens": [cfg.task_params["context_tokens"], cfg.task_params["target_tokens"]],
        }


class LanguageModelTask(Task):
    """What both LLM stages share: the language model's tokens of each word (and a keying by
    the model's files rather than their path)."""

    keying_class: type[TaskKeying] = LanguageModelKeying

    def validate(self, cfg: Config) -> None:
        if not cfg.task_params["lm_dir"]:
            raise ConfigError("task_params.lm_dir: required (a local Hugging Face GPT-2 directory)")

    def check_lm(self, cfg: Config) -> None:
        """Refuse an lm_dir without a config.json."""
        if not (lm_path(cfg) / "config.json").is_file():
            raise ConfigError(
                f"task_params.lm_dir = {cfg.task_params['lm_dir']!r}: no "
                "config.json there (expected a local Hugging Face GPT-2 "
                "directory; see configs/tasks/llm_decoding.yml)"
            )

    def word_token_ids(
        self, cfg: Config, dataset: Dataset
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[int]]:
        """The words with at least one LM token, their [context | target] id columns (-1:
        none), every word's token count, and the words without any."""
        lm_dir = lm_path(cfg)
        tokenizer = load_tokenizer(lm_dir)
        rows = read_table(
            dataset.transcript_path, ("word_idx", "hftoken"), index_col=0, dtype={"hftoken": str}
        )
        if rows["hftoken"].isna().any():
            raise DataError(
                f"{dataset.transcript_path}: empty hftoken in row "
                f"{int(np.flatnonzero(rows['hftoken'].isna())[0])}"
            )
        word_idx = rows["word_idx"].to_numpy().astype(np.int64)
        if np.any(np.diff(word_idx) < 0):
            raise DataError(f"{dataset.transcript_path}: word_idx is not in transcript order")
        ids = token_ids(rows["hftoken"].tolist(), tokenizer)
        words = word_table(dataset)
        p = cfg.task_params
        columns, counts = word_tokens(
            word_idx, ids, words["word_idx"].to_numpy(), p["context_tokens"], p["target_tokens"]
        )
        # config.json is there: the keying's targets, which the key needs first, checked it
        vocab = json.loads((lm_dir / "config.json").read_text()).get("vocab_size")
        if vocab is not None and columns.max() >= vocab:
            raise ConfigError(
                f"task_params.lm_dir = {str(lm_dir)!r}: the tokenizer gives id "
                f"{int(columns.max())}, the model's vocab_size is {vocab}"
            )
        has = counts > 0
        return words[has], columns[has], counts, words["word_idx"][~has].astype(int).tolist()

    @staticmethod
    def token_dataset(values: np.ndarray, kept: pd.DataFrame, attrs: dict):
        """The targets store's content: one row of `values` per kept word."""
        import xarray as xr

        ds = xr.Dataset(
            {"target": (("word", "dim"), values.astype(np.float32))},
            coords={
                "word": kept["word_idx"].to_numpy(),
                "label": ("word", kept["word"].to_numpy().astype(object)),
            },
        )
        return ds, attrs


@register_task("llm_decoding", params=LlmDecodingParams, dataset_files=the_words)
class LlmDecoding(LanguageModelTask):
    """A word's tokens through a frozen GPT-2 with a brain-derived prefix; perplexity, top-k."""

    head = "tokens"
    stop_mode = "min"
    headline = "test_perplexity"
    headline_mode = "min"
    keying_class = LlmDecodingKeying

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        if not registry.models.spec(cfg.model.name, "model.name").takes_targets:
            raise ConfigError(
                f"model.name = {cfg.model.name!r}: task 'llm_decoding' needs a "
                "decoder that feeds the language model (llm_prefix)"
            )
        if "encoder" in cfg.model.params:  # llm_prefix: check its encoder's params now
            encoder = registry.models.spec(cfg.model.params["encoder"], "model.params.encoder")
            build_params(
                encoder.params, cfg.model.params["encoder_params"], "model.params.encoder_params"
            )
        if cfg.model.members != 1:
            raise ConfigError(
                f"model.members = {cfg.model.members}: llm_decoding takes 1 (the "
                "members' token distributions cannot be combined from their "
                "per-token cross-entropies)"
            )
        if cfg.training.loss != "mse":
            raise ConfigError(
                f"training.loss = {cfg.training.loss!r}: llm_decoding has its own "
                "loss; training.loss applies to embedding tasks only"
            )
        if cfg.model.params.get("encoder_init"):
            check_stage_one(cfg)

    def describe(self, cfg: Config) -> str:
        stage = ", stage 2" if cfg.model.params.get("encoder_init") else ""
        return f"llm_decoding ({cfg.model.params.get('prefix', 'brain')} prefix{stage})"

    # ---------------------------------------------------------------- targets

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path, *lm_files(lm_path(cfg), weights=False)]

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_events):
        kept, columns, counts, dropped = self.word_token_ids(cfg, dataset)
        return self.token_dataset(
            columns,
            kept,
            {
                "dropped_words": dropped,
                "lm_tokens": int(counts.sum()),
                "cut_words": int((counts > cfg.task_params["target_tokens"]).sum()),
            },
        )

    def output_dim(self, y: np.ndarray, cfg: Config) -> int:
        """Per target token: its cross-entropy, then its rank."""
        return 2 * cfg.task_params["target_tokens"]

    # ---------------------------------------------------------------- the program

    def frozen(self, cfg: Config):
        """The frozen language model every lane shares."""
        from podbench.tasks.gpt2 import load_gpt2

        return load_gpt2(lm_path(cfg))

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


@register_task(STAGE_ONE, params=LlmDecodingParams, dataset_files=the_words)
class LlmEmbeddingPretraining(LanguageModelTask):
    """Stage 1 of LLM decoding: the mean LM input embedding of the word's target tokens (MSE)."""

    head = "scalar"  # raw linear outputs: the encoder stage 2 puts in front of the LM
    stop_mode = "min"
    split_metric_names = ("cosine_sim", "mse")
    headline = "test_cosine_sim"

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        if registry.models.spec(cfg.model.name, "model.name").takes_targets:
            raise ConfigError(
                f"model.name = {cfg.model.name!r}: stage 1 trains the brain "
                "encoder alone (the decoder llm_prefix uses, e.g. pitom)"
            )
        if cfg.training.loss != "mse":
            raise ConfigError(
                f"training.loss = {cfg.training.loss!r}: {STAGE_ONE} regresses "
                "the mean token embedding with MSE (the reference's stage 1)"
            )

    def describe(self, cfg: Config) -> str:
        return f"{STAGE_ONE} (mean LM token embedding)"

    def target_sources(self, cfg: Config, dataset: Dataset) -> list[Path]:
        return [dataset.transcript_path, *lm_files(lm_path(cfg))]

    def target_dataset(self, cfg: Config, dataset: Dataset, epoch_events):
        from podbench.tasks.gpt2 import token_embeddings

        kept, columns, counts, dropped = self.word_token_ids(cfg, dataset)
        wte = token_embeddings(lm_path(cfg)).astype(np.float64)
        target = columns[:, cfg.task_params["context_tokens"] :]
        valid = target >= 0
        means = (wte[np.maximum(target, 0)] * valid[..., None]).sum(axis=1) / valid.sum(
            axis=1, keepdims=True
        )
        return self.token_dataset(
            means, kept, {"dropped_words": dropped, "lm_width": int(wte.shape[1])}
        )

    def loss(self, pred, y, cfg: Config):
        return ((pred - y) ** 2).mean(axis=-1)

    def stop_value(self, pred, y, mask):
        from podbench.tasks.scoring import masked_mean

        return masked_mean(self.loss(pred, y, None), mask)


# ------------------------------------------------------------------------ stage 1 -> stage 2


def check_stage_one(cfg: Config) -> None:
    """Refuse an `encoder_init` whose config is not a stage-1 run of the same encoder (the
    trainer checks its words, folds, lags and checkpoints when it starts from it)."""
    ref = RunReference("model.params.encoder_init", cfg.model.params["encoder_init"])
    where = str(ref)
    raw = ref.written_config("a stage-1")
    # another task's config is refused unloaded: it could name this config, endlessly
    if ref.config_file and (not isinstance(raw, dict) or raw.get("task") == STAGE_ONE):
        raw = load(ref.config_file).to_dict()  # (not a mapping: load says so)
    if raw.get("task") != STAGE_ONE:
        raise ConfigError(f"{where}: that run is task {raw.get('task')!r}, expected {STAGE_ONE!r}")
    p = cfg.model.params
    model = raw.get("model", {})
    encoder = registry.models.spec(p["encoder"], "model.params.encoder")
    # dropout is a training setting (each lane's rate), not part of the encoder's shape
    mine = build_params(encoder.params, p["encoder_params"], "model.params.encoder_params")
    theirs = build_params(encoder.params, model.get("params", {}), f"{ref.value} model.params")
    mine.pop(encoder.dropout, None)
    theirs.pop(encoder.dropout, None)
    if model.get("name") != p["encoder"] or theirs != mine:
        raise ConfigError(
            f"{where}: that run trained {model.get('name')!r} with "
            f"{model.get('params')}, this encoder is {p['encoder']!r} with {mine}"
        )
    if model.get("members") != 1:
        raise ConfigError(
            f"{where}: that run has model.members = {model.get('members')}, "
            "expected 1 (one encoder per lane)"
        )
    if p["prefix_tokens"] != 1:
        raise ConfigError(
            f"model.params.prefix_tokens = {p['prefix_tokens']}: a stage-1 "
            "encoder gives one embedding, so stage 2 takes prefix_tokens 1"
        )
