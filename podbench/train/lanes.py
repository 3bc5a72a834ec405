"""Laying out a run's lanes: which lag, fold, members and hyper-parameters each one trains.

Lane seeds are derived from (training seed, lag in ms, fold number, member), so a lane's
result never depends on which other lanes run beside it (unlike the reference, whose single
RNG stream makes a lag's result depend on the lags run before it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields

import numpy as np

from podbench import registry
from podbench.config import Config
from podbench.tasks.folds import Fold


def lane_seed(seed: int, lag_ms: int, fold: int, member: int) -> int:
    digest = hashlib.sha256(f"{seed}/{lag_ms}/{fold}/{member}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def key_data(seed: int) -> np.ndarray:
    """Raw threefry key data of jax.random.PRNGKey(seed) for a 32-bit seed."""
    return np.array([0, seed], dtype=np.uint32)


@dataclass
class LaneTable:
    """One row per lane: its lag, fold, first member, and hyper-parameters."""

    lag_ms: np.ndarray
    lag_index: np.ndarray
    fold: np.ndarray  # 1-based fold number
    member: np.ndarray  # first member index of the lane's group
    seed: np.ndarray
    lr: np.ndarray
    weight_decay: np.ndarray
    dropout: np.ndarray
    # sweep point of the lane (0 without a sweep); lay_out always sets it
    point: np.ndarray = field(default=None)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.lag_ms)

    def take(self, rows: np.ndarray) -> LaneTable:
        """The lanes at `rows`, in that order."""
        return LaneTable(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def rows(self) -> list[dict]:
        return [
            {
                "lag": int(self.lag_ms[i]),
                "fold": int(self.fold[i]),
                "member": int(self.member[i]),
                "point": int(self.point[i]),
            }
            for i in range(len(self))
        ]


@dataclass(frozen=True)
class LanePoint:
    """Per-lane hyper-parameters of one configuration (one sweep point)."""

    seed: int
    lr: float
    weight_decay: float
    dropout: float


def lane_point(cfg: Config) -> LanePoint:
    """The per-lane hyper-parameters of one config."""
    t = cfg.training
    return LanePoint(
        t.seed,
        t.lr,
        t.weight_decay,
        registry.models.spec(cfg.model.name).lane_dropout(cfg.model.params),
    )


def lay_out(
    lags: list[int], folds: list[Fold], members: int, group: int, points: list[LanePoint]
) -> LaneTable:
    """Lanes for every point x lag x fold x member group (members // group groups)."""
    cols: dict[str, list] = {
        k: []
        for k in (
            "lag_ms",
            "lag_index",
            "fold",
            "member",
            "seed",
            "lr",
            "weight_decay",
            "dropout",
            "point",
        )
    }
    for p_i, point in enumerate(points):
        for li, lag in enumerate(lags):
            for fold in folds:
                for m in range(0, members, group):
                    cols["lag_ms"].append(lag)
                    cols["lag_index"].append(li)
                    cols["fold"].append(fold.number)
                    cols["member"].append(m)
                    cols["seed"].append(lane_seed(point.seed, lag, fold.number, m))
                    cols["lr"].append(point.lr)
                    cols["weight_decay"].append(point.weight_decay)
                    cols["dropout"].append(point.dropout)
                    cols["point"].append(p_i)
    dtypes = {
        "lr": np.float32,
        "weight_decay": np.float32,
        "dropout": np.float32,
        "seed": np.uint32,
    }
    return LaneTable(**{k: np.asarray(v, dtype=dtypes.get(k, np.int64)) for k, v in cols.items()})


def padded(index_lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged index arrays into [L, n_max] (padded with 0) and their lengths."""
    n_max = max(1, max(len(a) for a in index_lists))
    out = np.zeros((len(index_lists), n_max), np.int32)
    for i, a in enumerate(index_lists):
        out[i, : len(a)] = a
    return out, np.array([len(a) for a in index_lists], np.int32)
