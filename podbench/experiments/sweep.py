"""`podbench sweep`: many decoder settings over the same cached features.

A grid file maps config paths to lists of values. Points are the cartesian product (or N
random points of it). Points that differ only in per-lane values (learning rate, weight decay,
dropout rate, seed), or only in their targets at an equal target width, are packed as extra
lanes of one compiled program; points that change shapes go to separate programs. Every point
gets its own results folder, `results/<trial>/sweep-<id>/points/<run-id>/`; the sweep writes
`results/<trial>/sweep-<id>/summary.csv` (one row per point: its settings, the lag chosen on
validation, and the headline metric on validation and test at that lag, mean and std over
folds) and `summary.png`. Lags and the best point are chosen on the headline's validation
twin, never on test. Points whose results are complete are skipped, so an
interrupted sweep restarted with the same command only runs what is missing.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from podbench.config import Config, read_yaml
from podbench.errors import ConfigError
from podbench.experiments.engines import Engine, LocalEngine
from podbench.features.keys import SHORT, canonical_json, run_dir_of, stage_keys
from podbench.features.preflight import preflight
from podbench.publish import publish_bytes, publish_file, publish_text
from podbench.tasks import task_for
from podbench.tasks.base import best_index
from podbench.train.run import programs_of


def load_grid(path: str | Path) -> dict[str, list]:
    """Read a grid file: a mapping of dotted config paths to non-empty lists of values."""
    path = Path(path)
    grid = read_yaml(path, "grid file")
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


def summarise(configs: list[Config], points: list[dict], run_dirs: list[Path]) -> pd.DataFrame:
    """One row per point: settings, run id, the lag chosen on validation, and the headline's
    validation and test values there (mean and std over folds); `best` marks the point with
    the best validation value. Test values never choose anything."""
    task = task_for(configs[0])
    val_key, test_key = task.selection_metric, task.headline
    rows = []
    for i, (point, run_dir) in enumerate(zip(points, run_dirs)):
        perf = pd.read_csv(run_dir / "lag_performance.csv")
        chosen = task.select_lag(perf)
        rows.append(
            {
                "point": i,
                **point,
                "run_id": run_dir.name,
                "best_lag": int(perf.loc[chosen, "lags"]),
                **{
                    f"{key}_{stat}": float(perf.loc[chosen, f"{key}_{stat}"])
                    for key in (val_key, test_key)
                    for stat in ("mean", "std")
                },
            }
        )
    summary = pd.DataFrame(rows)
    summary["best"] = summary.index == best_index(summary[f"{val_key}_mean"], task.headline_mode)
    return summary


def plot_summary(
    summary: pd.DataFrame, points: list[dict], task, title: str
) -> tuple[bytes, bytes]:
    """summary.png and .svg: validation and test headline of each point at its chosen lag
    (fold std as error bars), one row per point labelled with its settings, so any number of
    points stays readable; the best point (on validation) is marked."""
    from podbench import plotting
    from podbench.tasks.metrics import metric_label

    val_key, test_key = task.selection_metric, task.headline
    labels = [
        f"{i}: " + ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in p.items())
        for i, p in enumerate(points)
    ]
    y = np.arange(len(summary))[::-1]
    with plotting.figure(height=2.4 + 0.28 * len(summary)) as (fig, ax):
        for key, shift, marker in ((val_key, 0.12, "o"), (test_key, -0.12, "s")):
            label = metric_label(key) + (
                ": chooses the lag and the point" if key == val_key else ""
            )
            ax.errorbar(
                summary[f"{key}_mean"],
                y + shift,
                xerr=summary[f"{key}_std"],
                ls="none",
                marker=marker,
                capsize=2,
                label=label,
            )
        best = int(np.flatnonzero(summary["best"])[0])
        ax.axhspan(
            y[best] - 0.4,
            y[best] + 0.4,
            color="gold",
            alpha=0.25,
            lw=0,
            label="best point (validation)",
        )
        if task.chance is not None:
            ax.axvline(task.chance, color="k", lw=0.8, ls="--", label="chance")
        ax.set_yticks(y, labels)
        ax.set_xlabel(
            f"{metric_label(test_key).rsplit(' (', 1)[0]} at the point's lag chosen on validation"
        )
        ax.set_title(title, fontsize=8, loc="left")
        fig.legend(loc="outside lower center", ncols=2)
        return plotting.encoded(fig)


def sweep(
    cfg: Config,
    grid_path: str | Path,
    random_n: int | None = None,
    log: Callable[[str], None] = print,
    engine: Engine | None = None,
) -> SweepResult:
    """Train every point of a grid and summarise them: what ``podbench sweep`` does.

    Parameters
    ----------
    cfg : podbench.config.Config
        The base config (one task).
    grid_path : str or pathlib.Path
        The grid file: dotted config paths and their values.
    random_n : int, optional
        Train this many points drawn at random from the grid (seed ``training.seed``)
        rather than all of them.
    log : callable, default print
        Called with each progress and report line.
    engine : podbench.experiments.engines.Engine, optional
        Where the programs run (default: in this process; the Ray engine of
        :mod:`podbench.experiments.cluster` runs them as Ray tasks).

    Returns
    -------
    SweepResult
        The sweep's folder, its summary table (one row per point), the index of the point
        best on validation and the number of programs.
    """
    if cfg.several_tasks:
        raise ConfigError(f"task = {cfg.task!r}: a sweep runs one task; sweep each task's config")
    grid = load_grid(grid_path)
    points = grid_points(grid, random_n, seed=cfg.training.seed)
    folder = (
        Path(cfg.output.results).expanduser() / cfg.trial_name / f"sweep-{sweep_id(cfg, points)}"
    )
    configs = []
    for i, point in enumerate(points):
        try:  # a point's results go to <folder>/points/<run-id>
            configs.append(
                cfg.replace({**point, "output.results": str(folder), "trial_name": "points"})
            )
        except ConfigError as exc:
            raise ConfigError(f"{grid_path}: point {i} {point}: {exc}") from None
    preflight(configs, results=True)
    programs = programs_of(configs)
    log(f"sweep {folder.name}: {len(points)} point(s) in {len(programs)} program(s)")
    with engine or LocalEngine(log) as chosen:
        chosen.run_programs(programs)
    run_dirs = [run_dir_of(c, stage_keys(c)["training"]) for c in configs]
    summary = summarise(configs, points, run_dirs)
    best = int(np.flatnonzero(summary["best"])[0])
    task = task_for(cfg)
    grid_text = yaml.safe_dump({"grid": grid, "random": random_n})
    publish_text(folder / "grid.yml", grid_text, "writing the sweep")
    figures = plot_summary(
        summary,
        points,
        task,
        f"{cfg.trial_name} {folder.name}: task {cfg.task} "
        f"({task.describe(cfg)}), {cfg.model.name}, {cfg.training.n_folds} folds",
    )
    for suffix, data in zip((".png", ".svg"), figures):
        publish_bytes(folder / f"summary{suffix}", data, "writing the sweep")
    publish_file(
        folder / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False), "writing the sweep"
    )
    log(
        f"task {cfg.task}: lags and the best point chosen on {task.selection_metric} "
        f"({task.headline_mode}); {task.headline} reported"
    )
    log(summary.to_string(index=False))
    log(f"best point (validation): {best} -> {run_dirs[best]}")
    log(f"summary: {folder / 'summary.csv'}")
    log(f"plot: {folder / 'summary.png'}")
    return SweepResult(folder, summary, best, len(programs))
