"""Scoring trained lanes and writing a run's results folder.

results/<trial>/<run-id>/ (run-id = the training key's first 12 hex digits):
  config.yml           the resolved config (yaml.safe_load-able)
  lag_performance.csv  one row per lag: `lags`, then <key>_mean, <key>_std (ddof 0) and
                       <key>_fold_<k>, named as the reference's so its scripts read it
  metrics.csv          long table: lag, fold, member (or "ensemble"), metric, value
  lag_curve.png, .svg  the headline metric by lag, fold spread, chance line
  run.json             store keys, versions, device and hardware, timings, the program's
                       memory (RSS at its start and peak), lanes and epochs per lane
  test_predictions.npz every event's held-out prediction by lag (members and the scored
                       ensemble) with its target, label and folds (`test_predictions`; unless
                       training.predictions is false): score-level permutation nulls and
                       `api` read it
  checkpoints/         orbax checkpoint of every lane's best parameters (unless
                       training.checkpoints is false); `api.load_run` predicts from it
  <task extras>.csv    tables a task adds (Task.extra_results), e.g. confusion_matrix.csv
The folder is published by `podbench.publish` (temporary sibling, run.json written last,
then swapped in), so a kill at any moment leaves the old complete folder or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from podbench import __version__
from podbench.config import Config
from podbench.errors import ConfigError
from podbench.tasks import Task
from podbench.tasks.folds import Fold

RUN_MARKER = "run.json"
PREDICTIONS = "test_predictions.npz"


@dataclass
class LaneOutputs:
    """One (lag, fold) of a point: the members' predictions of every row of the run, the
    prediction the metrics score (`ensemble`) and the fold's targets."""

    lag: int
    fold: Fold
    lanes: np.ndarray  # the lane rows of the result table
    members: np.ndarray  # [M, N, out]
    ensemble: np.ndarray  # [N, out]
    y: np.ndarray  # [N, D]


def lane_outputs(cfg: Config, task: Task, inputs, res, point: int = 0) -> Iterator[LaneOutputs]:
    """The (lag, fold) outputs of one point of a trained program, in lag then fold order."""
    table = res.table
    in_point = table.point == point
    merged = res.inputs  # the program's inputs (ProgramInputs)
    mine = merged.rows[merged.entry(point)]  # this point's words among the program's rows
    for lag in inputs.lags:
        for fold in inputs.folds:
            sel = np.flatnonzero(in_point & (table.lag_ms == lag) & (table.fold == fold.number))
            if len(sel) == 0:
                continue
            members = res.preds[sel][:, :, mine].reshape(-1, len(mine), res.preds.shape[-1])
            y = inputs.y[fold.number - 1 if inputs.y.shape[0] > 1 else 0]
            ensemble = (
                task.ensemble(members) if res.group == 1 else task.joint_ensemble(members, cfg)
            )
            yield LaneOutputs(lag, fold, sel, members, ensemble, y)


def score_lanes(cfg: Config, task: Task, inputs, res, point: int = 0) -> pd.DataFrame:
    """Long metrics table of one point: ensemble rows per (lag, fold), member rows per lane."""
    rows, test_preds = [], []
    table = res.table
    mine = res.inputs.rows[res.inputs.entry(point)]
    for out in lane_outputs(cfg, task, inputs, res, point):
        lag, number, fold, y, ensemble = out.lag, out.fold.number, out.fold, out.y, out.ensemble
        test_preds.append((lag, number, ensemble[fold.test], y[fold.test]))
        split_rows = {"train": fold.train, "val": fold.val, "test": fold.test}
        values = {}
        for split, idx in split_rows.items():
            for name, v in task.split_metrics(ensemble[idx], y[idx]).items():
                values[f"{split}_{name}"] = v
        values["num_epochs"] = float(np.mean(res.best_epoch[out.lanes] + 1))
        for split in ("test", "val"):
            idx = split_rows[split]
            values.update(
                task.fold_metrics(
                    out.members[:, idx],
                    y[idx],
                    inputs.labels[idx],
                    inputs.labels[fold.train],
                    cfg,
                    split,
                )
            )
        rows += [(lag, number, "ensemble", k, v) for k, v in values.items()]
        if res.group == 1 and len(out.lanes) > 1:
            for lane_i in out.lanes:
                member = int(table.member[lane_i])
                for split in ("val", "test"):
                    idx = split_rows[split]
                    pred = res.preds[lane_i, 0, mine[idx]]
                    for name, v in task.split_metrics(pred, y[idx]).items():
                        rows.append((lag, number, str(member), f"{split}_{name}", v))
                rows.append(
                    (lag, number, str(member), "num_epochs", float(res.best_epoch[lane_i] + 1))
                )
    long = pd.DataFrame(rows, columns=["lag", "fold", "member", "metric", "value"])
    extras = task.extra_results(cfg, test_preds)
    if extras:
        long.attrs["extra_results"] = extras  # tables for write_run to add to the folder
    return long


SPLIT_CODES = {"train": 0, "val": 1, "test": 2}  # the `split` array of test_predictions.npz


def test_predictions(cfg: Config, task: Task, inputs, res, point: int = 0) -> dict[str, np.ndarray]:
    """The arrays of test_predictions.npz: every event's held-out prediction at every lag (from
    the lanes of the fold that tests it), with what scoring it needs. Events (axis `event`, in
    time order) are the run's rows:
      lag [L], fold [F] (numbers), event [N] (word_idx), label [N] (normalised word),
      split [F, N] (0 train, 1 val, 2 test, -1 unused per fold), test_fold [N] (0: none),
      target [N, D] (the targets of the event's test fold), ensemble [L, N, out] (the scored
      prediction), members [L, M, N, out] (each member's); nan where an event is not tested."""
    n = len(inputs.words)
    lags = list(inputs.lags)
    split = np.full((len(inputs.folds), n), -1, np.int8)
    test_fold = np.zeros(n, np.int64)
    target = np.full((n, inputs.y.shape[-1]), np.nan, np.float32)
    ensemble: np.ndarray | None = None
    members: np.ndarray | None = None
    for out in lane_outputs(cfg, task, inputs, res, point):
        f = [g.number for g in inputs.folds].index(out.fold.number)
        for name, code in SPLIT_CODES.items():
            split[f, getattr(out.fold, name)] = code
        test = out.fold.test
        test_fold[test] = out.fold.number
        target[test] = out.y[test]
        if ensemble is None or members is None:  # (both are made here, together)
            ensemble = np.full((len(lags), n, out.ensemble.shape[-1]), np.nan, np.float32)
            members = np.full(
                (len(lags), len(out.members), n, out.members.shape[-1]), np.nan, np.float32
            )
        ensemble[lags.index(out.lag), test] = out.ensemble[test]
        members[lags.index(out.lag), :, test] = np.moveaxis(out.members[:, test], 0, 1)
    assert ensemble is not None and members is not None, "a run has lanes"
    return {
        "lag": np.asarray(lags, np.int64),
        "fold": np.asarray([f.number for f in inputs.folds], np.int64),
        "event": np.asarray(inputs.words, np.int64),
        "label": np.asarray(inputs.labels, dtype=str),
        "split": split,
        "test_fold": test_fold,
        "target": target,
        "ensemble": ensemble,
        "members": members,
    }


def read_test_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    """test_predictions.npz of a results folder (see `test_predictions`)."""
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: no {PREDICTIONS} (results written before podbench kept "
            "held-out predictions, or with training.predictions: false); train "
            "it again with --force"
        )
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def lag_performance(long: pd.DataFrame, folds: list[int]) -> pd.DataFrame:
    """The reference's wide table: one row per lag; <key>_mean, _std, _fold_<k>."""
    ens = long[long["member"] == "ensemble"]
    keys = list(dict.fromkeys(ens["metric"]))
    out = []
    for lag, group in ens.groupby("lag", sort=True):
        row = {"lags": lag}
        wide = group.pivot(index="fold", columns="metric", values="value")
        for key in keys:
            vals = wide[key].reindex(folds).to_numpy(dtype=float)
            row[f"{key}_mean"] = float(np.nanmean(vals))
            row[f"{key}_std"] = float(np.nanstd(vals))
            for k, v in zip(folds, vals):
                row[f"{key}_fold_{k}"] = float(v)
        out.append(row)
    return pd.DataFrame(out)


def plot_lag_curve(
    perf: pd.DataFrame, task: Task, folds: list[int], path: Path, title: str
) -> None:
    """lag_curve.png and .svg: the headline by lag (mean and fold range), the chance line and
    the lag chosen on validation (podbench.plotting's style)."""
    from podbench import plotting
    from podbench.tasks.metrics import metric_label

    metric = task.headline
    lags = perf["lags"].to_numpy()
    per_fold = perf[[f"{metric}_fold_{k}" for k in folds]].to_numpy()
    chosen = int(perf.loc[task.select_lag(perf), "lags"])
    with plotting.figure(height=3.6) as (fig, ax):
        plotting.lag_curve(
            ax,
            lags,
            perf[f"{metric}_mean"],
            low=np.nanmin(per_fold, 1),
            high=np.nanmax(per_fold, 1),
            chosen=chosen,
            label=f"mean (band: range over {len(folds)} folds)",
        )
        plotting.lag_axes(ax, lags, metric_label(metric), task.chance)
        ax.plot(
            [],
            [],
            color="C0",
            ls="--",
            lw=0.8,
            label=f"lag chosen on {metric_label(task.selection_metric)}: {chosen} ms",
        )
        ax.set_title(title, fontsize=7, loc="left")
        ax.legend()
        plotting.save(fig, path)


def plot_title(cfg: Config, task: Task, sizes: dict) -> str:
    """Task, decoder, the run's settings and its size, for the lag curve."""
    params = ", ".join(f"{k}={v}" for k, v in cfg.model.params.items())
    t = cfg.training
    return (
        f"{cfg.trial_name}: task {cfg.task} ({task.describe(cfg)}); {sizes['words']} events, "
        f"{sizes['electrodes']} electrodes, {sizes['folds']} folds\n"
        f"{cfg.model.name} x{cfg.model.members} ({params})\n"
        f"lr={t.lr:g}, weight_decay={t.weight_decay:g}, seed={t.seed}, "
        f"preprocess={cfg.preprocess.name}"
    )


OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")  # how tensorstore names a failed write


class _DropClosedLoopCallbacks:
    """sys.unraisablehook that drops one kind of noise: after a failed checkpoint write,
    tensorstore's threads still complete the writes in flight and post each to orbax's event
    loop, which the failure has closed; every post prints a bare "RuntimeError: Event loop is
    closed" traceback. Anything else goes to the hook it replaced."""

    def __init__(self, previous) -> None:
        self.previous = previous

    def __call__(self, unraisable) -> None:
        frame = unraisable.exc_traceback.tb_frame if unraisable.exc_traceback else None
        if (
            isinstance(unraisable.exc_value, RuntimeError)
            and str(unraisable.exc_value) == "Event loop is closed"
            and unraisable.object is None
            and frame is not None
            and frame.f_code.co_name == "call_soon_threadsafe"
        ):
            return
        self.previous(unraisable)


def save_checkpoint(path: Path, state: dict, lanes: list[dict]) -> None:
    """Every lane's best parameters as one orbax checkpoint (leading axis: lane). A failed
    write (a full disk) is raised as the OSError it wraps, not logged from orbax's threads
    (their stragglers included, which may arrive after this returns)."""
    import orbax.checkpoint as ocp

    if not isinstance(sys.unraisablehook, _DropClosedLoopCallbacks):
        sys.unraisablehook = _DropClosedLoopCallbacks(sys.unraisablehook)
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)
    try:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(path.resolve() / "state", state)
        checkpointer.wait_until_finished()
    except Exception as exc:  # noqa: BLE001 - orbax raises ValueError, RuntimeError, ...
        code = OS_ERROR_CODE.search(str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from exc
    finally:
        absl.setLevel(level)
    (path / "lanes.json").write_text(json.dumps(lanes))


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hardware() -> dict:
    """What a run's numbers depend on beyond its id: floating point is not associative, so
    another CPU or GPU, BLAS, thread count or XLA flag gives results that agree only within a
    tolerance (`podbench compare --tolerance`)."""
    import jax
    import numpy as np

    devices = jax.devices()
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "devices": sorted({d.device_kind for d in devices}),
        "device_count": len(devices),
        "numpy_blas": str(blas.get("name", "unknown")),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def environment() -> dict:
    import jax

    versions = {"podbench": __version__, "python": platform.python_version()}
    for mod in (
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "orbax.checkpoint",
        "numpy",
        "xarray",
        "zarr",
        "mne",
    ):
        try:
            versions[mod] = __import__(mod, fromlist=["__version__"]).__version__
        except (ImportError, AttributeError):
            continue
    devices = jax.devices()
    return {
        "versions": versions,
        "platform": platform.platform(),
        "hardware": hardware(),
        "device": f"{len(devices)} x {devices[0].device_kind} ({devices[0].platform})",
    }


def write_run(
    run_dir: Path,
    cfg: Config,
    keys: dict,
    long: pd.DataFrame,
    perf: pd.DataFrame,
    task: Task,
    inputs,
    res,
    point: int,
    timings: dict,
    folds: list[int],
    sizes: dict,
    memory: dict,
) -> Path:
    """Write the results folder atomically (`podbench.publish`; run.json is its marker).
    `sizes`: the run's events (key `words`, as run.json has always had it), electrodes and
    folds; `memory`: the program's bytes (RSS at its start and peak, its inputs, its lanes)."""
    from podbench.publish import publish_dir

    def write(tmp: Path) -> str:
        (tmp / "config.yml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        perf.to_csv(tmp / "lag_performance.csv", index=False)
        long.to_csv(tmp / "metrics.csv", index=False)
        plot_lag_curve(perf, task, folds, tmp / "lag_curve.png", plot_title(cfg, task, sizes))
        for name, extra in long.attrs.get("extra_results", {}).items():
            extra.to_csv(tmp / name, index=False)
        sel = np.flatnonzero(res.table.point == point)
        lanes = [
            {
                **res.table.rows()[i],
                "epochs": int(res.epochs[i]),
                "best_epoch": int(res.best_epoch[i]),
                "best_val": float(res.best_score[i]),
                **({"alpha": float(res.state["alpha"][i])} if "alpha" in res.state else {}),
                **({} if res.fit_steps is None else {"fit_steps": int(res.fit_steps[i])}),
            }
            for i in sel
        ]
        if cfg.training.predictions:
            arrays = test_predictions(cfg, task, inputs, res, point)
            # numpy's stubs match the ** mapping against savez's allow_pickle: bool as well
            np.savez(tmp / PREDICTIONS, **arrays)  # type: ignore[arg-type]
        if cfg.training.checkpoints:
            import jax

            save_checkpoint(tmp / "checkpoints", jax.tree.map(lambda a: a[sel], res.state), lanes)
        run = {
            "keys": keys,
            **environment(),
            "timings_s": timings,
            "sizes": sizes,
            "memory_bytes": memory,
            "lanes": {
                "count": int(len(sel)),
                "members_per_lane": res.group,
                "epochs_total": int(res.epochs[sel].sum()),
            },
            "lane_table": lanes,
        }
        return json.dumps(run, indent=1)

    publish_dir(run_dir, write, RUN_MARKER, "writing the results")
    return run_dir


def is_complete(run_dir: Path) -> bool:
    """Published results: run.json is written last, so its presence means complete."""
    return (run_dir / RUN_MARKER).is_file()
