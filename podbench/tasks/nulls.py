"""Null targets and re-pairings.

Null targets (retrained nulls). The shuffled-target control ("all") permutes every word's target,
test rows too, so every metric comes out at chance. The nulls of a permutation test ("words",
"circular") permute the training rows' targets (train and validation) across words or shift them
circularly in time, in each fold; the test rows keep their true targets, so a decoder trained on the
null is scored exactly like the real one.

Re-pairings (score-level nulls, `repairings`). A fold's fixed test predictions are scored
against its test targets re-paired: permuted across the events ("words"), shifted circularly
in time by at least `MIN_SHIFT` of the split ("circular"), or permuted in contiguous blocks of
events ("blocks")."""

from __future__ import annotations

import math

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


REPAIRINGS = ("words", "circular", "blocks")


def repairings(
    n: int, count: int, mode: str, rng: np.random.Generator, block: int = 10
) -> np.ndarray:
    """[count, n] re-pairings of a test split's n events (time order): row p pairs prediction
    i with the target of event row[i]. "words": uniform permutations; "circular": the targets
    shifted by s events (i -> i - s mod n), s uniform in [ceil(MIN_SHIFT n), n - that];
    "blocks": the split cut into runs of `block` consecutive events (the last may be
    shorter) whose order is permuted."""
    events = np.arange(n)
    if mode == "words":
        return rng.permuted(np.broadcast_to(events, (count, n)), axis=1)
    if mode == "circular":
        margin = max(1, math.ceil(MIN_SHIFT * n))
        shifts = rng.integers(margin, max(margin, n - margin) + 1, size=count)
        return (events[None, :] - shifts[:, None]) % n
    if mode == "blocks":
        runs = np.array_split(events, range(block, n, block))
        return (
            np.stack(
                [
                    np.concatenate([runs[b] for b in rng.permutation(len(runs))])
                    for _ in range(count)
                ]
            )
            if count
            else np.empty((0, n), np.int64)
        )
    raise ValueError(f"unknown re-pairing {mode!r}; expected one of {', '.join(REPAIRINGS)}")
