"""Stage keys: sha256 of canonical JSON over exactly what each pipeline stage depends on.

This module is the one place that says which config fields feed which stage:

- epochs   <- data selection, signal, window width, lag grid, the task's events (word onsets
              for word tasks, so all word tasks share one epochs store) and the content
              fingerprints of the files read (recordings, channel tables, event sources)
- selection <- (with `data.electrodes: {select: ...}`) the epochs' data fragment with the
              candidate electrodes, the selection settings, the folds (fit: train) + targets;
              the epochs then hold the selected electrodes (their union over folds)
- targets  <- the task's target fragment (e.g. source, layer, PCA) and the content
              fingerprints of its sources [+ epochs and folds when PCA is fitted inside
              training folds]
- latents  <- preprocessor name, params and the config fields it declares, + epochs
- training <- task, model, training settings, word-metric settings, + latents and targets

So a change to decoder or training settings never rebuilds features, and a change to the
window width rebuilds epochs and everything downstream. No key holds an absolute path: files
enter by their path relative to data.root and their content (podbench.features.fingerprints),
so the same dataset copied elsewhere gives the same keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podbench import registry
from podbench.config import Config, RunReference, load
from podbench.data.recordings import file_digest, is_csv_spec
from podbench.errors import ConfigError

if TYPE_CHECKING:
    from podbench.features.context import Resolved

# A stage's version changes when the same config would give other numbers (training 2:
# dropout masks from hashed bits; epochs 3: the validity mask ends at the last lag run), so
# old results are never taken for new ones.
STAGE_VERSIONS = {"epochs": 3, "targets": 2, "latents": 1, "training": 2, "selection": 1}
SHORT = 12


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class StageSpec:
    """What a stage depends on, and the key derived from it."""

    stage: str
    fragment: dict
    parents: dict

    @property
    def key(self) -> str:
        payload = {
            "stage": self.stage,
            "version": STAGE_VERSIONS[self.stage],
            "fragment": self.fragment,
            "parents": self.parents,
        }
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def recording_sources(ctx: Resolved) -> list[Path]:
    """The recordings and channel tables of the selected subjects."""
    dataset, signal = ctx.dataset, ctx.cfg.data.signal
    return [dataset.derivative_path(s, signal) for s in ctx.subjects] + [
        dataset.channels_path(s) for s in ctx.subjects
    ]


def epochs_sources(ctx: Resolved) -> list[Path]:
    """Files the epochs stage reads (fingerprinted in its key and its store)."""
    return recording_sources(ctx) + ctx.task.event_sources(ctx.cfg, ctx.dataset)


def epochs_fragment(ctx: Resolved) -> dict:
    """What the epochs depend on: the selection, the window and lag grid, the task's events,
    and the content of every file read (the recordings, channel tables, event sources)."""
    d = ctx.cfg.data
    if ctx.electrodes is None:
        electrodes = None
    elif is_csv_spec(ctx.electrodes):
        electrodes = {"csv_sha256": file_digest(ctx.electrodes)}
    else:
        electrodes = {"regex": ctx.electrodes}
    return {
        "subjects": ctx.subjects,
        "electrodes": electrodes,
        "signal": d.signal,
        "window_width": d.window_width,
        "lags": dataclasses.asdict(d.lags),
        "events": ctx.task.events_fragment(ctx.cfg),
        "data": ctx.fingerprints.of(epochs_sources(ctx)),
    }


def selection_fragment(cfg: Config, data: dict) -> dict:
    """What an electrode selection depends on besides the targets: the data it reads (the
    epochs fragment with the candidate electrodes), its settings and, fitted inside training
    folds, the folds."""
    from podbench.tasks.folds import folds_fragment

    selection = cfg.data.selection
    assert selection is not None, "selection_fragment of a config without a selection"
    settings = dataclasses.asdict(selection)
    settings.pop("candidates")  # in the data fragment, resolved
    frag: dict[str, Any] = {"data": data, "settings": settings}
    if settings["fit"] == "train":
        frag.update(folds=folds_fragment(cfg), label_normalisation=cfg.data.label_normalisation)
    return frag


def stage_specs(cfg: Config | Resolved) -> dict[str, StageSpec]:
    """The stage specs of a config (or of a resolved config), parents first: epochs, targets,
    latents, training, and selection where podbench chooses the electrodes."""
    from podbench.features.context import resolve

    ctx = resolve(cfg)
    cfg = ctx.cfg
    data = epochs_fragment(ctx)
    frag, needs_epochs = ctx.task.targets_fragment(cfg, ctx.dataset)
    frag = {**frag, "data": ctx.fingerprints.of(ctx.task.target_sources(cfg, ctx.dataset))}
    selection = None
    if cfg.data.selection is not None:
        if needs_epochs:
            raise ConfigError(
                "data.electrodes: a selection is fitted on the targets, so targets "
                "fitted inside training folds (targets.pca_fit: train, "
                "task_params.class_weight: balanced) cannot depend on its "
                "electrodes; fit them on all words"
            )
        selection = StageSpec(
            "selection",
            selection_fragment(cfg, data),
            {"targets": StageSpec("targets", frag, {}).key},
        )
        data = {**data, "electrodes": {"selection": selection.key, "fit": cfg.data.selection.fit}}
    epochs = StageSpec("epochs", data, {})
    targets = StageSpec("targets", frag, {"epochs": epochs.key} if needs_epochs else {})
    pre = registry.preprocessors.spec(cfg.preprocess.name)
    latents = StageSpec(
        "latents",
        {"name": cfg.preprocess.name, "params": cfg.preprocess.params, "depends": pre.depends(cfg)},
        {"epochs": epochs.key},
    )
    training_fields = dataclasses.asdict(cfg.training)
    for detail in (
        "lane_chunk",
        "lane_batch",
        "checkpoints",
        "predictions",
    ):  # not inputs of the results
        training_fields.pop(detail)
    if not cfg.training.gap:  # keys of runs made before it existed
        training_fields.pop("gap")
    if not cfg.training.shuffle_targets:  # null-target settings matter only with the shuffle
        training_fields.pop("shuffle_mode")
        training_fields.pop("permutation_seed")
    elif cfg.training.permutation_seed is None:  # keys of runs made before it existed
        training_fields.pop("permutation_seed")
    fragment = ctx.task.training_fragment(cfg, ctx.fingerprints.of)
    for param in registry.models.spec(cfg.model.name).init_from:
        value = fragment["model"]["params"].get(param)
        if value:  # a run that initialises part of the model: by its training key
            _, key = referenced_run(RunReference(f"model.params.{param}", value))
            params = {**fragment["model"]["params"], param: key}
            fragment["model"] = {**fragment["model"], "params": params}
    training = StageSpec(
        "training",
        {
            "task": cfg.task,
            **fragment,
            "training": training_fields,
            "min_train_freq": cfg.targets.min_train_freq,
            "label_normalisation": cfg.data.label_normalisation,
        },
        {"latents": latents.key, "targets": targets.key},
    )
    return {s.stage: s for s in (selection, epochs, targets, latents, training) if s}


def stage_keys(cfg: Config | Resolved) -> dict[str, str]:
    return {name: spec.key for name, spec in stage_specs(cfg).items()}


def run_dir_of(cfg: Config, training_key: str) -> Path:
    """The results folder of a config with this training key."""
    return Path(cfg.output.results).expanduser() / cfg.trial_name / training_key[:SHORT]


def referenced_run(ref: RunReference) -> tuple[Path, str]:
    """The results folder and training key of a referenced run: a config file's own (computed,
    so they hold before that run is trained), or a results folder's (its run.json)."""
    if path := ref.config_file:
        other = load(path)
        key = stage_keys(other)["training"]
        return run_dir_of(other, key), key
    try:
        return ref.folder, json.loads((ref.folder / "run.json").read_text())["keys"]["training"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(
            f"{ref}: not a results folder with a readable run.json, nor a "
            f"config file ({type(err).__name__}: {err})"
        ) from None
