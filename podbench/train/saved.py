"""A finished run read back: its config, tables and a model that predicts from its checkpoint.

    run = api.load_run("results/demo/<run-id>")
    run.performance                    # lag_performance.csv
    preds = run.model.predict()        # [lane, member, word, out] for every word of the run
    run.model.lanes                    # lag, fold, member of each lane

The model is the run's compiled program with every lane's best parameters restored from
`checkpoints/`, fed the run's inputs: the latents store named in run.json and each fold's
standardisation statistics, recomputed from the training rows as the trainer did. Its
predictions are the ones the run scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, from_dict, read_yaml
from podbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from podbench.train.inputs import RunInputs
    from podbench.train.program import CompiledProgram, Data, Lanes, State


@dataclass
class SavedModel:
    """Every lane of a run with its restored best parameters (``SavedRun.model``).

    Made by :func:`load_run`, not by hand.

    Parameters
    ----------
    lanes : pandas.DataFrame
        Lag, fold and member (the first of the lane's group) of each lane.
    inputs : podbench.train.inputs.RunInputs
        The run's inputs: words, labels, x, y, lags, folds.
    _compiled, _state, _lane_arrays, _data : object
        The compiled program, its state with the best parameters restored, the lanes'
        arrays and the data on the device (internal).
    """

    lanes: pd.DataFrame  # lag, fold, member (first of the lane's group) per lane
    inputs: RunInputs  # words, labels, x, y, lags, folds
    _compiled: CompiledProgram
    _state: State
    _lane_arrays: Lanes
    _data: Data

    def predict(self) -> np.ndarray:
        """Best-parameter predictions of every lane for every word of the run.

        Returns
        -------
        numpy.ndarray
            [lane, member, word, out] over ``inputs.words``: raw outputs (embeddings, logits
            or values, as the task's metrics read them).
        """
        import jax.numpy as jnp

        rows = jnp.arange(len(self.inputs.words), dtype=jnp.int32)
        return np.asarray(self._compiled.predict(self._state, self._lane_arrays, self._data, rows))

    def split_predictions(self, cfg: Config, split: str):
        """`SavedRun.predictions` of a split, from the restored lanes.

        Parameters
        ----------
        cfg : podbench.config.Config
            The run's config.
        split : {"test", "val", "train"}
            Which rows of each fold.

        Returns
        -------
        xarray.Dataset
            As :meth:`SavedRun.predictions`.
        """
        from podbench.tasks import task_for

        task = task_for(cfg)
        preds = self.predict()  # [lane, member in lane, event, out]
        lags, folds = list(self.inputs.lags), [f.number for f in self.inputs.folds]
        n_members = cfg.model.members if preds.shape[1] == 1 else preds.shape[1]
        out = np.full(
            (len(lags), len(folds), n_members + 1, len(self.inputs.words), preds.shape[-1]),
            np.nan,
            np.float32,
        )
        target = np.full(
            (len(folds), len(self.inputs.words), self.inputs.y.shape[-1]), np.nan, np.float32
        )
        for f, fold in enumerate(self.inputs.folds):
            rows = getattr(fold, split)
            y = self.inputs.y[f if self.inputs.y.shape[0] > 1 else 0]
            target[f, rows] = y[rows]
            for i, lag in enumerate(lags):
                lanes = np.flatnonzero(
                    (self.lanes["lag"] == lag) & (self.lanes["fold"] == fold.number)
                )
                members = preds[lanes].reshape(-1, *preds.shape[2:])  # [member, event, out]
                ensemble = (
                    task.ensemble(members)
                    if preds.shape[1] == 1
                    else task.joint_ensemble(members, cfg)
                )
                out[i, f, :-1][:, rows] = members[:, rows]
                out[i, f, -1, rows] = ensemble[rows]
        return _prediction_dataset(out, target, lags, folds, self.inputs.words, self.inputs.labels)

    def best_state(self) -> dict:
        """Every lane's restored best parameters and statistics as host arrays.

        Returns
        -------
        dict
            ``{"params": {...}, "rest": {...}}``, each keyed by key path
            (``jax.tree_util.keystr``), leading axis lane.
        """
        import jax

        def flat(tree):
            return {
                jax.tree_util.keystr(p): np.asarray(a)
                for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]
            }

        return {"params": flat(self._state.best_params), "rest": flat(self._state.best_rest)}


@dataclass
class SavedRun:
    """A finished run read back by :func:`load_run`.

    Parameters
    ----------
    path : pathlib.Path
        The results folder.
    config : podbench.config.Config
        The run's resolved config (its config.yml).
    performance : pandas.DataFrame
        lag_performance.csv: one row per lag (``lags``), each metric's mean, std and
        per-fold values over folds.
    metrics : pandas.DataFrame
        metrics.csv: every metric of every lag, fold and member, long form.
    info : dict
        run.json: the stores' keys, the lane layout, timings, versions.
    model : SavedModel or None
        Every lane with its best parameters restored from ``checkpoints/``; None without
        checkpoints (``training.checkpoints: false``) and for closed-form decoders (ridge,
        linear), which keep no parameters.

    See Also
    --------
    SavedModel : the model's lanes and ``predict()``.
    """

    path: Path
    config: Config
    performance: pd.DataFrame  # lag_performance.csv
    metrics: pd.DataFrame  # metrics.csv
    info: dict  # run.json
    model: SavedModel | None  # None without checkpoints (training.checkpoints: false) and for
    # closed-form decoders (ridge), which keep no parameters

    def predictions(self, split: str = "test"):
        """Every event's predictions on one split of every fold.

        Parameters
        ----------
        split : {"test", "val", "train"}, default "test"
            "test" reads test_predictions.npz (every decoder); "val" and "train" predict
            from the checkpoints (trained decoders).

        Returns
        -------
        xarray.Dataset
            ``prediction`` (lag, fold, member, event, out), member "0", "1", ... and
            "ensemble" (the prediction the metrics score), nan where the event is not in
            that split of that fold; ``target`` (fold, event, dim) as scored; coordinates
            event (word_idx) and word (label). ``ds["prediction"].to_dataframe().dropna()``
            is the tidy table (one row per lag, fold, member, event and output).

        Raises
        ------
        podbench.errors.ConfigError
            An unknown split.
        podbench.errors.DataError
            "val" or "train" of a run without checkpoints.

        Examples
        --------
        >>> from podbench import api
        >>> run = api.load_run("results/demo")  # doctest: +SKIP
        >>> test = run.predictions("test")  # doctest: +SKIP
        >>> test["prediction"].sel(member="ensemble").dims  # doctest: +SKIP
        ('lag', 'fold', 'event', 'out')
        """
        from podbench.train.results import SPLIT_CODES, read_test_predictions

        if split not in SPLIT_CODES:
            raise ConfigError(f"split = {split!r}: expected one of {', '.join(SPLIT_CODES)}")
        if split == "test":
            saved = read_test_predictions(self.path)
            members = np.concatenate([saved["members"], saved["ensemble"][:, None]], axis=1)
            folds = saved["fold"]
            inside = saved["split"] == SPLIT_CODES["test"]  # [fold, event]
            pred = np.where(inside[None, :, None, :, None], members[:, None], np.nan)
            target = np.where(inside[..., None], saved["target"][None], np.nan)
            return _prediction_dataset(
                pred, target, saved["lag"], folds, saved["event"], saved["label"]
            )
        if self.model is None:
            raise DataError(
                f"{self.path}: no checkpoints (closed-form decoder or "
                f"training.checkpoints: false): only split='test' is kept"
            )
        return self.model.split_predictions(self.config, split)


def run_folder(path: Path) -> Path:
    """A results folder as given, or the one complete run (run.json) of a trial folder; a
    trial with several runs is refused, listing them, rather than one picked silently."""
    if (path / "run.json").is_file() or not path.is_dir():
        return path
    runs = sorted(
        (
            p.parent
            for p in path.glob("*/run.json")
            if ".tmp-" not in p.parent.name and not p.parent.name.startswith(".")
        ),
        key=lambda p: (p / "run.json").stat().st_mtime,
    )
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise DataError(f"{path}: neither a results folder nor a trial folder with a complete run")
    listed = ", ".join(
        f"{p.name} ({pd.Timestamp((p / 'run.json').stat().st_mtime, unit='s'):%Y-%m-%d %H:%M})"
        for p in runs
    )
    raise DataError(f"{path}: a trial folder with {len(runs)} runs ({listed}); load one of them")


def _prediction_dataset(pred, target, lags, folds, events, labels):
    import xarray as xr

    members = [str(m) for m in range(pred.shape[2] - 1)] + ["ensemble"]
    return xr.Dataset(
        {
            "prediction": (("lag", "fold", "member", "event", "out"), pred),
            "target": (("fold", "event", "dim"), target),
        },
        coords={
            "lag": np.asarray(lags),
            "fold": np.asarray(folds),
            "member": members,
            "event": np.asarray(events),
            "word": ("event", np.asarray(labels, dtype=str)),
        },
    )


def load_run(path: str | Path) -> SavedRun:
    """Read a results folder back; restore its model when it has checkpoints.

    Parameters
    ----------
    path : str or pathlib.Path
        A results folder, or a trial folder holding exactly one complete run (a trial with
        several runs is refused, listing them).

    Returns
    -------
    SavedRun
        Its config, tables, run.json, predictions and model.

    Raises
    ------
    podbench.errors.DataError
        Not a complete results folder (config.yml, lag_performance.csv, metrics.csv and
        run.json are needed), or a trial folder with no run or several.
    """
    path = run_folder(Path(path).expanduser())
    files = ("config.yml", "lag_performance.csv", "metrics.csv", "run.json")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise DataError(f"{path}: not a complete results folder (missing {', '.join(missing)})")
    cfg = from_dict(read_yaml(path / "config.yml", "results config"), str(path / "config.yml"))
    info = json.loads((path / "run.json").read_text())
    closed = registry.models.spec(cfg.model.name).closed_form
    model = None
    if (path / "checkpoints" / "state").is_dir() and not closed:
        model = _restore(path, cfg, info)
    return SavedRun(
        path,
        cfg,
        pd.read_csv(path / "lag_performance.csv"),
        pd.read_csv(path / "metrics.csv"),
        info,
        model,
    )


def _restore(path: Path, cfg: Config, info: dict) -> SavedModel:
    import jax
    import orbax.checkpoint as ocp

    from podbench.features.build import Features
    from podbench.features.store import Stores
    from podbench.tasks import task_for
    from podbench.train.execute import compile_program, device_data
    from podbench.train.inputs import lane_inputs, prepare
    from podbench.train.lanes import lane_point, lay_out

    task = task_for(cfg)
    inputs = prepare(cfg, Features(Stores(cfg.output.stores), info["keys"], []))
    group = info["lanes"]["members_per_lane"]
    table = lay_out(inputs.lags, inputs.folds, cfg.model.members, group, [lane_point(cfg)])
    saved = [(r["lag"], r["fold"], r["member"]) for r in info["lane_table"]]
    if saved != list(zip(table.lag_ms.tolist(), table.fold.tolist(), table.member.tolist())):
        raise DataError(
            f"{path}: its lanes in run.json do not match its config's lag grid, folds and members"
        )
    lanes_np = lane_inputs(table, inputs)
    data = device_data(cfg, task, inputs)
    compiled = compile_program(cfg, task, inputs, lanes_np, group, frozen=data.frozen)
    lanes = jax.device_put(lanes_np)
    fresh = compiled.init(lanes)
    restored = ocp.StandardCheckpointer().restore(
        path.resolve() / "checkpoints" / "state",
        {"params": fresh.best_params, "rest": fresh.best_rest},
    )
    state = fresh._replace(best_params=restored["params"], best_rest=restored["rest"])
    frame = pd.DataFrame({"lag": table.lag_ms, "fold": table.fold, "member": table.member})
    return SavedModel(frame, inputs, compiled, state, lanes, data)
