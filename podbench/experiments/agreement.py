"""Do two results folders of the same run id agree? (`podbench compare A B --tolerance T`)

A run id pins the computation: the resolved config, the stores' content and the code. It does
not pin the floating-point rounding: another CPU or GPU, BLAS, thread count or XLA flag sums
in another order, and training amplifies those differences, so two labs with one run id get
numbers that agree within a tolerance, not bit for bit (run.json's `hardware` says where each
ran). This compares every metric of lag_performance.csv, every lag and fold.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.errors import ConfigError

METRIC = re.compile(r"^(train|val|test)_.+_(mean|std|fold_\d+)$")


@dataclass(frozen=True)
class Agreement:
    """The largest absolute difference of each metric between two runs of one id."""

    run_id: str
    differences: pd.Series  # metric -> max |a - b| over lags and folds (nan: both undefined)

    def exceeding(self, tolerance: float) -> pd.Series:
        return self.differences[self.differences > tolerance]


def _run(folder: Path) -> tuple[dict, pd.DataFrame]:
    folder = Path(folder)
    for name in ("run.json", "lag_performance.csv"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder}: no {name}; expected a results folder")
    return json.loads((folder / "run.json").read_text()), pd.read_csv(
        folder / "lag_performance.csv"
    )


def agreement(a: Path, b: Path) -> Agreement:
    """Per metric, the largest |a - b| over the lags and folds of two runs of the same id."""
    run_a, perf_a = _run(a)
    run_b, perf_b = _run(b)
    if run_a["keys"]["training"] != run_b["keys"]["training"]:
        raise ConfigError(
            f"{a} and {b} are runs of different ids (training keys "
            f"{run_a['keys']['training'][:12]}, {run_b['keys']['training'][:12]}): "
            "--tolerance compares two runs of one id"
        )
    perf_a, perf_b = perf_a.set_index("lags"), perf_b.set_index("lags")
    columns = [c for c in perf_a.columns if METRIC.match(c) and c in perf_b.columns]
    diffs = (perf_a[columns] - perf_b.loc[perf_a.index, columns]).abs()
    by_metric: dict[str, float] = {}
    for column in columns:
        metric = re.sub(r"_(mean|std|fold_\d+)$", "", column)
        values = diffs[column].to_numpy(float)
        worst = float(np.nanmax(values)) if np.isfinite(values).any() else float("nan")
        by_metric[metric] = np.fmax(by_metric.get(metric, float("nan")), worst)
    return Agreement(run_a["keys"]["training"][:12], pd.Series(by_metric, dtype=float))
