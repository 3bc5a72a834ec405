"""The reference's published baseline numbers, to show beside podbench's cells.

`published.csv` (package data) holds, per lag, the headline metric (mean and population std
over folds) of the runs the reference committed as its baselines: hassonlab/podcast-benchmark
at commit REFERENCE_COMMIT, `baseline-results/<run>/lag_performance.csv`, summarised in its
docs/baseline-results.md. They were measured on the real dataset (ds005574, 183 significant
electrodes); on a stand-in they are context, not a target. The reference reports each run's
best lag chosen on the test split; podbench shows that value as published and never uses it
to choose anything.

Each run's `match` says which cells it belongs to: `;`-separated `path=value` pairs over the
cell's resolved config (`task`, `targets.kind`, `model.name`, `model.params.prefix`, ...). A
cell trained on shuffled targets (a control) matches none. The reference's "gpt2" baseline
is absent on purpose: its config decodes GloVe without PCA (no GPT-2 baseline was committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

REFERENCE_REPO = "hassonlab/podcast-benchmark"
REFERENCE_COMMIT = "e74004466ce5b4cb70575e186065f4662560b305"
TABLE = Path(__file__).with_name("published.csv")


@dataclass(frozen=True)
class Published:
    """One reference run's lag curve of its headline metric (real data)."""

    run: str  # baseline-results/<run>/lag_performance.csv at REFERENCE_COMMIT
    metric: str  # the reference's column, e.g. test_word_avg_auc_roc
    lags: tuple[int, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    lower_is_better: bool

    @property
    def best(self) -> tuple[int, float]:
        """(lag, value) as the reference published it: its best lag on the test split."""
        pick = min if self.lower_is_better else max
        i = pick(range(len(self.means)), key=self.means.__getitem__)
        return self.lags[i], self.means[i]

    @property
    def source(self) -> str:
        return f"{REFERENCE_REPO}@{REFERENCE_COMMIT[:7]}:baseline-results/{self.run}"

    def at(self, lag: int) -> float | None:
        return self.means[self.lags.index(lag)] if lag in self.lags else None

    def as_dict(self) -> dict:
        lag, value = self.best
        return {
            "run": self.run,
            "source": self.source,
            "metric": self.metric,
            "lag": lag,
            "value": value,
            "data": "real (ds005574)",
            "per_lag": {str(k): v for k, v in zip(self.lags, self.means)},
        }


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    return pd.read_csv(TABLE)


def _value(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def matches(config: dict, match: str) -> bool:
    """Whether a resolved config (as config.yml holds it) meets every `path=value` of `match`."""
    if _value(config, "training.shuffle_targets"):
        return False
    pairs = (term.split("=", 1) for term in match.split(";"))
    return all(str(_value(config, path)) == value for path, value in pairs)


def published_for(config: dict, lower_is_better: bool = False) -> Published | None:
    """The reference run a cell's resolved config corresponds to, if it published one."""
    table = _table()
    for (run, match), rows in table.groupby(["run", "match"], sort=False):
        if matches(config, match):
            rows = rows.sort_values("lag_ms")
            return Published(
                run,
                rows["metric"].iloc[0],
                tuple(int(v) for v in rows["lag_ms"]),
                tuple(float(v) for v in rows["mean"]),
                tuple(float(v) for v in rows["std"]),
                lower_is_better,
            )
    return None
