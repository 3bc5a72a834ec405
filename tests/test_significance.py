"""Score-level permutation nulls: the re-paired metrics are the metrics (same recipe, every
re-pairing), the re-pairings are what they say, and the p-values are calibrated: uniform when
the predictions carry nothing (for each re-pairing, and for circular and block re-pairings
when predictions and targets are both autocorrelated), on synthetic predictions and on a
stand-in with no planted signal, trained and scored end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from podbench import registry
from podbench.experiments.benchmark import benchmark
from podbench.experiments.significance import Significance, permutation_pvalues, score_null
from podbench.tasks.metrics import REPAIRED, repaired_word_avg_auc_roc, word_metrics
from podbench.tasks.nulls import MIN_SHIFT, repairings

REPO = Path(__file__).resolve().parent.parent


def _targets(name: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, y) of a metric's kind, with ties in the scores."""
    if name == "roc_auc":
        return np.round(rng.normal(size=(n, 1)), 1), rng.integers(0, 2, (n, 1)).astype(float)
    if name == "macro_roc_auc":  # class 3 absent from the split
        return rng.normal(size=(n, 4)), rng.integers(0, 3, (n, 1)).astype(float)
    if name == "pearson_r":
        y = rng.normal(size=(n, 1))
        return y + rng.normal(size=(n, 1)), y
    y = rng.normal(size=(n, 6))
    return y + 2 * rng.normal(size=(n, 6)), y


@pytest.mark.parametrize("name", sorted(REPAIRED))
def test_repaired_metric_is_the_metric_of_repaired_targets(name):
    rng = np.random.default_rng(3)
    n = 40
    pred, y = _targets(name, rng, n)
    perms = np.concatenate([np.arange(n)[None], repairings(n, 12, "words", rng)])
    got = REPAIRED[name](pred, y, perms)
    metric = registry.metrics.get(name)
    want = [metric(pred, y[perm]) for perm in perms]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_repaired_word_auc_is_the_reference_recipe_on_repaired_words():
    rng = np.random.default_rng(4)
    n, vocab = 60, np.array(["a", "b", "c", "d", "e", "f"])
    labels = vocab[rng.integers(0, len(vocab), n)]
    y = rng.normal(size=(len(vocab), 5))[np.searchsorted(vocab, labels)]
    members = y[None] + rng.normal(size=(3, n, 5))
    train_labels = np.concatenate([vocab[:5].repeat(3), ["f"]])  # f is not scored (freq 1 < 2)
    perms = np.concatenate([np.arange(n)[None], repairings(n, 10, "words", rng)])
    got = repaired_word_avg_auc_roc(members, y, labels, train_labels, 2, perms)
    want = [
        word_metrics(members, y[p], labels[p], train_labels, 2)["test_word_avg_auc_roc"]
        for p in perms
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] > np.median(got[1:])  # the true pairing: the members see the words


def test_repairings_are_what_they_say():
    rng = np.random.default_rng(0)
    n = 53
    words = repairings(n, 50, "words", rng)
    assert all(sorted(row) == list(range(n)) for row in words)
    assert len({tuple(r) for r in words}) == 50
    margin = int(np.ceil(MIN_SHIFT * n))
    for row in repairings(n, 200, "circular", rng):
        shift = (0 - row[0]) % n  # prediction i gets target i - shift
        np.testing.assert_array_equal(row, (np.arange(n) - shift) % n)
        assert margin <= shift <= n - margin
    blocks = repairings(n, 50, "blocks", rng, block=10)
    for row in blocks:  # whole blocks of 10 (the last of 3), in another order
        starts, pos = [], 0
        while pos < n:
            start = int(row[pos])
            size = min(10, n - start)
            np.testing.assert_array_equal(row[pos : pos + size], np.arange(start, start + size))
            starts.append(start)
            pos += size
        assert sorted(starts) == list(range(0, n, 10))
    assert len({tuple(r) for r in blocks}) > 40
    with pytest.raises(ValueError, match="unknown re-pairing"):
        repairings(n, 1, "roll", rng)


def _ar1(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    noise = rng.normal(size=n) * np.sqrt(1 - rho**2)
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + noise[i]
    return x


def _null_pvalues(rho: float, mode: str, block: int, replicates: int = 400) -> np.ndarray:
    """p of Pearson r between independent AR(1) predictions and targets, per replicate."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(replicates):
        n = 300
        pred, y = _ar1(rng, n, rho)[:, None], _ar1(rng, n, rho)[:, None]
        observed = REPAIRED["pearson_r"](pred, y, np.arange(n)[None])
        null = REPAIRED["pearson_r"](pred, y, repairings(n, 199, mode, rng, block))
        out.append(permutation_pvalues(observed, null[:, None])[0])
    return np.array(out)


def _assert_calibrated(p: np.ndarray, alpha: float = 0.05) -> None:
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.sort(p)
    low, high = stats.binom.interval(0.999, len(p), alpha)
    assert low <= (p <= alpha).sum() <= high, (p <= alpha).mean()


@pytest.mark.parametrize(
    "rho, mode, block",
    [
        (0.0, "words", 10),
        (0.0, "circular", 10),
        (0.0, "blocks", 25),
        (0.9, "circular", 10),
        (0.9, "blocks", 50),
    ],
)
def test_nulls_are_uniform_when_predictions_carry_nothing(rho, mode, block):
    _assert_calibrated(_null_pvalues(rho, mode, block))


def test_word_permutations_are_anticonservative_for_autocorrelated_series():
    """Why circular and blocks exist: two independent slowly drifting series correlate by
    chance more often than permuted pairings of them do."""
    p = _null_pvalues(0.9, "words", 10)
    assert (p <= 0.05).mean() > 0.15


@pytest.mark.slow
def test_a_no_signal_standin_is_at_the_nominal_rate_end_to_end(tmp_path):
    """A stand-in with no planted response (snr 0), decoded by ridge at two non-overlapping
    lags into 12 independent draws of arbitrary word embeddings (one cell each), trained and
    scored by the benchmark: the 24 p-values of each re-pairing are uniform."""
    import pandas as pd

    from podbench import config
    from podbench.data.synth import synthesize

    root = synthesize(tmp_path / "ds", subjects=[3], duration=300, snr=0.0)
    suite = tmp_path / "s.yml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "nosignal",
                "version": 1,
                "defaults": {
                    "set": {
                        "data.root": str(root),
                        "data.electrodes": None,
                        "data.lags": {"min": 0, "max": 1400, "step": 700},
                        "output.stores": str(tmp_path / "stores"),
                        "output.results": str(tmp_path / "results"),
                        "targets": {
                            "kind": "arbitrary",
                            "dim": 16,
                            "pca_dim": None,
                            "min_train_freq": 2,
                        },
                        "model.name": "ridge",
                        "model.params": {},
                        "model.members": 1,
                        "preprocess.params": {"num_average_samples": 160},
                    },
                    "significance": {"permutations": 199},
                },
                "cells": [
                    {
                        "name": f"draw{k}",
                        "config": str(REPO / "configs/demo.yml"),
                        "set": {"targets.seed": k},
                    }
                    for k in range(12)
                ],
            }
        )
    )
    result = benchmark(suite, log=lambda s: None)
    pvalues: dict[str, list[float]] = {"words": [], "circular": [], "blocks": []}
    for run_json in sorted(result.folder.glob("cells/*/*/run.json")):
        run_dir = run_json.parent
        cfg = config.from_dict(yaml.safe_load((run_dir / "config.yml").read_text()))
        observed = pd.read_csv(run_dir / "lag_performance.csv")["test_word_avg_auc_roc_mean"]
        assert len(observed) == 2
        for mode in pvalues:
            sig = Significance(permutations=199, mode=mode, block=20)
            pvalues[mode] += list(
                permutation_pvalues(observed.to_numpy(float), score_null(run_dir, cfg, sig))
            )
    for p in pvalues.values():
        assert len(p) == 24
        _assert_calibrated(np.array(p))
