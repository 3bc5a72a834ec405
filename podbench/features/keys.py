"""Stage keys: sha256 of canonical JSON over exactly what each pipeline stage depends on.

This module is the one place that says which config fields feed which stage:

- epochs   <- data selection, signal, window width, lag grid, the task's events (word onsets
              for word tasks, so all word tasks share one epochs store) and the dataset root
- targets  <- the task's target fragment (e.g. source, layer, PCA) [+ epochs and folds when
              PCA is fitted inside training folds]
- latents  <- preprocessor name, params and the config fields it declares, + epochs
- training <- task, model, training settings, word-metric settings, + latents and targets

So a change to decoder or training settings never rebuilds features, and a change to the
window width rebuilds epochs and everything downstream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from podbench import registry
from podbench.config import Config
from podbench.data.dataset import Dataset
from podbench.data.recordings import file_digest, is_csv_spec, resolve_subjects
from podbench.tasks import task_for

STAGE_VERSIONS = {"epochs": 1, "targets": 1, "latents": 1, "training": 1}
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
        payload = {"stage": self.stage, "version": STAGE_VERSIONS[self.stage],
                   "fragment": self.fragment, "parents": self.parents}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def epochs_fragment(cfg: Config, dataset: Dataset) -> dict:
    d = cfg.data
    if d.electrodes is None:
        electrodes = None
    elif is_csv_spec(d.electrodes):
        electrodes = {"csv_sha256": file_digest(d.electrodes)}
    else:
        electrodes = {"regex": d.electrodes}
    subjects = resolve_subjects(dataset, d.subjects, d.electrodes, d.signal)
    return {"root": str(dataset.root), "subjects": subjects,
            "electrodes": electrodes, "signal": d.signal, "window_width": d.window_width,
            "lags": dataclasses.asdict(d.lags), "events": task_for(cfg).events_fragment(cfg)}


def stage_specs(cfg: Config) -> dict[str, StageSpec]:
    """The four stage specs of a config, parents first."""
    dataset = Dataset(cfg.data.root)
    epochs = StageSpec("epochs", epochs_fragment(cfg, dataset), {})
    frag, needs_epochs = task_for(cfg).targets_fragment(cfg, dataset)
    targets = StageSpec("targets", frag, {"epochs": epochs.key} if needs_epochs else {})
    pre = registry.preprocessors.entry(cfg.preprocess.name)
    depends = pre.meta.get("depends")
    latents = StageSpec("latents", {"name": cfg.preprocess.name, "params": cfg.preprocess.params,
                                    "depends": depends(cfg) if depends else {}},
                        {"epochs": epochs.key})
    training_fields = dataclasses.asdict(cfg.training)
    for detail in ("lane_chunk", "lane_batch"):  # execution details, not inputs of the results
        training_fields.pop(detail)
    if not cfg.training.shuffle_targets:  # null-target settings matter only with the shuffle
        training_fields.pop("shuffle_mode")
        training_fields.pop("permutation_seed")
    elif cfg.training.permutation_seed is None:  # keys of runs made before it existed
        training_fields.pop("permutation_seed")
    training = StageSpec("training", {
        "task": cfg.task, "task_params": cfg.task_params,
        "model": dataclasses.asdict(cfg.model), "training": training_fields,
        "min_train_freq": cfg.targets.min_train_freq,
        "label_normalisation": cfg.data.label_normalisation,
    }, {"latents": latents.key, "targets": targets.key})
    return {s.stage: s for s in (epochs, targets, latents, training)}


def stage_keys(cfg: Config) -> dict[str, str]:
    return {name: spec.key for name, spec in stage_specs(cfg).items()}
