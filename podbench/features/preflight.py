"""Checks before computing: everything a build or a training will need, checked before any
store is built or lane trained, so that a bad file or value fails in seconds with one line.

- inputs: the dataset root, every file the stages read (present, readable, not empty), the
  electrode selection and the recordings' headers, the task's events;
- values that depend on the data (`Task.check_data`: folds against events, PCA dimension and
  layer against the embeddings; a preprocessor's `num_average_samples` against the window);
- outputs: output.stores (when a store is to be built) and output.results (when training)
  is a folder or can be created, is writable and has the free space the build needs (an
  estimate, said in the error); a store root holding every store needed may be read-only.
Nothing is written: writability is probed with a temporary file that is removed at once.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from podbench import registry
from podbench.config import Config
from podbench.errors import ConfigError, DataError, OutputError
from podbench.features.context import Resolved, resolve
from podbench.features.store import COMPLETE, human_bytes

RESULTS_BYTES = 256e6  # room one results folder may need (checkpoints of every lane)
_checked: set[tuple] = set()


def preflight(cfgs: Sequence[Config | Resolved], results: bool = False) -> None:
    """Check the inputs of every config first, then the output roots; raise the first problem."""
    from podbench.features.keys import canonical_json

    def config(c):
        return c.cfg if isinstance(c, Resolved) else c

    todo = [c for c in cfgs if (canonical_json(config(c).to_dict()), results) not in _checked]
    missing: dict[tuple, tuple[Path, float]] = {}  # keys to build -> (store root, bytes)
    for c in todo:
        missing.update(check_inputs(resolve_checked(c)))
    need: dict[Path, float] = {}
    for root, nbytes in missing.values():
        need[root] = need.get(root, 0.0) + nbytes
    if results:
        for root in {Path(config(c).output.results).expanduser() for c in todo}:
            need[root] = need.get(root, 0.0) + RESULTS_BYTES
    for cfg in map(config, todo):
        stores = Path(cfg.output.stores).expanduser()
        if stores in need:
            check_root(stores, "output.stores", need)
        if results:
            check_root(Path(cfg.output.results).expanduser(), "output.results", need)
    for c in todo:  # a check with the results root covers the one without it
        _checked.update({(canonical_json(config(c).to_dict()), r) for r in {results, False}})


def resolve_checked(cfg: Config | Resolved) -> Resolved:
    """`resolve`, once the dataset root is known to be a folder."""
    if not isinstance(cfg, Resolved):
        root = Path(cfg.data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root = {cfg.data.root!r}: no such folder")
    return resolve(cfg)


def check_readable(path: Path, what: str) -> None:
    """An input file: present, a file, readable and not empty."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what}: missing file {path}")
    if not path.is_file():
        raise DataError(f"{what}: {path} is not a file")
    try:
        with open(path, "rb") as handle:
            first = handle.read(1)
    except OSError as exc:
        raise DataError(f"{what}: cannot read {path} ({exc.strerror})") from None
    if not first:
        raise DataError(f"{what}: {path} is empty")


def check_inputs(ctx: Resolved) -> dict[tuple, tuple[Path, float]]:
    """Check what a resolved config reads; return {keys of its stores still to build: (store
    root, bytes they need)}, empty when every store is built."""
    from podbench.data.recordings import open_recordings
    from podbench.features.epochs import geometry
    from podbench.features.keys import epochs_sources, stage_specs

    cfg, dataset, task = ctx.cfg, ctx.dataset, ctx.task
    pre = registry.preprocessors.spec(cfg.preprocess.name)
    files = [*epochs_sources(ctx), *task.target_sources(cfg, dataset), *pre.sources(cfg)]
    for path in dict.fromkeys(files):
        check_readable(path, f"{cfg.task} inputs")
    events = task.events(cfg, dataset)
    task.check_data(cfg, dataset, events)
    specs = stage_specs(ctx)
    stores = Path(cfg.output.stores).expanduser()
    absent = tuple(
        specs[stage].key
        for stage in ("epochs", "targets", "latents")
        if not (stores / stage / specs[stage].key / COMPLETE).is_file()
    )
    if not absent:
        return {}  # every store is built: the store root may even be read-only
    recordings = open_recordings(dataset, ctx.subjects, ctx.electrodes, cfg.data.signal)
    geo = geometry(cfg, recordings[0].sfreq)
    check_block(cfg, geo.window, geo.sfreq)
    if specs["epochs"].key not in absent:
        return {absent: (stores, 0.0)}
    channels = sum(len(r.channels) for r in recordings)
    epochs = float(len(events) * channels * geo.span * 4)
    block = cfg.preprocess.params.get("num_average_samples", 1)  # None: one value per window
    per_window = len(geo.lags) * geo.window / (geo.window if block is None else max(1, block))
    return {absent: (stores, epochs * (1 + per_window / geo.span))}


def check_block(cfg: Config, window: int, sfreq: float) -> None:
    """`preprocess.params.num_average_samples` (the bin of the block preprocessors) fits in
    one lag window of `window` samples."""
    block = cfg.preprocess.params.get("num_average_samples")
    if block is not None and block > window:
        raise ConfigError(
            f"preprocess.params.num_average_samples = {block}: larger than a lag "
            f"window ({window} samples: data.window_width = "
            f"{cfg.data.window_width:g} s at {sfreq:g} Hz)"
        )


def check_root(root: Path, key: str, need: dict[Path, float]) -> None:
    """An output root: a folder (or creatable), writable, with the free space `need` says."""
    existing = root
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{key} = {str(root)!r}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".podbench-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"{key} = {str(root)!r}: cannot write in {existing} ({exc.strerror})"
        ) from None
    wanted = need.get(root, 0.0)
    free = shutil.disk_usage(existing).free
    if wanted > free:
        raise OutputError(
            f"{key} = {str(root)!r}: needs about {human_bytes(wanted)} free, "
            f"{existing} has {human_bytes(free)}"
        )
