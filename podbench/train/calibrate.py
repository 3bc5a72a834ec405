"""A program's cost on this machine, measured at its own shapes: a few of its lanes trained for
a few epochs (a closed-form decoder: fitted), each epoch timed, kept in the results root for the
plan (`podbench benchmark --plan --calibrate`).

Costs scaled from runs of other shapes are only as good as the scaling: a program of seconds is
mostly compilation and fixed costs, so a rate measured on small runs overstates a large
program many times over. A calibration times the program's own epoch once it is compiled, on
the program's own events and inputs; it builds the program's stores first (the run needs
them anyway, and finds them built). A few epochs cannot tell how many epochs early stopping
will train: the plan takes that from earlier runs of the task, else from a calibration that
trained its lanes to their stop (`to_stop`: a sample of the program's lanes, as they will
train), else from other tasks' runs, else it counts every lane to its epoch budget.

It also samples the process's resident memory while its lanes train: the plan estimates the
program's peak as the process before it (less its inputs), its inputs, the temporaries the
timed lanes needed beyond what they hold, and every lane's holding (the program's memory
model: state, best copy, inputs and predictions).

On a CPU the lanes of a program train one after another, so a few lanes (spread over its lags
and folds) tell the cost of each; on an accelerator they train side by side, so all of them
train (a few epochs)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from podbench import registry
from podbench.config import Config
from podbench.errors import ConfigError

CALIBRATIONS = "calibrations"  # the folder of a results root that holds them
VERSION = 3  # 2: memory; 3: the epochs lanes trained to their stop (`to_stop`); earlier
# versions are still read


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A program's measured cost on one machine."""

    lane_s: float  # seconds per lane-epoch once compiled (closed form: per lane's fit)
    fixed_s: float  # the rest of the timed program: compiling, setting up, predicting
    lanes: int  # lanes timed
    epochs: int  # epochs each timed lane trained (0: closed form; the most of them where they
    # trained to their stop)
    hardware: dict  # podbench.train.results.hardware() of the machine
    memory_base: float | None = None  # RSS before the program, less its inputs (None: a
    # version-1 calibration, which measured no memory)
    memory_temp: float | None = None  # the timed lanes' peak RSS beyond the process before
    # them and what those lanes hold
    lane_bytes: float | None = None  # what each lane holds (LaneResults.lane_bytes)
    stop_epochs: float | None = None  # the mean epochs a sample of the program's lanes trained
    # until early stopping ended them (None: not trained to their stop)

    def seconds(self, lanes: int, epochs: float) -> float:
        """A program of `lanes` lanes, each training `epochs` epochs (closed form: 1 fit)."""
        return self.fixed_s + lanes * epochs * self.lane_s

    def peak_bytes(self, lanes: int, inputs: float) -> float | None:
        """The peak RSS of a program of `lanes` lanes whose inputs take `inputs` bytes (None:
        this calibration measured no memory)."""
        if self.memory_base is None or self.memory_temp is None or self.lane_bytes is None:
            return None
        return self.memory_base + inputs + self.memory_temp + lanes * self.lane_bytes


def calibration_key(cfg: Config) -> str:
    """A calibration's key: the program (its signature: every setting its cost depends on) and
    the machine (`hardware`: CPU, devices, BLAS, XLA flags)."""
    import hashlib

    from podbench.features.keys import canonical_json
    from podbench.train.results import hardware
    from podbench.train.run import program_signature

    text = canonical_json({"program": program_signature(cfg), "hardware": hardware()})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def calibrate(
    cfg: Config,
    epochs: int = 3,
    lanes: int = 4,
    log: Callable[[str], None] = print,
    to_stop: bool = False,
) -> Calibration:
    """Time a config's program at its own shapes.

    `lanes` of its lanes, spread over its lags and folds (all of them on an accelerator,
    where lanes train side by side), train `epochs` epochs each without early stopping (a
    closed-form decoder: one fit each), after its stores are built where they are missing.
    With `to_stop`, `lanes` of its lanes train as the run trains them, until early stopping
    ends them (on a CPU these are the timed lanes; on an accelerator they train after the
    timed ones): their mean epochs are the calibration's `stop_epochs`.

    Parameters
    ----------
    cfg : podbench.config.Config
        A config of the program (one cell's real point).
    epochs : int, default 3
        Epochs per timed lane; those after the first (which compiles) give the cost.
    lanes : int, default 4
        Lanes to time where lanes train one after another (CPU).
    log : callable, default print
        Called with the store builds' and the calibration's progress lines.
    to_stop : bool, default False
        Also train a sample of lanes until early stopping ends them (a closed-form decoder:
        nothing more), so that the plan knows how many epochs its lanes train.

    Returns
    -------
    Calibration
        Seconds per lane-epoch (closed form: per lane's fit) and the program's fixed seconds
        (compiling, setting up, predicting), with the lanes and epochs timed, the machine, the
        memory the timed lanes needed (`Calibration.peak_bytes`) and, with `to_stop`, the
        epochs its lanes train (`Calibration.stop_epochs`).
    """
    from podbench.features.build import build_features
    from podbench.features.context import resolve
    from podbench.features.keys import stage_keys
    from podbench.features.preflight import preflight
    from podbench.train.execute import lane_batch
    from podbench.train.memory import PeakRss, release_free_memory
    from podbench.train.results import hardware
    from podbench.train.run import fit_program, lay_out_program

    if epochs < 2:
        raise ConfigError(f"a calibration times epochs after the first: epochs = {epochs} < 2")
    preflight([cfg])
    resolved = resolve(cfg)
    keys = stage_keys(resolved)
    features = {keys["targets"]: build_features(resolved, log=log)}
    laid = lay_out_program([cfg], [keys], features, log=lambda _: None)
    n = len(laid.table)
    one_by_one = lane_batch(cfg) is not None  # lanes train one after another (CPU)
    sample = _spread(n, min(n, max(1, lanes)))  # spread over its lags and folds
    rows = sample if one_by_one else np.arange(n)
    closed = registry.models.spec(cfg.model.name).closed_form
    to_stop = to_stop and stops_early(cfg)
    as_run = dataclasses.replace(  # trained as the run trains it, no snapshots
        cfg, training=dataclasses.replace(cfg.training, snapshot_every_s=None)
    )
    timed = (
        as_run
        if to_stop and one_by_one
        else dataclasses.replace(
            as_run, training=dataclasses.replace(as_run.training, epochs=epochs, patience=epochs)
        )
    )
    log(
        f"calibrating {cfg.model.name} on {cfg.task}: {len(rows)} of its {n} lanes, "
        + (
            "one fit each"
            if closed
            else "each until early stopping ends it"
            if timed is as_run
            else f"{epochs} epochs each"
        )
    )
    release_free_memory()  # the process's RSS before this program, not earlier programs' peak
    with PeakRss() as rss:
        res = fit_program(timed, laid, laid.table.take(rows), log)
    stop_epochs = None
    if to_stop:
        stopped = res
        if timed is not as_run:  # an accelerator: the timed lanes were all of them
            log(f"training {len(sample)} of its {n} lanes until early stopping ends each")
            stopped = fit_program(as_run, laid, laid.table.take(sample), log)
        stop_epochs = float(np.mean(stopped.epochs))
    memory = {
        "memory_base": float(rss.start_bytes - laid.program_inputs.x.nbytes),
        "memory_temp": float(max(0, rss.peak - rss.start_bytes - len(rows) * res.lane_bytes)),
        "lane_bytes": float(res.lane_bytes),
    }
    if closed:
        fit_s = res.seconds - res.compile_seconds
        return Calibration(
            fit_s / len(rows), res.compile_seconds, len(rows), 0, hardware(), **memory
        )
    lane_s = _lane_epoch_seconds(res)
    fixed = res.seconds - lane_s * float(np.sum(res.epochs))
    return Calibration(
        lane_s,
        max(0.0, fixed),
        len(rows),
        int(np.max(res.epochs)),
        hardware(),
        **memory,
        stop_epochs=stop_epochs,
    )


def stops_early(cfg: Config) -> bool:
    """Whether early stopping can end a lane of the config before its epoch budget: it ends
    one `patience` epochs after its best (a closed-form fit has no epochs)."""
    closed = registry.models.spec(cfg.model.name).closed_form
    return not closed and cfg.training.epochs > cfg.training.patience


def _lane_epoch_seconds(res) -> float:
    """Seconds per lane-epoch of trained lanes (`LaneResults`): the seconds of the epochs that
    compiled nothing (not the first at a working width) over the lanes each trained (a lane
    trains its `epochs`, then stops; lanes that stopped cost nothing)."""
    seconds, lane_epochs, first = 0.0, 0, 0
    for size, widths, times in zip(res.chunk_lanes, res.widths, res.epoch_seconds):
        trained = np.asarray(res.epochs[first : first + size])
        first += size
        for epoch, (width, took) in enumerate(zip(widths, times)):
            if epoch > 0 and width == widths[epoch - 1]:  # compiled at an earlier epoch
                seconds += took
                lane_epochs += int((trained > epoch).sum())
    if lane_epochs == 0:  # every epoch compiled: the cost includes compiling
        return float(sum(map(sum, res.epoch_seconds)) / max(1, np.sum(res.epochs)))
    return seconds / lane_epochs


def _spread(n: int, width: int) -> np.ndarray:
    """`width` of `n` lanes, spread evenly over the lane table (its lags and folds)."""
    return np.unique(np.linspace(0, n - 1, width).round().astype(int))


def save(results_root: Path, key: str, calibration: Calibration) -> Path:
    """Publish a calibration under the results root (atomically)."""
    from podbench.publish import publish_text

    path = Path(results_root).expanduser() / CALIBRATIONS / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": VERSION, **dataclasses.asdict(calibration)}, indent=1)
    publish_text(path, text, "calibration")
    return path


def calibrations(results_root: Path) -> dict[str, Calibration]:
    """Every calibration kept under the results root, by key."""
    folder = Path(results_root).expanduser() / CALIBRATIONS
    out = {}
    for path in sorted(folder.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            if (version := raw.pop("version", None)) not in (1, 2, VERSION):
                raise ValueError(f"version {version}, expected {VERSION}")
            out[path.stem] = Calibration(**raw)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{path}: not a calibration of this podbench ({e}); delete it to calibrate again"
            ) from e
    return out
