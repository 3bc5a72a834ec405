"""Null targets. The shuffled-target control ("all") permutes every word's target, test rows
too, so every metric comes out at chance. The nulls of a permutation test ("words",
"circular") permute the training rows' targets (train and validation) across words or shift
them circularly in time, in each fold; the test rows keep their true targets, so a decoder
trained on the null is scored exactly like the real one."""

from __future__ import annotations

import numpy as np

from podbench.tasks.folds import Fold

MIN_SHIFT = 0.1  # circular shifts move the targets by at least this fraction of the rows


def null_targets(y: np.ndarray, folds: list[Fold], mode: str, seed: int) -> np.ndarray:
    """y [n_yfold, N, D] -> [n_folds, N, D]: each fold's targets with every row permuted
    (`mode` "all"), or its non-test rows permuted ("words") or rolled by a random offset in
    time order ("circular")."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(folds), *y.shape[1:]), y.dtype)
    for i, fold in enumerate(folds):
        source = y[fold.number - 1 if y.shape[0] > 1 else 0]
        if mode == "all":  # the control: the same permutation of every row in each fold
            out[i] = source[np.random.default_rng(seed).permutation(len(source))]
            continue
        rows = np.sort(np.concatenate([fold.train, fold.val]))
        if mode == "words":
            moved = rng.permutation(rows)
        elif mode == "circular":
            margin = max(1, int(MIN_SHIFT * len(rows)))
            moved = np.roll(rows, int(rng.integers(margin, max(margin, len(rows) - margin) + 1)))
        else:
            raise ValueError(f"unknown null-target mode {mode!r}")
        out[i] = source
        out[i, rows] = source[moved]
    return out
