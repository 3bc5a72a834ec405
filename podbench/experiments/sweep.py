"""`podbench sweep`: many decoder settings over the same cached features.

A grid file maps config paths to lists of values. Points are the cartesian product (or N
random points of it). Points that differ only in per-lane values (learning rate, weight decay,
dropout rate, seed), or only in their targets at an equal target width, are packed as extra
lanes of one compiled program; points that change shapes go to separate programs. Every point gets its own results folder; the sweep writes
`results/<trial>/sweep-<id>/summary.csv` (one row per point: its settings, best lag, and the
headline metric on validation and test at that lag) and `summary.png`. The best point is
chosen on validation, never on test. Points whose results are complete are skipped, so an
interrupted sweep restarted with the same command only runs what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from podbench.config import Config
from podbench.errors import ConfigError
from podbench.features.keys import SHORT, canonical_json, stage_keys
from podbench.train.run import PointGroup, group_points
from podbench.tasks import task_for


def load_grid(path: str | Path) -> dict[str, list]:
    """Read a grid file: a mapping of dotted config paths to non-empty lists of values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {str(path)!r} does not exist")
    try:
        grid = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{path}: expected a mapping of config paths to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key} = {values!r}: expected a non-empty list of values")
    return grid


def grid_points(grid: dict[str, list], random_n: int | None = None, seed: int = 0) -> list[dict]:
    """The cartesian product of the grid, or `random_n` distinct points of it (seeded)."""
    keys = list(grid)
    product = [dict(zip(keys, combo)) for combo in itertools.product(*grid.values())]
    if random_n is None or random_n >= len(product):
        return product
    if random_n < 1:
        raise ConfigError(f"--random {random_n}: expected at least 1")
    pick = np.random.default_rng(seed).choice(len(product), size=random_n, replace=False)
    return [product[i] for i in sorted(pick)]


def sweep_id(base: Config, points: list[dict]) -> str:
    payload = canonical_json({"base": stage_keys(base)["training"], "points": points})
    return hashlib.sha256(payload.encode()).hexdigest()[:SHORT]


@dataclass
class SweepResult:
    folder: Path
    summary: pd.DataFrame
    best: int  # index of the point with the best validation score
    programs: int


def validation_twin(metric: str) -> str:
    """`test_word_avg_auc_roc` -> `val_word_avg_auc_roc`."""
    return "val_" + metric.split("_", 1)[1]


def best_of(values: pd.Series, mode: str):
    """Index of the best value: the highest, or the lowest for a headline_mode "min" metric."""
    return values.idxmin() if mode == "min" else values.idxmax()


def summarise(configs: list[Config], points: list[dict], run_dirs: list[Path]) -> pd.DataFrame:
    """One row per point: settings, run id, best lag on validation, val/test headline there."""
    task = task_for(configs[0])
    headline = task.headline
    val_key = validation_twin(headline)
    rows = []
    for i, (point, run_dir) in enumerate(zip(points, run_dirs)):
        perf = pd.read_csv(run_dir / "lag_performance.csv")
        best = best_of(perf[f"{val_key}_mean"], task.headline_mode)
        rows.append({"point": i, **point, "run_id": run_dir.name,
                     "best_lag": int(perf.loc[best, "lags"]),
                     f"{val_key}_mean": float(perf.loc[best, f"{val_key}_mean"]),
                     f"{headline}_mean": float(perf.loc[best, f"{headline}_mean"])})
    return pd.DataFrame(rows)


def plot_summary(summary: pd.DataFrame, val_col: str, test_col: str, path: Path, title: str,
                 mode: str = "max") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(summary) + 2), 3.4), dpi=120)
    x = np.arange(len(summary))
    ax.bar(x - 0.2, summary[val_col], 0.4, label="validation (selects)")
    ax.bar(x + 0.2, summary[test_col], 0.4, label="test")
    best = int(best_of(summary[val_col], mode))
    ax.annotate("best", (best - 0.2, summary[val_col][best]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [str(p) for p in summary["point"]])
    ax.set_xlabel("point")
    ax.set_ylabel("at each point's best validation lag")
    ax.set_ylim(min(0.45, float(summary[[val_col, test_col]].min().min()) - 0.02), None)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sweep(cfg: Config, grid_path: str | Path, random_n: int | None = None,
          run_program: Callable | None = None, log: Callable[[str], None] = print,
          run_programs: Callable[[list[PointGroup]], object] | None = None) -> SweepResult:
    """Run every point of the grid; `run_program(configs)` trains one program's points
    (default: in this process), or `run_programs(programs)` runs them all at once (the Ray
    engine of `podbench.experiments.cluster`)."""
    from podbench.train.run import run_dir_of, train_points

    if cfg.several_tasks:
        raise ConfigError(f"task = {cfg.task!r}: a sweep runs one task; sweep each task's config")
    grid = load_grid(grid_path)
    points = grid_points(grid, random_n, seed=cfg.training.seed)
    configs = []
    for i, point in enumerate(points):
        try:
            configs.append(cfg.replace(point))
        except ConfigError as exc:
            raise ConfigError(f"{grid_path}: point {i} {point}: {exc}") from None
    programs = group_points(configs)
    folder = Path(cfg.output.results).expanduser() / cfg.trial_name / f"sweep-{sweep_id(cfg, points)}"
    log(f"sweep {folder.name}: {len(points)} point(s) in {len(programs)} program(s)")
    if run_programs is not None:
        run_programs(programs)
    else:
        runner = run_program or (lambda cfgs: train_points(cfgs, log=log))
        for program in programs:
            runner(program.configs)
    run_dirs = [run_dir_of(c, stage_keys(c)["training"]) for c in configs]
    summary = summarise(configs, points, run_dirs)
    task = task_for(cfg)
    val_col, test_col = f"{validation_twin(task.headline)}_mean", f"{task.headline}_mean"
    best = int(best_of(summary[val_col], task.headline_mode))
    summary["best"] = summary.index == best
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / "summary.csv", index=False)
    (folder / "grid.yml").write_text(yaml.safe_dump({"grid": grid, "random": random_n}))
    plot_summary(summary, val_col, test_col, folder / "summary.png", f"{cfg.trial_name} {folder.name}",
                 task.headline_mode)
    log(summary.to_string(index=False))
    log(f"best point (validation): {best} -> {run_dirs[best]}")
    return SweepResult(folder, summary, best, len(programs))
