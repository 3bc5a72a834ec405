"""Lanes that start from a finished run instead of a random initialisation.

A model declares `init_from={param: submodule}` (llm_prefix: `encoder_init` -> `encoder`):
when the parameter names a run (its results folder, or its config file, whose training key
finds the folder), each lane's submodule starts from that run's best parameters and
statistics of the same (lag, fold); the optimiser starts afresh. The run must have trained
on the same words and folds, at every lag asked for, with one member and checkpoints;
`start_from` (podbench.train.program) checks the shapes. The run enters the training key by
its own training key (podbench.features.keys).
"""

from __future__ import annotations

import numpy as np

from podbench import registry
from podbench.config import Config, RunReference
from podbench.errors import ConfigError


def warm_start(cfg: Config, table, inputs) -> dict | None:
    """The start of every lane of `table` (see `start_from`), or None when no run is named.
    `inputs`: the program's ProgramInputs."""
    named = {
        param: module
        for param, module in registry.models.spec(cfg.model.name).init_from.items()
        if cfg.model.params.get(param)
    }
    if not named:
        return None
    start: dict = {"params": {}, "rest": {}}
    refs = [RunReference(f"model.params.{param}", cfg.model.params[param]) for param in named]
    for ref, module in zip(refs, named.values()):
        state = _run_state(ref, table, inputs)
        for part in ("params", "rest"):
            start[part].update({f"[{module!r}]" + name: v for name, v in state[part].items()})
    return {**start, "source": "; ".join(map(str, refs))}


def _run_state(ref: RunReference, table, inputs) -> dict:
    """The referenced run's best state per lane of `table`, by key path."""
    from podbench.features.keys import referenced_run
    from podbench.train.saved import load_run

    folder, _ = referenced_run(ref)
    where = str(ref)
    if not (folder / "checkpoints" / "state").is_dir():
        hint = f"; train it first: podbench train --config {ref.value}" if ref.config_file else ""
        raise ConfigError(f"{where}: {folder} is not a finished run with checkpoints{hint}")
    run = load_run(folder)
    assert run.model is not None, "a run with checkpoints has a model"
    if (run.model.lanes["member"] != 0).any():
        raise ConfigError(
            f"{where}: that run has model.members = {run.config.model.members}, "
            "expected 1 (one set of parameters per lane)"
        )
    saved = run.model.inputs

    def same(entry) -> bool:
        return (
            np.array_equal(saved.words, entry.words)
            and len(saved.folds) == len(entry.folds)
            and all(
                np.array_equal(getattr(a, part), getattr(b, part))
                for a, b in zip(saved.folds, entry.folds)
                for part in ("train", "val", "test")
            )
        )

    if not all(same(entry) for entry in inputs.entries):
        raise ConfigError(
            f"{where}: that run trained on other words or folds (it needs the "
            "same data, electrodes, preprocessing and fold settings)"
        )
    lane_of = {
        (int(lag), int(fold)): i
        for i, (lag, fold) in enumerate(zip(run.model.lanes["lag"], run.model.lanes["fold"]))
    }
    wanted = list(zip(table.lag_ms.tolist(), table.fold.tolist()))
    missing = sorted({lag for lag, fold in wanted if (lag, fold) not in lane_of})
    if missing:
        raise ConfigError(
            f"{where}: that run has no lanes at lags {missing} ms (it trained "
            f"{sorted(set(run.model.lanes['lag'].tolist()))})"
        )
    pick = np.array([lane_of[w] for w in wanted])
    return {
        part: {name: v[pick] for name, v in values.items()}
        for part, values in run.model.best_state().items()
    }
