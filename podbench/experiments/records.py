"""Cell records: the schema'd `cell.json` of a results folder (its lag curve, the lag chosen
on validation, significance, the reference's published value) and the tables made of many
records: the leaderboard and the paired comparisons of two cells. Read by
`podbench benchmark` (podbench.experiments.benchmark), the report and `podbench compare`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config, from_dict, read_yaml
from podbench.errors import ConfigError, DataError
from podbench.experiments.published import published_for
from podbench.experiments.significance import (
    Significance,
    bh_qvalues,
    null_label,
    paired_by_lag,
    paired_comparison,
    permutation_pvalues,
    score_null,
)
from podbench.tasks import task_for

SCHEMA_VERSION = 2  # 2: score-level nulls (significance.null, refit, block; p_score, p_refit)
SCHEMA_PATH = Path(__file__).parent / "schema" / "cell.schema.json"


def _floats(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, float)]


def cell_record(
    run_dir: Path,
    cell_id: str,
    *,
    suite: dict | None = None,
    subjects_label: str = "all",
    significance: Significance | None = None,
    null_dirs: Sequence[Path] = (),
) -> dict:
    """The cell.json content of a results folder (and of its null points' folders)."""
    resolved = read_yaml(run_dir / "config.yml", "results config")
    cfg = from_dict(resolved, str(run_dir / "config.yml"))
    run = json.loads((run_dir / "run.json").read_text())
    perf = pd.read_csv(run_dir / "lag_performance.csv")
    task = task_for(cfg)
    headline, val_key = task.headline, task.selection_metric
    folds = sorted(
        int(c.rsplit("_", 1)[1]) for c in perf.columns if c.startswith(f"{headline}_fold_")
    )
    lags = [int(v) for v in perf["lags"]]
    test = perf[[f"{headline}_fold_{k}" for k in folds]].to_numpy(float)
    val = perf[[f"{val_key}_fold_{k}" for k in folds]].to_numpy(float)
    observed = perf[f"{headline}_mean"].to_numpy(float)
    per_lag = [
        {
            "lag": lag,
            "val": _floats(val[i]),
            "test": _floats(test[i]),
            "val_mean": _floats([perf[f"{val_key}_mean"][i]])[0],
            "test_mean": _floats([observed[i]])[0],
            "test_std": _floats([perf[f"{headline}_std"][i]])[0],
        }
        for i, lag in enumerate(lags)
    ]
    sig_block = None
    if significance is not None and significance.enabled:
        sig_block = significance_block(
            run_dir, cfg, task, significance, lags, observed, per_lag, null_dirs
        )
    chosen = int(task.select_lag(perf))  # on validation, in the headline's direction
    reference = published_for(resolved, lower_is_better=task.headline_mode == "min")
    return {
        "schema": "podbench.cell",
        "schema_version": SCHEMA_VERSION,
        "suite": suite,
        "cell": cell_id,
        "run_id": run_dir.name,
        "task": cfg.task,
        "task_description": task.describe(cfg),
        "decoder": {
            "model": cfg.model.name,
            "params": cfg.model.params,
            "members": cfg.model.members,
            "ensemble": cfg.model.ensemble,
        },
        "subjects": {"set": subjects_label, "selection": cfg.data.subjects},
        "training_key": run["keys"]["training"],
        "keys": run["keys"],
        "headline": headline,
        "headline_mode": task.headline_mode,
        "selection_metric": val_key,
        "chance": task.chance,
        "lags": lags,
        "folds": folds,
        "per_lag": per_lag,
        "selected": {
            "by": val_key,
            "lag": lags[chosen],
            "val_mean": per_lag[chosen]["val_mean"],
            "test_mean": per_lag[chosen]["test_mean"],
            "test_std": per_lag[chosen]["test_std"],
        },
        "significance": sig_block,
        "reference": reference.as_dict() if reference else None,
        "timings_s": run.get("timings_s", {}),
        "environment": {
            "versions": run.get("versions", {}),
            "device": run.get("device"),
            "platform": run.get("platform"),
            "hardware": run.get("hardware"),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_record(path: Path) -> dict:
    """A cell.json file's record; a damaged one (truncated, not a record) is one DataError
    line naming it."""
    try:
        record = json.loads(Path(path).read_bytes())
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: damaged cell record ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); delete it and run `podbench benchmark` again"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as a cell record ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != "podbench.cell":
        raise DataError(f"{path}: not a podbench cell record (expected schema podbench.cell)")
    return record


def significance_block(
    run_dir: Path,
    cfg: Config,
    task,
    sig: Significance,
    lags: list[int],
    observed: np.ndarray,
    per_lag: list[dict],
    null_dirs: Sequence[Path],
) -> dict:
    """Per-lag p, q and null summaries (added to `per_lag`) and the cell's significance block:
    p from the retrained nulls when `refit` is set, else from the score-level null; each
    null's own p beside it (`p_score`, `p_refit`)."""
    sign = 1.0 if task.headline_mode == "max" else -1.0  # the test asks "better than null"
    nulls = {}
    if sig.permutations:
        nulls["score"] = score_null(run_dir, cfg, sig)
    if sig.refit:
        nulls["refit"] = np.stack(
            [
                pd.read_csv(d / "lag_performance.csv")
                .set_index("lags")
                .loc[lags, f"{task.headline}_mean"]
                .to_numpy(float)
                for d in null_dirs
            ]
        )
    scored = np.nan_to_num(sign * observed, nan=-np.inf)
    pvalues = {
        kind: permutation_pvalues(scored, sign * null, pooled=sig.pool_lags)
        for kind, null in nulls.items()
    }
    p, null = pvalues[sig.null], nulls[sig.null]
    q = bh_qvalues(p)
    for i, row in enumerate(per_lag):
        row.update(
            {
                "p": float(p[i]),
                "q": float(q[i]),
                "significant": bool(q[i] < sig.alpha),
                "null_mean": _floats([np.nanmean(null[:, i])])[0],
                "null_q95": _floats([np.nanquantile(null[:, i], 0.95 if sign > 0 else 0.05)])[0],
                **{f"p_{kind}": float(v[i]) for kind, v in pvalues.items()},
            }
        )
    return {
        **sig.as_dict(),
        "null": sig.null,
        "test": f"permutation, one-sided ({'greater' if sign > 0 else 'less'})",
        "correction": "benjamini-hochberg across lags",
        "n_significant": int((q < sig.alpha).sum()),
        "null_runs": [d.name for d in null_dirs],
    }


def load_record(path: Path) -> dict:
    """A cell record from a cell.json file or a results folder (with or without cell.json)."""
    path = Path(path)
    if path.is_file() and path.name.endswith(".json"):
        return read_record(path)
    if (path / "cell.json").is_file():
        return read_record(path / "cell.json")
    if (path / "run.json").is_file():
        return cell_record(path, path.name)
    raise ConfigError(f"{path}: expected a cell.json or a results folder (with run.json)")


def leaderboard(records: list[dict]) -> pd.DataFrame:
    """The leaderboard: one row per cell, grouped by task.

    Parameters
    ----------
    records : list of dict
        The cells' records (cell.json contents).

    Returns
    -------
    pandas.DataFrame
        The test headline (mean, fold std) at the validation-chosen lag; ``best_in_task``
        marks each task's cell with the best validation value at its chosen lag (never
        chosen on test); ``reference`` and ``reference_lag_ms`` give the reference's
        published value for the cell (real data), where it published one.
    """
    rows = []
    for r in records:
        sig, ref = r.get("significance"), r.get("reference")
        rows.append(
            {
                "cell": r["cell"],
                "task": r["task"],
                "decoder": r["decoder"]["model"],
                "subjects": r["subjects"]["set"],
                "metric": r["headline"],
                "lag_ms": r["selected"]["lag"],
                "test_mean": r["selected"]["test_mean"],
                "test_std": r["selected"]["test_std"],
                "val_mean": r["selected"]["val_mean"],
                "n_significant": sig["n_significant"] if sig else None,
                "n_lags": len(r["lags"]),
                "null": null_label(sig) if sig else "",
                "reference": ref["value"] if ref else None,
                "reference_lag_ms": ref["lag"] if ref else None,
                "run_id": r["run_id"],
                "_mode": r.get("headline_mode", "max"),
            }
        )
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    tasks = list(dict.fromkeys(board["task"]))
    board = board.sort_values("task", key=lambda t: t.map(tasks.index), kind="stable")
    sign = np.where(board["_mode"] == "min", -1.0, 1.0)
    score = pd.Series(sign * board["val_mean"].astype(float), index=board.index)
    best = score.fillna(-np.inf).groupby([board["task"], board["subjects"]]).transform("max")
    board["best_in_task"] = score.eq(best) & score.notna()
    return board.drop(columns="_mode").reset_index(drop=True)


COMPARISON_COLUMNS = [
    "task",
    "cell_a",
    "cell_b",
    "metric",
    "lag_ms",
    "n_folds",
    "a_mean",
    "b_mean",
    "difference",
    "ci_low",
    "ci_high",
    "a_better",
    "statistic",
    "p_value",
]


def _pairs(records: list[dict]):
    """Every two cells of one task on the same headline and folds, sharing a lag."""
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            if (
                a["task"] == b["task"]
                and a["headline"] == b["headline"]
                and a["folds"] == b["folds"]
                and set(a["lags"]) & set(b["lags"])
            ):
                yield a, b


def comparisons(records: list[dict]) -> pd.DataFrame:
    """Cell A against cell B for each two cells of a task, at their shared chosen lag.

    Parameters
    ----------
    records : list of dict
        The cells' records (cell.json contents).

    Returns
    -------
    pandas.DataFrame
        One row per pair: the lag chosen on validation, the mean fold difference of the test
        headline, its bootstrap interval and the paired t-test over folds
        (:func:`podbench.experiments.significance.paired_comparison`).
    """
    rows = []
    for a, b in _pairs(records):
        result = paired_comparison(a, b).as_dict()
        result["lag_ms"] = result.pop("lag")
        rows.append(
            {
                "task": a["task"],
                "cell_a": a["cell"],
                "cell_b": b["cell"],
                "metric": a["headline"],
                **result,
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def comparisons_by_lag(records: list[dict]) -> pd.DataFrame:
    """The same pairs at every shared lag, with Benjamini-Hochberg q across each pair's lags."""
    rows = [
        {
            "task": a["task"],
            "cell_a": a["cell"],
            "cell_b": b["cell"],
            "metric": a["headline"],
            **{("lag_ms" if k == "lag" else k): v for k, v in row.items()},
        }
        for a, b in _pairs(records)
        for row in paired_by_lag(a, b)
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "task",
            "cell_a",
            "cell_b",
            "metric",
            "lag_ms",
            "difference",
            "statistic",
            "p_value",
            "q_value",
        ],
    )
