"""Word vectors from a local Hugging Face model: one layer's hidden states, averaged per word.

The transcript's words are joined with single spaces and tokenized once. The model runs over
windows of W tokens that advance by W // 2, and each token keeps its state from the window
where it has the most left context: all of the first window, the second half of the others.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import numpy as np

from podbench.errors import ConfigError
from podbench.progress import progress

MAX_WINDOW = 512


def _load(model_dir: Path):
    """The fast tokenizer and the float32 eval-mode model of a local directory (never downloads)."""
    from transformers import AutoModel, AutoTokenizer

    where = f"targets.hf_model = {str(model_dir)!r}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    except Exception as err:  # transformers raises OSError, ValueError, KeyError, ... here
        raise ConfigError(
            f"{where}: not a loadable Hugging Face model and tokenizer "
            f"({type(err).__name__}: {err})"
        ) from err
    if not tokenizer.is_fast:
        raise ConfigError(
            f"{where}: {type(tokenizer).__name__} is not a fast tokenizer "
            f"(character offsets are needed to map tokens to words)"
        )
    return tokenizer, model.float().eval()


def _token_words(offsets: np.ndarray, words: list[str]) -> np.ndarray:
    """Index of the word each token belongs to (-1: none), for `words` joined by single spaces.

    A token belongs to the first word its character span overlaps, i.e. the word it starts in
    (a token that starts with the separating space belongs to the next word). Tokens with empty
    spans or covering spaces only belong to none.
    """
    lengths = np.array([len(w) for w in words], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
    ends = starts + lengths
    begin, end = offsets[:, 0], offsets[:, 1]
    word = np.searchsorted(ends, begin, side="right")
    inside = word < len(words)
    overlaps = np.zeros(len(word), bool)
    overlaps[inside] = starts[word[inside]] < end[inside]
    return np.where((end > begin) & overlaps, word, -1)


def _special_affixes(tokenizer, text: str, ids: list[int]) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a sequence (e.g. [CLS], [SEP])."""
    full = tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    for i in range(len(full) - len(ids) + 1):
        if full[i : i + len(ids)] == ids:
            return full[:i], full[i + len(ids) :]
    raise ConfigError(
        f"targets.hf_model: {type(tokenizer).__name__} does not add special tokens "
        f"around a sequence as a prefix and a suffix"
    )


def _windows(n_tokens: int, width: int) -> list[tuple[int, int, int]]:
    """(start, keep, end): windows [start, end) advancing by width // 2; tokens keep..end-1 are
    taken from this window (the one in which they have the most left context)."""
    step = max(width // 2, 1)
    out, start, kept = [], 0, 0
    while kept < n_tokens:
        end = min(start + width, n_tokens)
        out.append((start, kept, end))
        start, kept = start + step, end
    return out


def word_hidden_states(
    model_dir: Path, words: list[str], layer: int, batch_windows: int = 8
) -> np.ndarray:
    """float32 [len(words), hidden]: hidden states of layer `layer` (0 = embeddings) of a local
    Hugging Face model run over the transcript, sub-tokens averaged back to words.

    `words` are raw transcript strings, in order; `batch_windows` windows run per forward pass.
    """
    import torch

    tokenizer, model = _load(Path(model_dir))
    config = model.config
    n_states = config.num_hidden_layers + 1
    if not 0 <= layer < n_states:
        raise ConfigError(
            f"targets.layer = {layer}: out of range for targets.hf_model = "
            f"{str(model_dir)!r}, which has {n_states} hidden states "
            f"(0 = embeddings .. {n_states - 1})"
        )

    text = " ".join(words)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids = enc["input_ids"]
    owner = _token_words(np.array(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2), words)
    counts = np.bincount(owner[owner >= 0], minlength=len(words))
    if len(words) and counts.min() == 0:
        i = int(np.argmin(counts))
        raise ConfigError(
            f"targets.hf_model = {str(model_dir)!r}: word {i} ({words[i]!r}) has no token"
        )

    prefix, suffix = _special_affixes(tokenizer, text, ids)
    positions = (
        getattr(config, "max_position_embeddings", None)
        or getattr(config, "n_positions", None)
        or MAX_WINDOW
    )
    width = min(positions, tokenizer.model_max_length, MAX_WINDOW) - len(prefix) - len(suffix)
    states = np.zeros((len(ids), config.hidden_size), np.float32)
    windows = _windows(len(ids), width)
    bar = progress(len(windows), f"hidden states of {Path(model_dir).name}", unit="window")
    with torch.inference_mode():
        for _, of_length in groupby(windows, key=lambda w: w[2] - w[0]):
            same_length = list(of_length)
            for b in range(0, len(same_length), batch_windows):
                batch = same_length[b : b + batch_windows]
                inputs = torch.tensor([prefix + ids[s:e] + suffix for s, _, e in batch])
                hidden = model(input_ids=inputs, output_hidden_states=True).hidden_states[layer]
                for row, (s, k, e) in zip(hidden.numpy(), batch):
                    states[k:e] = row[len(prefix) + k - s : len(prefix) + e - s]
                bar.update(len(batch))
    bar.close()

    sums = np.zeros((len(words), states.shape[1]), np.float64)
    np.add.at(sums, owner[owner >= 0], states[owner >= 0])
    return (sums / counts[:, None]).astype(np.float32)
