"""Python API mirroring the command line, for notebooks and scripts.

    from podbench import api
    cfg = api.load_config("configs/demo.yml", ["training.lr=3e-4"])
    features = api.build_features(cfg)        # podbench build-features
    epochs = api.open_store(cfg, "epochs")    # xarray Dataset (word, channel, time)
    result = api.train(cfg)                   # podbench train
    run = api.load_run(result.run_dir)        # config, tables, model.predict() from checkpoints
    test = run.predictions("test")            # held-out predictions (xarray), as scored
"""

from __future__ import annotations

from podbench.config import Config, from_dict, load
from podbench.features.build import Features
from podbench.features.build import build_features as _build_features
from podbench.features.keys import stage_keys
from podbench.features.store import Stores

__all__ = ["Config", "from_dict", "load_config", "build_features", "open_store", "stores",
           "train", "load_run", "synthesize"]

load_config = load


def build_features(cfg: Config, log=print) -> Features | list[Features]:
    """Build or find the epochs, targets and latents stores of `cfg` (one Features per task
    when it lists several; they share the epochs and latents)."""
    built = [_build_features(c, log=log) for c in cfg.task_configs()]
    return built if cfg.several_tasks else built[0]


def open_store(cfg: Config, stage: str):
    """Open the complete store of one stage (epochs | targets | latents) of `cfg` lazily."""
    return Stores(cfg.output.stores).open(stage, stage_keys(cfg)[stage])


def stores(cfg: Config) -> Stores:
    """The store root of `cfg` (list, verify, gc)."""
    return Stores(cfg.output.stores)


def train(cfg: Config, force: bool = False, log=print):
    """Build missing stores, train, evaluate and write results: a RunResult (its folder and
    lag table), or one per task when `cfg` lists several."""
    from podbench.experiments.train import train as _train

    return _train(cfg, force=force, log=log)


def load_run(path):
    """A results folder (or a trial folder with one run) read back
    (podbench.train.saved.SavedRun): config, performance and metrics tables, run.json,
    `predictions(split)` (held-out predictions as an xarray Dataset) and a model whose
    predict() restores the orbax checkpoint."""
    from podbench.train.saved import load_run as _load_run

    return _load_run(path)


def synthesize(out, **kwargs):
    """Write a stand-in of ds005574 (see `podbench synth --help`)."""
    from podbench.data.synth import synthesize as _synthesize

    return _synthesize(out, **kwargs)
