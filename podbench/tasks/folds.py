"""Train/validation/test folds over words, deterministic from the config.

- sequential (the reference): n contiguous test blocks in time order (sklearn KFold without
  shuffling); validation = the last `val_fraction` (ceil) of the remaining words in time order.
  `gap` > 0 leaves out the `gap` words on each side of the test block (neither training nor
  validation): targets and signals that drift slowly make the words next to a test block
  predict it, whatever the brain carries.
- zero_shot: folds over word types (labels), so every occurrence of a type is in one split;
  types are taken in sorted order and shuffled with the seed (never Python's hash order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from podbench.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """Index arrays (into the run's word list) of one fold; `number` is 1-based."""

    number: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _tail_split(idx: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    n_val = math.ceil(fraction * len(idx))
    return idx[: len(idx) - n_val], idx[len(idx) - n_val :]


def sequential_folds(n_words: int, n_folds: int, val_fraction: float, gap: int = 0) -> list[Fold]:
    sizes = np.full(n_folds, n_words // n_folds)
    sizes[: n_words % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    everything = np.arange(n_words)
    folds = []
    for k in range(n_folds):
        test = everything[bounds[k] : bounds[k + 1]]
        before = everything[: max(0, bounds[k] - gap)]
        rest = np.concatenate([before, everything[bounds[k + 1] + gap :]])
        train, val = _tail_split(rest, val_fraction)
        folds.append(Fold(k + 1, train, val, test))
    return folds


def zero_shot_folds(labels: np.ndarray, n_folds: int, val_fraction: float, seed: int) -> list[Fold]:
    types = np.array(sorted(set(labels.tolist())), dtype=object)
    if len(types) < n_folds:
        raise ConfigError(
            f"training.n_folds = {n_folds}: only {len(types)} word types for zero-shot folds"
        )
    order = types[np.random.default_rng(seed).permutation(len(types))]
    parts = np.array_split(order, n_folds)
    folds = []
    for k in range(n_folds):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        rest = rest[np.random.default_rng(seed + k + 1).permutation(len(rest))]
        n_val = math.ceil(val_fraction * len(rest))
        split = {"test": set(parts[k]), "val": set(rest[len(rest) - n_val :])}
        where = {
            name: np.flatnonzero([lab in members for lab in labels])
            for name, members in split.items()
        }
        train = np.setdiff1d(np.arange(len(labels)), np.concatenate(list(where.values())))
        folds.append(Fold(k + 1, train, where["val"], where["test"]))
    return folds


def make_folds(
    labels: np.ndarray,
    n_folds: int,
    fold_type: str,
    val_fraction: float,
    seed: int,
    gap: int = 0,
) -> list[Fold]:
    """Folds over words (in time order) with the given labels (word types)."""
    if len(labels) < 3 * n_folds:
        raise ConfigError(f"training.n_folds = {n_folds}: only {len(labels)} words")
    if fold_type == "sequential":
        folds = sequential_folds(len(labels), n_folds, val_fraction, gap)
        if min(min(len(f.train), len(f.val)) for f in folds) == 0:
            raise ConfigError(
                f"training.gap = {gap}: leaves a fold of {len(labels)} words without "
                "training or validation words"
            )
        return folds
    return zero_shot_folds(np.asarray(labels, dtype=object), n_folds, val_fraction, seed)


def folds_fragment(cfg) -> dict:
    """Fields that define the train/validation/test split of the words."""
    t = cfg.training
    frag = {"n_folds": t.n_folds, "fold_type": t.fold_type, "val_fraction": t.val_fraction}
    if t.gap:  # (keys of folds made before it existed stay as they were)
        frag["gap"] = t.gap
    if t.fold_type == "zero_shot":
        frag.update(seed=t.seed, label_normalisation=cfg.data.label_normalisation)
    return frag


def folds_for(cfg, labels: np.ndarray) -> list[Fold]:
    t = cfg.training
    return make_folds(labels, t.n_folds, t.fold_type, t.val_fraction, t.seed, t.gap)
