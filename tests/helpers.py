"""Helpers shared by several test files (fixtures are in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import yaml

from podbench import config

REPO = Path(__file__).resolve().parents[1]
# the real transcript (shipped with podbench), whose words a tiny GPT-2's tokenizer learns
TRANSCRIPT = REPO / "podbench/data/ds005574/stimuli/gpt2-xl/transcript.tsv"
VOCAB = 300  # tokens of the tiny GPT-2


def make_config(root: Path, work: Path, **sections) -> config.Config:
    """A validated config on a stand-in with stores and results under `work`."""
    raw = {
        "data": {"root": str(root)},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return config.from_dict(raw)


def mirror(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
    """A copy of a dataset made of symlinks, with some files replaced (None: removed)."""
    for folder, _, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            key = str(rel / name) if str(rel) != "." else name
            if key in replace:
                if replace[key] is not None:
                    (dst / rel / name).write_bytes(replace[key])
            else:
                (dst / rel / name).symlink_to(Path(folder) / name)
    return dst


def tiny_gpt2(out: Path, vocab: int = VOCAB, init: float = 0.02, seed: int = 0) -> Path:
    """A 2-layer random GPT-2 (n_embd 32) and a byte-level BPE tokenizer trained on the real
    transcript's words, saved with transformers like a Hugging Face `gpt2` directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    words = pd.read_csv(TRANSCRIPT, sep="\t", index_col=0).groupby("word_idx")["word"].first()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    tok.train_from_iterator(
        [" ".join(words)],
        trainers.BpeTrainer(
            vocab_size=vocab,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[end],
            show_progress=False,
        ),
    )
    tokenizer = GPT2TokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=len(tokenizer),
        n_positions=128,
        initializer_range=init,
        bos_token_id=tok.token_to_id(end),
        eos_token_id=tok.token_to_id(end),
    )
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


def write_suite(path: Path, cells: list[dict], defaults: dict, name: str = "t") -> Path:
    path.write_text(
        yaml.safe_dump(
            {"name": name, "version": 1, "defaults": defaults, "cells": cells}, sort_keys=False
        )
    )
    return path


def small_defaults(root: Path, work: Path, electrodes, lags: dict, **extra) -> dict:
    return {
        "set": {
            "data.root": str(root),
            "data.electrodes": electrodes,
            "data.lags": lags,
            "output.stores": str(work / "stores"),
            "output.results": str(work / "results"),
            "model.members": 1,
            "preprocess.params": {"num_average_samples": 320},
            **extra,
        }
    }


RIDGE = {"model.name": "ridge", "model.params": {}}
MLP = {
    "model.name": "mlp",
    "model.params": {"hidden": [8]},
    "training.epochs": 2,
    "training.patience": 1,
}
