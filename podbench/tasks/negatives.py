"""Negative events of the boundary tasks: points drawn inside segments, away from every boundary.

`sentence_onset` (negatives inside sentences, away from every onset) and `iu_boundary`
(inside intonation units, away from every IU boundary) share this draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from podbench.errors import DataError


def draw_inside(
    lo: np.ndarray, hi: np.ndarray, avoid: np.ndarray, n: int, margin: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """`n` times uniform over the union of the intervals [lo_k, hi_k] minus `margin` around
    every point of `avoid`, by rejection sampling; deterministic from `seed`.

    Returns (times, interval index k of each), sorted by time. Empty intervals (hi <= lo)
    get none. `what` names the segments and boundaries in errors, e.g. "sentence onset".
    """
    room = np.clip(hi - lo, 0.0, None)
    if room.sum() <= 0:
        raise DataError(
            f"no segment (between consecutive {what} times) leaves room for "
            f"negatives at least task_params.margin = {margin:g} s from its ends"
        )
    rng = np.random.default_rng(seed)
    cum = np.cumsum(room)
    order = np.sort(avoid)
    picked_t, picked_k = [], []
    for _ in range(1000):
        u = rng.uniform(0.0, cum[-1], 2 * n)
        # interval k holds u in [cum[k-1], cum[k]): never an empty one
        k = np.minimum(np.searchsorted(cum, u, side="right"), len(room) - 1)
        t = lo[k] + (u - (cum[k] - room[k]))
        i = np.clip(np.searchsorted(order, t), 1, len(order) - 1)
        near = np.minimum(np.abs(t - order[i - 1]), np.abs(t - order[i]))
        ok = near >= margin if len(order) > 1 else np.abs(t - order[0]) >= margin
        picked_t.append(t[ok])
        picked_k.append(k[ok])
        if sum(len(x) for x in picked_t) >= n:
            break
    else:
        raise DataError(
            f"could not place {n} negatives at least task_params.margin = "
            f"{margin:g} s from every {what}"
        )
    t = np.concatenate(picked_t)[:n]
    k = np.concatenate(picked_k)[:n]
    keep = np.argsort(t, kind="stable")
    return t[keep], k[keep]


def numbered_events(events: pd.DataFrame) -> pd.DataFrame:
    """Positives and negatives in time order (then by label, for equal times),
    numbered 0, 1, ... as `word_idx`."""
    events = events.sort_values(["start", "word"], kind="stable").reset_index(drop=True)
    events.insert(0, "word_idx", np.arange(len(events), dtype=np.int64))
    return events
