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

__all__ = [
    "Config",
    "from_dict",
    "load_config",
    "build_features",
    "open_store",
    "stores",
    "train",
    "load_run",
    "synthesize",
]

load_config = load


def build_features(cfg: Config, log=print) -> Features | list[Features]:
    """Build or find the epochs, targets and latents stores of a config.

    What ``podbench build-features`` does: a store already built for the same inputs is found
    by its key, not rebuilt.

    Parameters
    ----------
    cfg : Config
        A validated config (:func:`load_config`, :func:`from_dict`).
    log : callable, default print
        Called with one report line per stage (key, built or found, shape, size, time).

    Returns
    -------
    Features or list of Features
        The stores' keys and build reports (``features.open(stage)`` opens one); one
        Features per task, in order, when `cfg` lists several tasks (they share the epochs
        and latents stores).
    """
    built = [_build_features(c, log=log) for c in cfg.task_configs()]
    return built if cfg.several_tasks else built[0]


def open_store(cfg: Config, stage: str):
    """Open the complete store of one stage of a config, lazily.

    Parameters
    ----------
    cfg : Config
        The config whose store is opened (its key is computed from the config, so the store
        must have been built: :func:`build_features`).
    stage : {"epochs", "targets", "latents"}
        Which store.

    Returns
    -------
    xarray.Dataset
        The store read lazily from its zarr folder (epochs: ``ecog`` over word, channel and
        time).
    """
    return Stores(cfg.output.stores).open(stage, stage_keys(cfg)[stage])


def stores(cfg: Config) -> Stores:
    """The store root of a config: list, verify and garbage-collect its stores.

    Parameters
    ----------
    cfg : Config
        The config whose ``output.stores`` folder is opened.

    Returns
    -------
    podbench.features.store.Stores
        The store root (``podbench stores`` calls it).
    """
    return Stores(cfg.output.stores)


def train(cfg: Config, force: bool = False, log=print):
    """Build missing stores, train, evaluate and write a results folder.

    What ``podbench train`` does: every lag, fold and ensemble member is a lane of one
    compiled program; a run whose results are complete is found, not trained again.

    Parameters
    ----------
    cfg : Config
        A validated config (:func:`load_config`, :func:`from_dict`).
    force : bool, default False
        Train again even where the results folder is complete.
    log : callable, default print
        Called with each progress and report line.

    Returns
    -------
    podbench.train.run.RunResult or list of RunResult
        The run's folder (``run_dir``), its lag table (``performance``, the
        lag_performance.csv table) and whether it was found complete (``skipped``); one per
        task, in order, when `cfg` lists several tasks.

    See Also
    --------
    load_run : read a results folder back.

    Examples
    --------
    >>> from podbench import api
    >>> cfg = api.load_config("configs/demo.yml", ["training.epochs=1"])  # doctest: +SKIP
    >>> result = api.train(cfg)  # doctest: +SKIP
    >>> result.performance[["lags", "test_word_avg_auc_roc_mean"]]  # doctest: +SKIP
    """
    from podbench.experiments.config_runs import train_config

    return train_config(cfg, force=force, log=log)


def load_run(path):
    """Read a results folder back: its config, tables, predictions and trained model.

    Parameters
    ----------
    path : str or pathlib.Path
        A results folder (``results/<trial>/<run-id>``), or a trial folder holding exactly
        one complete run.

    Returns
    -------
    podbench.train.saved.SavedRun
        The run's config, performance and metrics tables, run.json,
        ``predictions(split)`` (held-out predictions as an xarray Dataset) and ``model``,
        whose ``predict()`` restores the orbax checkpoint.

    See Also
    --------
    podbench.train.saved.load_run : the function this calls.

    Examples
    --------
    >>> from podbench import api
    >>> run = api.load_run("results/demo")  # doctest: +SKIP
    >>> run.performance.shape  # doctest: +SKIP
    >>> test = run.predictions("test")  # doctest: +SKIP
    """
    from podbench.train.saved import load_run as _load_run

    return _load_run(path)


def synthesize(out, **kwargs):
    """Write a stand-in of ds005574: its real metadata with simulated high-gamma signals.

    Parameters
    ----------
    out : str or pathlib.Path
        The folder to write (a BIDS tree like the real dataset's).
    **kwargs
        The settings of :func:`podbench.data.synth.synthesize` (``subjects``, ``duration``,
        ``seed``, ``dim``, ``raw``, ``latency_ms``, ``snr``, ``progress``), the options of
        ``podbench synth --help``.

    Returns
    -------
    pathlib.Path
        `out`.
    """
    from podbench.data.synth import synthesize as _synthesize

    return _synthesize(out, **kwargs)
