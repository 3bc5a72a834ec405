"""Significance of a cell's lag curve, and paired comparisons of two cells.

Two nulls, each asking its own question (`significance:` of a suite cell):

- Score-level (`permutations: N`, the default kind): "do the held-out predictions carry
  information about the test targets?" At each lag and fold, the run's fixed test predictions
  (test_predictions.npz) are scored against N re-pairings of the fold's test targets
  (`mode`: permuted across events "words", shifted circularly in time "circular", or permuted
  in contiguous runs of `block` events "blocks"; podbench.tasks.nulls.repairings) by the
  re-paired form of the task's headline metric (podbench.tasks.metrics.REPAIRED and
  Task.repaired_headline; the identity re-pairing reproduces the reported value, which is
  checked). Cross-validated predictions never saw their test targets, so this is exact under
  the re-pairing's exchangeability assumption, and costs scoring, not training.
- Retrained (`refit: N`): "could a decoder trained on targets without the brain relation do as
  well?" N null points train beside the real one (the same config with
  `training.shuffle_targets`, distinct `training.permutation_seed`s, the real cell's lane
  seeds) as extra lanes of its program, and are scored like it. When `refit` is set, the
  cell's p-values come from it (the stronger question); the score-level p-values are kept
  beside them (`p_score`).

At each lag the null statistic is the mean over folds (as the observed value), and
p = (1 + #{null >= observed}) / (1 + N), one-sided in the headline's direction; `pool_lags:
true` compares each lag with the null values of all lags (N x n_lags of them), which assumes
the null is the same at every lag. Benjamini-Hochberg q-values across a cell's lags
(scipy.stats.false_discovery_control). Paired comparison of two cells on the same folds: at
the lag chosen on both cells' validation mean, the mean fold difference of the test headline
with a bootstrap interval and the paired t-test over folds; per lag, the same test with BH
q-values across lags (`paired_comparison`, `paired_by_lag`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from podbench.config import Config
from podbench.errors import ConfigError
from podbench.tasks.nulls import REPAIRINGS, repairings

KEYS = ("permutations", "mode", "block", "refit", "pool_lags", "seed", "alpha")
ALPHA = 0.05
MAX_PERMUTATIONS = 100_000  # score-level re-pairings per cell (P x events ints per fold)
MAX_REFITS = 1_000  # retrained null points per cell
CHUNK = 1_000  # re-pairings scored at once (bounds the memory to CHUNK x events per fold)


def _integer(value, where: str, low: int, high: int | None = None) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low} and {high:,}" if high is not None else f">= {low}"
        raise ConfigError(f"{where} = {value!r}: expected an integer {bound}")
    return value


@dataclass(frozen=True)
class Significance:
    """A cell's permutation-test settings; `permutations: 0` and `refit: 0` switch it off."""

    permutations: int = 0  # score-level re-pairings of the test targets
    mode: str = "words"  # words | circular | blocks (refits: words | circular)
    block: int = 10  # events per block of mode "blocks"
    refit: int = 0  # retrained null points
    pool_lags: bool = False
    seed: int = 1
    alpha: float = ALPHA

    @classmethod
    def parse(cls, raw, where: str) -> Significance:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} = {raw!r}: expected a mapping with keys {', '.join(KEYS)}")
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(KEYS)}")
        out = cls(**raw)
        _integer(out.permutations, f"{where}.permutations", 0, MAX_PERMUTATIONS)
        _integer(out.refit, f"{where}.refit", 0, MAX_REFITS)
        _integer(out.block, f"{where}.block", 1)
        _integer(out.seed, f"{where}.seed", 0)
        if out.mode not in REPAIRINGS:
            raise ConfigError(
                f"{where}.mode = {out.mode!r}: expected one of {', '.join(REPAIRINGS)}"
            )
        if out.refit and out.mode == "blocks":
            raise ConfigError(
                f"{where}.mode = 'blocks': retrained nulls (refit) shuffle "
                "training targets by words or circular shifts; use one of those"
            )
        if not isinstance(out.pool_lags, bool):
            raise ConfigError(f"{where}.pool_lags = {out.pool_lags!r}: expected true or false")
        if not isinstance(out.alpha, float) or not 0 < out.alpha < 1:
            raise ConfigError(f"{where}.alpha = {out.alpha!r}: expected a number in (0, 1)")
        return out

    @property
    def enabled(self) -> bool:
        return self.permutations > 0 or self.refit > 0

    @property
    def null(self) -> str:
        """Where a cell's p-values come from: "refit" when retrained nulls are asked for."""
        return "refit" if self.refit else "score"

    def as_dict(self) -> dict:
        return asdict(self)


def null_label(block: dict) -> str:
    """Which null a cell record's p-values come from, in words (cell.json schema 1 had only
    retrained nulls, counted by `permutations`)."""
    if block.get("null", "refit") == "score":
        mode = block["mode"] + (f" of {block['block']}" if block["mode"] == "blocks" else "")
        return f"score-level, {block['permutations']} re-pairings ({mode})"
    count = block.get("refit", block["permutations"]) if "null" in block else block["permutations"]
    return f"retrained, {count} refits ({block['mode']})"


def null_configs(cfg: Config, sig: Significance, trial_name: str) -> list[Config]:
    """The cell's retrained null points: its config on shuffled targets, one permutation seed
    each; training.seed (the lanes' initialisation) stays the real cell's. Nulls keep neither
    checkpoints nor predictions (nothing reads them; neither setting is part of any key)."""
    return [
        cfg.replace(
            {
                "trial_name": trial_name,
                "training.shuffle_targets": True,
                "training.shuffle_mode": sig.mode,
                "training.permutation_seed": sig.seed + k,
                "training.checkpoints": False,
                "training.predictions": False,
            }
        )
        for k in range(sig.refit)
    ]


def score_null(run_dir: Path, cfg: Config, sig: Significance) -> np.ndarray:
    """The score-level null of a results folder's test headline.

    Per lag, the mean over folds of the headline of the fold's fixed test predictions against
    re-paired test targets (the same re-pairings at every lag of a fold). The identity
    re-pairing is scored too and must give the folder's reported value.

    Parameters
    ----------
    run_dir : pathlib.Path
        A results folder with its test_predictions.npz.
    cfg : podbench.config.Config
        Its config.
    sig : Significance
        The cell's settings: ``permutations``, ``mode`` (words, circular or blocks),
        ``block`` and ``seed``.

    Returns
    -------
    numpy.ndarray
        [permutations, n_lag] null values of the headline.

    Raises
    ------
    podbench.errors.ConfigError
        A task whose headline has no score-level null (use retrained nulls).
    RuntimeError
        The identity re-pairing does not give the folder's reported value.
    """
    import pandas as pd

    from podbench.tasks import task_for
    from podbench.tasks.base import HeldOut
    from podbench.train.results import read_test_predictions

    task = task_for(cfg)
    scorer = task.repaired_headline(cfg)
    if scorer is None:
        raise ConfigError(
            f"task {cfg.task!r}: its headline {task.headline} has no score-level "
            "null; use significance: {refit: N} (retrained nulls)"
        )
    saved = read_test_predictions(run_dir)
    perf = pd.read_csv(run_dir / "lag_performance.csv").set_index("lags")
    lags, folds = saved["lag"].tolist(), saved["fold"].tolist()
    per_fold = np.full((len(folds), sig.permutations, len(lags)), np.nan)
    for f, number in enumerate(folds):
        test = np.flatnonzero(saved["test_fold"] == number)
        train_labels = saved["label"][saved["split"][f] == 0]
        rng = np.random.default_rng([sig.seed, number])
        perms = repairings(len(test), sig.permutations, sig.mode, rng, sig.block)
        for i, lag in enumerate(lags):
            held = HeldOut(
                saved["ensemble"][i, test],
                saved["members"][i][:, test],
                saved["target"][test],
                saved["label"][test],
                train_labels,
            )
            observed = float(scorer(held, np.arange(len(test))[None])[0])
            reported = float(perf.loc[lag, f"{task.headline}_fold_{number}"])
            if not np.isclose(observed, reported, rtol=1e-6, atol=1e-9, equal_nan=True):
                raise RuntimeError(
                    f"{run_dir}: the re-paired {task.headline} of lag {lag}, "
                    f"fold {number} is {observed}, the folder reports "
                    f"{reported}: its test_predictions.npz does not match"
                )
            for start in range(0, sig.permutations, CHUNK):
                per_fold[f, start : start + CHUNK, i] = scorer(held, perms[start : start + CHUNK])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a lag whose folds are all nan
        return np.nanmean(per_fold, axis=0)


def permutation_pvalues(observed: np.ndarray, null: np.ndarray, pooled: bool = False) -> np.ndarray:
    """Permutation p-values of each lag: (1 + #{null >= observed}) / (1 + N).

    Parameters
    ----------
    observed : numpy.ndarray
        [n_lag] observed scores (higher is better).
    null : numpy.ndarray
        [N, n_lag] null scores.
    pooled : bool, default False
        Count the null values of every lag (N x n_lag of them) rather than each lag's own.

    Returns
    -------
    numpy.ndarray
        [n_lag] p-values.
    """
    observed = np.asarray(observed, float)
    null = np.asarray(null, float)
    if pooled:
        flat = null.ravel()
        return (1.0 + (flat[None] >= observed[:, None]).sum(axis=1)) / (1.0 + flat.size)
    return (1.0 + (null >= observed[None]).sum(axis=0)) / (1.0 + null.shape[0])


def bh_qvalues(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) across the given tests.

    Parameters
    ----------
    p : numpy.ndarray
        The tests' p-values.

    Returns
    -------
    numpy.ndarray
        Their q-values (``scipy.stats.false_discovery_control``, method "bh"), same shape.
    """
    from scipy import stats

    return stats.false_discovery_control(np.asarray(p, float), method="bh")


@dataclass(frozen=True)
class PairedComparison:
    """Cell A minus cell B at one shared lag, paired over folds.

    The lag is chosen on validation, never on test: the best mean of the two cells' validation
    headline (in its direction). At that lag each fold gives one difference of the test
    headline; `difference` is their mean, [ci_low, ci_high] its 95 % bootstrap interval
    (percentile, resampling folds; scipy.stats.bootstrap), and the test is the paired t-test
    over folds (scipy.stats.ttest_rel, two-sided)."""

    lag: int
    n_folds: int
    a_mean: float
    b_mean: float
    difference: float
    ci_low: float
    ci_high: float
    a_better: int  # folds where A scores higher
    statistic: float
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def _paired_lags(a: dict, b: dict) -> list[int]:
    """The lags two cells share, checking that they can be paired."""
    if a["headline"] != b["headline"]:
        raise ConfigError(
            f"cells {a['cell']} and {b['cell']} have different headline metrics "
            f"({a['headline']}, {b['headline']}): compare cells of one task"
        )
    common = sorted(set(r["lag"] for r in a["per_lag"]) & set(r["lag"] for r in b["per_lag"]))
    if not common or a["folds"] != b["folds"]:
        raise ConfigError(
            f"cells {a['cell']} and {b['cell']} share no (fold, lag) pair: "
            "a paired comparison needs the same folds and lags"
        )
    return common


def _fold_values(record: dict, lag: int, split: str) -> np.ndarray:
    row = next(r for r in record["per_lag"] if r["lag"] == lag)
    return np.array([np.nan if v is None else v for v in row[split]], float)


def _paired_test(da: np.ndarray, db: np.ndarray) -> tuple[float, float]:
    """Paired t statistic and two-sided p over the folds both have; (nan, 1) when undefined."""
    from scipy import stats

    keep = np.isfinite(da) & np.isfinite(db)
    diff = da[keep] - db[keep]
    if len(diff) < 2 or np.all(diff == diff[0]):
        return float("nan"), 1.0
    res = stats.ttest_rel(da[keep], db[keep])
    return float(res.statistic), float(res.pvalue)


def shared_lag(a: dict, b: dict) -> int:
    """The lag with the best mean of both cells' validation headline means."""
    sign = -1.0 if a.get("headline_mode", "max") == "min" else 1.0
    scores = {
        lag: np.nanmean([np.nanmean(_fold_values(r, lag, "val")) for r in (a, b)])
        for lag in _paired_lags(a, b)
    }
    finite = {lag: v for lag, v in scores.items() if np.isfinite(v)}
    return max(finite or scores, key=lambda lag: sign * finite.get(lag, -np.inf))


def paired_comparison(a: dict, b: dict, seed: int = 0) -> PairedComparison:
    """Compare two cells of one task on the same folds at their shared chosen lag.

    Parameters
    ----------
    a, b : dict
        The two cells' records (cell.json contents).
    seed : int, default 0
        The bootstrap's random seed.

    Returns
    -------
    PairedComparison
        A minus B at the lag chosen on validation: the mean fold difference, its 95 %
        bootstrap interval and the paired t-test over folds.
    """
    from scipy import stats

    lag = shared_lag(a, b)
    xa, xb = _fold_values(a, lag, "test"), _fold_values(b, lag, "test")
    keep = np.isfinite(xa) & np.isfinite(xb)
    diff = xa[keep] - xb[keep]
    statistic, p = _paired_test(xa, xb)
    low = high = float(diff.mean()) if len(diff) else float("nan")
    if len(diff) >= 2 and np.ptp(diff) > 0:
        ci = stats.bootstrap(
            (diff,),
            np.mean,
            confidence_level=0.95,
            method="percentile",
            n_resamples=2000,
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return PairedComparison(
        lag,
        int(len(diff)),
        float(np.nanmean(xa)),
        float(np.nanmean(xb)),
        float(diff.mean()) if len(diff) else float("nan"),
        low,
        high,
        int((diff > 0).sum()),
        statistic,
        p,
    )


def paired_by_lag(a: dict, b: dict) -> list[dict]:
    """The paired t-test over folds at every shared lag, with Benjamini-Hochberg q across lags
    (the second table: where along the lag axis the two cells differ)."""
    rows = []
    for lag in _paired_lags(a, b):
        xa, xb = _fold_values(a, lag, "test"), _fold_values(b, lag, "test")
        statistic, p = _paired_test(xa, xb)
        rows.append(
            {
                "lag": lag,
                "difference": float(np.nanmean(xa - xb)),
                "statistic": statistic,
                "p_value": p,
            }
        )
    for row, q in zip(rows, bh_qvalues([r["p_value"] for r in rows])):
        row["q_value"] = float(q)
    return rows
