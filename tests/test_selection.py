"""Nothing printed or written as "best" depends on test predictions: lags, sweep points and the
multimodal lag are chosen on validation, so rewriting only the test columns moves none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podbench import config
from podbench.experiments.multimodal import chosen_lag, multimodal_score
from podbench.experiments.sweep import summarise
from podbench.tasks import task_for
from podbench.train.run import summary_table

LAGS = [-400, -200, 0, 200, 400]
FOLDS = (1, 2, 3)


def performance(metrics: dict[str, list[float]]) -> pd.DataFrame:
    """A lag_performance table: per metric, _mean, _std and three folds around the mean."""
    table = {"lags": LAGS}
    for name, means in metrics.items():
        table[f"{name}_mean"] = means
        table[f"{name}_std"] = [0.01] * len(LAGS)
        for k in FOLDS:
            table[f"{name}_fold_{k}"] = [m + 0.01 * (k - 2) for m in means]
    return pd.DataFrame(table)


def rewrite_test(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same table with every test_* column replaced by random values."""
    out = table.copy()
    rng = np.random.default_rng(seed)
    for col in out.columns:
        if col.startswith("test_"):
            out[col] = rng.uniform(0, 1, len(out))
    return out


def chosen_row(text: str) -> str:
    return next(line for line in text.splitlines() if "<- chosen" in line).split()[0]


@pytest.mark.parametrize("task", ["word_embedding", "loudness", "sentence_onset"])
def test_closing_table_chooses_on_validation(task):
    cfg = config.from_dict({"task": task})
    t = task_for(cfg)
    perf = performance(
        {t.selection_metric: [0.5, 0.6, 0.7, 0.65, 0.5], t.headline: [0.9, 0.5, 0.6, 0.55, 0.5]}
    )  # test peaks at -400
    text = summary_table(perf, t, cfg)
    assert chosen_row(text) == "0" and text.startswith(f"task {task} ")
    assert t.selection_metric in text.splitlines()[0]
    for seed in range(5):
        assert chosen_row(summary_table(rewrite_test(perf, seed), t, cfg)) == "0"


def test_regression_chooses_lag_on_validation_pearson_not_mse():
    cfg = config.from_dict({"task": "loudness"})
    t = task_for(cfg)
    assert t.stop_mode == "min" and t.selection_metric == "val_pearson_r"
    perf = performance(
        {
            "val_pearson_r": [0.1, 0.3, 0.2, 0.0, 0.0],
            "val_mse": [0.5, 0.9, 0.4, 0.9, 0.9],  # lowest at 0: not what chooses
            "test_pearson_r": [0.1, 0.2, 0.5, 0.0, 0.0],
        }
    )
    assert perf.loc[t.select_lag(perf), "lags"] == -200


def test_min_headline_chooses_the_minimum():
    from podbench.tasks.surprisal import Surprisal

    class LowerIsBetter(Surprisal):
        headline = "test_mse"
        headline_mode = "min"

    perf = performance({"val_mse": [0.5, 0.2, 0.4, 0.9, 0.3], "test_mse": [0.1] * 5})
    assert perf.loc[LowerIsBetter().select_lag(perf), "lags"] == -200


def test_sweep_summary_best_ignores_test(tmp_path: Path):
    cfg = config.from_dict({"task": "word_embedding"})
    t = task_for(cfg)
    vals = [[0.5, 0.6, 0.55, 0.5, 0.5], [0.5, 0.52, 0.58, 0.7, 0.5], [0.5, 0.5, 0.5, 0.5, 0.6]]
    dirs, points = [], []
    for i, v in enumerate(vals):
        run = tmp_path / f"run{i}"
        run.mkdir()
        performance({t.selection_metric: v, t.headline: v[::-1]}).to_csv(
            run / "lag_performance.csv", index=False
        )
        dirs.append(run)
        points.append({"training.lr": 10.0 ** -(i + 2)})
    before = summarise([cfg] * 3, points, dirs)
    assert before["best_lag"].tolist() == [-200, 200, 400] and before["best"].tolist() == [
        False,
        True,
        False,
    ]
    for seed in range(3):
        for run in dirs:
            perf = pd.read_csv(run / "lag_performance.csv")
            rewrite_test(perf, seed).to_csv(run / "lag_performance.csv", index=False)
        after = summarise([cfg] * 3, points, dirs)
        pd.testing.assert_series_equal(after["best_lag"], before["best_lag"])
        pd.testing.assert_series_equal(after["best"], before["best"])
        assert not after[f"{t.headline}_mean"].equals(before[f"{t.headline}_mean"])


def test_multimodal_lag_ignores_test(tmp_path: Path):
    def run(name, val, test):
        path = tmp_path / name
        path.mkdir()
        pd.DataFrame(
            {"lags": LAGS, "val_pairwise_accuracy_mean": val, "test_pairwise_accuracy_mean": test}
        ).to_csv(path / "lag_performance.csv", index=False)
        return path

    a = run("a", [0.5, 0.55, 0.6, 0.58, 0.5], [0.9, 0.5, 0.5, 0.5, 0.5])
    b = run("b", [0.5, 0.6, 0.7, 0.6, 0.5], [0.9, 0.5, 0.5, 0.5, 0.5])
    lag, test, val = chosen_lag(multimodal_score(a, b))
    assert lag == 0 and test == pytest.approx(0.5) and val == pytest.approx(2 * 0.6 * 0.7 / 1.3)
    for seed in range(3):
        for path in (a, b):
            perf = pd.read_csv(path / "lag_performance.csv")
            rewrite_test(perf, seed).to_csv(path / "lag_performance.csv", index=False)
        assert chosen_lag(multimodal_score(a, b))[0] == 0
