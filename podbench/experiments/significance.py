"""Significance of a cell's lag curve, and paired comparisons of two cells.

- Permutation test per lag: a cell with `significance: {permutations: N}` trains N null
  points beside the real one (the same config with `training.shuffle_targets`, distinct
  `training.permutation_seed`s, the real cell's lane seeds), as extra lanes of its program.
  At each lag, p = (1 + #{null >= observed}) / (1 + N) on the test headline metric (mean
  over folds); higher is better for every headline metric. `pool_lags: true` compares each lag
  with the null values of all lags (N x n_lags of them), which assumes the null distribution
  is the same at every lag and gives finer p-values from few permutations.
- Benjamini-Hochberg q-values across a cell's lags (scipy.stats.false_discovery_control).
- Paired comparison of two cells on the same folds and lags: the Wilcoxon signed-rank test
  of their test headline over (fold, lag) pairs (scipy.stats.wilcoxon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from podbench.config import Config
from podbench.errors import ConfigError

MODES = ("words", "circular")
KEYS = ("permutations", "mode", "pool_lags", "seed", "alpha")
ALPHA = 0.05


@dataclass(frozen=True)
class Significance:
    """A cell's permutation-test settings (`permutations: 0` switches the test off)."""

    permutations: int = 0
    mode: str = "words"
    pool_lags: bool = False
    seed: int = 1
    alpha: float = ALPHA

    @classmethod
    def parse(cls, raw, where: str) -> "Significance":
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} = {raw!r}: expected a mapping with keys "
                              f"{', '.join(KEYS)}")
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(KEYS)}")
        out = cls(**raw)
        if not isinstance(out.permutations, int) or isinstance(out.permutations, bool) \
                or out.permutations < 0:
            raise ConfigError(f"{where}.permutations = {out.permutations!r}: expected an "
                              "integer >= 0")
        if out.mode not in MODES:
            raise ConfigError(f"{where}.mode = {out.mode!r}: expected one of {', '.join(MODES)}")
        if not isinstance(out.pool_lags, bool):
            raise ConfigError(f"{where}.pool_lags = {out.pool_lags!r}: expected true or false")
        if not isinstance(out.seed, int) or isinstance(out.seed, bool):
            raise ConfigError(f"{where}.seed = {out.seed!r}: expected an integer")
        if not isinstance(out.alpha, float) or not 0 < out.alpha < 1:
            raise ConfigError(f"{where}.alpha = {out.alpha!r}: expected a number in (0, 1)")
        return out

    def as_dict(self) -> dict:
        return {"permutations": self.permutations, "mode": self.mode, "pool_lags": self.pool_lags,
                "seed": self.seed, "alpha": self.alpha}


def null_configs(cfg: Config, sig: Significance, trial_name: str) -> list[Config]:
    """The cell's null points: its config on shuffled targets, one permutation seed each;
    training.seed (the lanes' initialisation) stays the real cell's. Nulls keep no
    checkpoints (nothing predicts from a null model; the setting is not part of any key)."""
    return [cfg.replace({"trial_name": trial_name, "training.shuffle_targets": True,
                         "training.shuffle_mode": sig.mode,
                         "training.permutation_seed": sig.seed + k,
                         "training.checkpoints": False})
            for k in range(sig.permutations)]


def permutation_pvalues(observed: np.ndarray, null: np.ndarray, pooled: bool = False) -> np.ndarray:
    """observed [n_lag], null [N, n_lag] -> p [n_lag] = (1 + #{null >= observed}) / (1 + N),
    counting each lag's own null values, or (`pooled`) the null values of every lag."""
    observed = np.asarray(observed, float)
    null = np.asarray(null, float)
    if pooled:
        flat = null.ravel()
        return (1.0 + (flat[None] >= observed[:, None]).sum(axis=1)) / (1.0 + flat.size)
    return (1.0 + (null >= observed[None]).sum(axis=0)) / (1.0 + null.shape[0])


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) across the given tests."""
    from scipy import stats

    return stats.false_discovery_control(np.asarray(p, float), method="bh")


@dataclass
class PairedComparison:
    """Wilcoxon signed-rank test of cell A minus cell B over their (fold, lag) pairs."""

    n_pairs: int
    median_difference: float
    a_better: int  # pairs where A scores higher
    statistic: float
    p_value: float

    def as_dict(self) -> dict:
        return {"n_pairs": self.n_pairs, "median_difference": self.median_difference,
                "a_better": self.a_better, "statistic": self.statistic, "p_value": self.p_value}


def paired_comparison(a: dict, b: dict) -> PairedComparison:
    """Compare two cell records (cell.json content) on the same task, folds and lags."""
    from scipy import stats

    if a["headline"] != b["headline"]:
        raise ConfigError(f"cells {a['cell']} and {b['cell']} have different headline metrics "
                          f"({a['headline']}, {b['headline']}): compare cells of one task")
    lags_a = {row["lag"]: row for row in a["per_lag"]}
    lags_b = {row["lag"]: row for row in b["per_lag"]}
    common = sorted(set(lags_a) & set(lags_b))
    if not common or a["folds"] != b["folds"]:
        raise ConfigError(f"cells {a['cell']} and {b['cell']} share no (fold, lag) pair: "
                          "a paired comparison needs the same folds and lags")
    xa = np.array([lags_a[lag]["test"] for lag in common], float).ravel()
    xb = np.array([lags_b[lag]["test"] for lag in common], float).ravel()
    keep = np.isfinite(xa) & np.isfinite(xb)
    diff = xa[keep] - xb[keep]
    if len(diff) == 0 or np.all(diff == 0):
        return PairedComparison(len(diff), 0.0, 0, float("nan"), 1.0)
    res = stats.wilcoxon(xa[keep], xb[keep], alternative="two-sided")
    return PairedComparison(int(len(diff)), float(np.median(diff)), int((diff > 0).sum()),
                            float(res.statistic), float(res.pvalue))
