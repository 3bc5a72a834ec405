"""A program's cost on this machine, measured at its own shapes: a few of its lanes trained for
a few epochs (a closed-form decoder: fitted), each epoch timed, kept in the results root for the
plan (`podbench benchmark --plan --calibrate`).

Costs scaled from runs of other shapes are only as good as the scaling: a program of seconds is
mostly compilation and fixed costs, so a rate measured on small runs overstates a large
program many times over. A calibration times the program's own epoch once it is compiled, on
the program's own events and inputs; it builds the program's stores first (the run needs
them anyway, and finds them built). What it cannot tell is how many epochs early stopping
will train: the plan takes that from earlier runs of the task, else every lane's epoch budget.

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
VERSION = 2  # 2: memory; a version-1 calibration (times only) is still read


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A program's measured cost on one machine."""

    lane_s: float  # seconds per lane-epoch once compiled (closed form: per lane's fit)
    fixed_s: float  # the rest of the timed program: compiling, setting up, predicting
    lanes: int  # lanes timed
    epochs: int  # epochs each timed lane trained (0: closed form)
    hardware: dict  # podbench.train.results.hardware() of the machine
    memory_base: float | None = None  # RSS before the program, less its inputs (None: a
    # version-1 calibration, which measured no memory)
    memory_temp: float | None = None  # the timed lanes' peak RSS beyond the process before
    # them and what those lanes hold
    lane_bytes: float | None = None  # what each lane holds (LaneResults.lane_bytes)

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
    cfg: Config, epochs: int = 3, lanes: int = 4, log: Callable[[str], None] = print
) -> Calibration:
    """Time a config's program at its own shapes.

    `lanes` of its lanes, spread over its lags and folds (all of them on an accelerator,
    where lanes train side by side), train `epochs` epochs each without early stopping (a
    closed-form decoder: one fit each), after its stores are built where they are missing.

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

    Returns
    -------
    Calibration
        Seconds per lane-epoch (closed form: per lane's fit) and the program's fixed seconds
        (compiling, setting up, predicting), with the lanes and epochs timed, the machine, and
        the memory the timed lanes needed (`Calibration.peak_bytes`).
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
    width = n if lane_batch(cfg) is None else min(n, max(1, lanes))
    rows = np.unique(np.linspace(0, n - 1, width).round().astype(int))
    closed = registry.models.spec(cfg.model.name).closed_form
    log(
        f"calibrating {cfg.model.name} on {cfg.task}: {len(rows)} of its "
        f"{n} lanes, " + ("one fit each" if closed else f"{epochs} epochs each")
    )
    timed = dataclasses.replace(
        cfg,
        training=dataclasses.replace(
            cfg.training, epochs=epochs, patience=epochs, snapshot_every_s=None
        ),
    )
    release_free_memory()  # the process's RSS before this program, not earlier programs' peak
    with PeakRss() as rss:
        res = fit_program(timed, laid, laid.table.take(rows), log)
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
    # per chunk of lanes: an epoch once compiled (the first compiles; no lane stops early)
    steady = [float(np.median(chunk[1:])) for chunk in res.epoch_seconds]
    fixed = res.seconds - sum(len(c) * s for c, s in zip(res.epoch_seconds, steady))
    return Calibration(
        sum(steady) / len(rows), max(0.0, fixed), len(rows), epochs, hardware(), **memory
    )


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
            if (version := raw.pop("version", None)) not in (1, VERSION):
                raise ValueError(f"version {version}, expected {VERSION}")
            out[path.stem] = Calibration(**raw)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{path}: not a calibration of this podbench ({e}); delete it to calibrate again"
            ) from e
    return out
