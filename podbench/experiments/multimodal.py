"""The multimodal summary of two runs (the reference's scripts/multimodal_score.py).

Per lag, the harmonic mean 2ab / (a + b) of run A's and run B's `test_pairwise_accuracy_mean`
(typically a word-embedding run and a Whisper run), the two lag_performance tables joined on
`lags` (lags present in both). `podbench multimodal RUN_DIR_A RUN_DIR_B [--out CSV]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podbench.errors import DataError

METRIC = "test_pairwise_accuracy_mean"
PERFORMANCE = "lag_performance.csv"


def read_performance(run: str | Path, metric: str = METRIC) -> pd.DataFrame:
    """`lags` and `metric` of a results folder (or of its lag_performance.csv itself)."""
    path = Path(run).expanduser()
    if path.is_dir():
        path = path / PERFORMANCE
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a results folder holding {PERFORMANCE})")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as a CSV table ({exc})") from exc
    missing = [c for c in ("lags", metric) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a run of a word-embedding task "
                        "(word_embedding, whisper_embedding) has them")
    return table[["lags", metric]]


def multimodal_score(run_a: str | Path, run_b: str | Path, metric: str = METRIC) -> pd.DataFrame:
    """Columns lags, <metric>_a, <metric>_b, multimodal_score (harmonic mean), by lag."""
    a, b = read_performance(run_a, metric), read_performance(run_b, metric)
    table = a.merge(b, on="lags", suffixes=("_a", "_b")).sort_values("lags", kind="stable")
    if table.empty:
        raise DataError(f"{run_a} and {run_b} share no lag (lags {a['lags'].tolist()} vs "
                        f"{b['lags'].tolist()})")
    x, y = table[f"{metric}_a"].to_numpy(float), table[f"{metric}_b"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["multimodal_score"] = np.where(x + y != 0, 2 * x * y / (x + y), np.nan)
    return table.reset_index(drop=True)


def best_lag(table: pd.DataFrame) -> tuple[int, float]:
    """The lag with the highest multimodal score, and that score."""
    i = table["multimodal_score"].idxmax()
    return int(table.loc[i, "lags"]), float(table.loc[i, "multimodal_score"])
