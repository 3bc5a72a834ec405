"""A finished run read back: its config, tables and a model that predicts from its checkpoint.

    run = api.load_run("results/demo/<run-id>")
    run.performance                    # lag_performance.csv
    preds = run.model.predict()        # [lane, member, word, out] for every word of the run
    run.model.lanes                    # lag, fold, member of each lane

The model is the run's compiled lane program with every lane's best parameters restored from
`checkpoints/`, fed the run's inputs: the latents store named in run.json and each fold's
standardisation statistics, recomputed from the training rows as the trainer did. Its
predictions are the ones the run scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podbench import registry
from podbench.config import Config, from_dict, read_yaml
from podbench.errors import DataError


@dataclass
class SavedModel:
    """Every lane of a run with its restored best parameters."""

    lanes: pd.DataFrame  # lag, fold, member (first of the lane's group) per lane
    inputs: object  # podbench.train.inputs.RunInputs: words, labels, x, y, lags, folds
    _program: object
    _state: object
    _lane_arrays: object
    _data: object

    def predict(self) -> np.ndarray:
        """Best-parameter predictions of every lane for every word of `inputs.words`:
        [lane, member, word, out] (raw outputs: embeddings, logits or values, as the task's
        metrics read them)."""
        import jax.numpy as jnp

        rows = jnp.arange(len(self.inputs.words), dtype=jnp.int32)
        return np.asarray(self._program.predict(self._state, self._lane_arrays, self._data, rows))

    def best_state(self) -> dict:
        """Every lane's restored best parameters and statistics as host arrays by key path
        (jax.tree_util.keystr): {"params": {...}, "rest": {...}}, leading axis lane."""
        import jax

        def flat(tree):
            return {jax.tree_util.keystr(p): np.asarray(a)
                    for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]}

        return {"params": flat(self._state.best_params), "rest": flat(self._state.best_rest)}


@dataclass
class SavedRun:
    path: Path
    config: Config
    performance: pd.DataFrame  # lag_performance.csv
    metrics: pd.DataFrame  # metrics.csv
    info: dict  # run.json
    model: SavedModel | None  # None without checkpoints (training.checkpoints: false) and for
    # closed-form decoders (ridge), which keep no parameters


def load_run(path: str | Path) -> SavedRun:
    """Read a results folder; restore its model when it has checkpoints."""
    path = Path(path).expanduser()
    files = ("config.yml", "lag_performance.csv", "metrics.csv", "run.json")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise DataError(f"{path}: not a complete results folder (missing {', '.join(missing)})")
    cfg = from_dict(read_yaml(path / "config.yml", "results config"), str(path / "config.yml"))
    info = json.loads((path / "run.json").read_text())
    closed = registry.models.entry(cfg.model.name).meta.get("closed_form", False)
    model = None
    if (path / "checkpoints" / "state").is_dir() and not closed:
        model = _restore(path, cfg, info)
    return SavedRun(path, cfg, pd.read_csv(path / "lag_performance.csv"),
                    pd.read_csv(path / "metrics.csv"), info, model)


def _restore(path: Path, cfg: Config, info: dict) -> SavedModel:
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp

    from podbench.features.build import Features
    from podbench.features.store import Stores
    from podbench.tasks import task_for
    from podbench.train.execute import make_program
    from podbench.train.inputs import lane_inputs, prepare
    from podbench.train.lanes import lay_out
    from podbench.train.program import Data
    from podbench.train.run import lane_point

    task = task_for(cfg)
    inputs = prepare(cfg, Features(Stores(cfg.output.stores), info["keys"], []))
    group = info["lanes"]["members_per_lane"]
    table = lay_out(inputs.lags, inputs.folds, cfg.model.members, group, [lane_point(cfg)])
    saved = [(r["lag"], r["fold"], r["member"]) for r in info["lane_table"]]
    if saved != list(zip(table.lag_ms.tolist(), table.fold.tolist(), table.member.tolist())):
        raise DataError(f"{path}: its lanes in run.json do not match its config's lag grid, "
                        "folds and members")
    lanes_np = lane_inputs(table, inputs)
    program = make_program(cfg, task, inputs, lanes_np, group)
    lanes = jax.device_put(lanes_np)
    fresh = program.init(lanes)
    restored = ocp.StandardCheckpointer().restore(
        path.resolve() / "checkpoints" / "state",
        {"params": fresh.best_params, "rest": fresh.best_rest})
    state = fresh._replace(best_params=restored["params"], best_rest=restored["rest"])
    data = Data(jnp.asarray(inputs.x), jnp.asarray(inputs.y), jnp.asarray(inputs.norm_mean),
                jnp.asarray(inputs.norm_std))
    frame = pd.DataFrame({"lag": table.lag_ms, "fold": table.fold, "member": table.member})
    return SavedModel(frame, inputs, program, state, lanes, data)
