"""The multimodal summary of two runs (the reference's scripts/multimodal_score.py).

Per lag, the harmonic mean 2ab / (a + b) of run A's and run B's `test_pairwise_accuracy_mean`
(typically a word-embedding run and a Whisper run), the two lag_performance tables joined on
`lags` (lags present in both). The same harmonic mean of their validation pairwise accuracies
(`val_pairwise_accuracy_mean`) chooses the lag; the test score at that lag is the headline.
`podbench multimodal RUN_DIR_A RUN_DIR_B [--out CSV]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.errors import DataError

METRIC = "test_pairwise_accuracy_mean"
PERFORMANCE = "lag_performance.csv"


def validation_column(metric: str) -> str:
    return "val_" + metric.split("_", 1)[1]


def read_performance(run: str | Path, metric: str = METRIC) -> pd.DataFrame:
    """`lags`, `metric` and its validation twin of a results folder (or of its
    lag_performance.csv itself)."""
    path = Path(run).expanduser()
    if path.is_dir():
        path = path / PERFORMANCE
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a results folder holding {PERFORMANCE})")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as a CSV table ({exc})") from exc
    columns = ["lags", metric, validation_column(metric)]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; a run of a word-embedding task "
            "(word_embedding, whisper_embedding) has them"
        )
    return table[columns]


def harmonic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x + y != 0, 2 * x * y / (x + y), np.nan)


def multimodal_score(run_a: str | Path, run_b: str | Path, metric: str = METRIC) -> pd.DataFrame:
    """By lag: <metric>_a, <metric>_b, multimodal_score (their harmonic mean), and the same
    for the validation twin (val_multimodal_score, which chooses the lag)."""
    a, b = read_performance(run_a, metric), read_performance(run_b, metric)
    table = a.merge(b, on="lags", suffixes=("_a", "_b")).sort_values("lags", kind="stable")
    if table.empty:
        raise DataError(
            f"{run_a} and {run_b} share no lag (lags {a['lags'].tolist()} vs {b['lags'].tolist()})"
        )
    val = validation_column(metric)
    table["multimodal_score"] = harmonic(
        table[f"{metric}_a"].to_numpy(float), table[f"{metric}_b"].to_numpy(float)
    )
    table["val_multimodal_score"] = harmonic(
        table[f"{val}_a"].to_numpy(float), table[f"{val}_b"].to_numpy(float)
    )
    order = [
        "lags",
        f"{metric}_a",
        f"{metric}_b",
        "multimodal_score",
        f"{val}_a",
        f"{val}_b",
        "val_multimodal_score",
    ]
    return table[order].reset_index(drop=True)


def chosen_lag(table: pd.DataFrame) -> tuple[int, float, float]:
    """The lag with the highest validation multimodal score: (lag, its test multimodal score,
    its validation multimodal score)."""
    scores = table["val_multimodal_score"]
    i = scores.idxmax() if scores.notna().any() else table.index[0]
    return (
        int(table.loc[i, "lags"]),
        float(table.loc[i, "multimodal_score"]),
        float(table.loc[i, "val_multimodal_score"]),
    )
