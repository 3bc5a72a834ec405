"""`podbench train`: build or reuse the feature stores, train every lane, evaluate, write results.

`train(cfg)` is a plain function of a config and the store/result roots, so a cluster engine
can run it on any node that sees them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from podbench import registry
from podbench.config import Config
from podbench.data.dataset import normalise_label
from podbench.errors import ConfigError
from podbench.features.build import Features, build_features
from podbench.train.folds import Fold, folds_for
from podbench.train.lanes import LanePoint, LaneTable, key_data, lay_out, padded
from podbench.train.tasks import Task, task_for


@dataclass
class RunInputs:
    """Host arrays of a run, aligned on the words present in both latents and targets."""

    words: np.ndarray  # word_idx, time order
    labels: np.ndarray  # normalised word labels
    x: np.ndarray  # [N, n_lag, *input_shape] float32
    y: np.ndarray  # [n_yfold, N, D] float32
    lags: list[int]
    folds: list[Fold]
    norm_mean: np.ndarray  # [n_nfold, n_lag, *stat_shape]
    norm_std: np.ndarray
    standardise: str | None


def _fold_standardisation(x: np.ndarray, folds: list[Fold]) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold, per-lag, per-channel statistics over the training rows (and time bins)."""
    means, stds = [], []
    for fold in folds:
        xt = x[fold.train].astype(np.float64)
        axes = (0, 3) if xt.ndim == 4 else (0,)
        mean = xt.mean(axis=axes)
        std = xt.std(axis=axes)
        std[std < 1e-12] = 1.0
        means.append(mean)
        stds.append(std)
    return np.stack(means), np.stack(stds)


def prepare(cfg: Config, features: Features) -> RunInputs:
    """Load latents and targets, align them, make folds and standardisation statistics."""
    latents = features.open("latents")
    targets = features.open("targets")
    common = np.intersect1d(latents["word"].values, targets["word"].values)
    if len(common) == 0:
        raise ConfigError("the latents and targets stores share no word")
    lat = latents.sel(word=common)
    x = lat["latent"].values.astype(np.float32)
    tg = targets["target"].sel(word=common)
    y = tg.values.astype(np.float32)
    y = y[None] if "fold" not in tg.dims else y
    labels = np.array([normalise_label(str(w), cfg.data.label_normalisation)
                       for w in lat["label"].values], dtype=object)
    folds = folds_for(cfg, labels)
    if cfg.training.shuffle_targets:
        perm = np.random.default_rng(cfg.training.seed).permutation(len(common))
        y = y[:, perm]
    standardise = latents.attrs.get("standardise")
    stat_shape = (1,) * (x.ndim - 3)
    if standardise == "all":
        mean = latents["norm_mean"].values[None]
        std = latents["norm_std"].values[None]
    elif standardise == "train":
        mean, std = _fold_standardisation(x, folds)
    else:
        mean = np.zeros((1, x.shape[1], *x.shape[2:3]))
        std = np.ones_like(mean)
    mean = mean.reshape(*mean.shape, *stat_shape).astype(np.float32)
    std = std.reshape(*std.shape, *stat_shape).astype(np.float32)
    return RunInputs(common, labels, x, y, [int(v) for v in lat["lag"].values], folds,
                     mean, std, standardise)


@dataclass
class ProgramInputs:
    """What one compiled program trains on: the inputs of its points merged on the union of
    their words. Points of one targets store share an entry; several entries arise when tasks
    (or target settings) with equal program shapes train together."""

    x: np.ndarray  # [N, n_lag, *input_shape] latents of the union of the entries' words
    y: np.ndarray  # [n_sets, N, D] every entry's target sets (zeros where it has no target)
    norm_mean: np.ndarray  # [n_stats, n_lag, *stat_shape]
    norm_std: np.ndarray
    entries: list[RunInputs]
    rows: list[np.ndarray]  # per entry: the rows of its words in x
    y_base: list[int]  # per entry: index of its first target set in y
    norm_base: list[int]  # per entry: index of its first statistics set
    entry_of: list[int] | None = None  # per point: its entry (None: entry 0 for all)

    def entry(self, point: int) -> int:
        return 0 if self.entry_of is None else self.entry_of[point]


def merge_inputs(entries: list[RunInputs], entry_of: list[int] | None = None) -> ProgramInputs:
    """One program's arrays from its entries' inputs (shared, not copied, for one entry)."""
    if len(entries) == 1:
        only = entries[0]
        return ProgramInputs(only.x, only.y, only.norm_mean, only.norm_std, entries,
                             [np.arange(len(only.words))], [0], [0], entry_of)
    if len({tuple(e.lags) for e in entries}) > 1 or len({e.y.shape[-1] for e in entries}) > 1:
        raise ConfigError("tasks packed in one program need the same lags and target width")
    words = entries[0].words
    for e in entries[1:]:
        words = np.union1d(words, e.words)
    rows = [np.searchsorted(words, e.words) for e in entries]
    x = np.empty((len(words), *entries[0].x.shape[1:]), np.float32)
    y = np.zeros((sum(e.y.shape[0] for e in entries), len(words), entries[0].y.shape[-1]),
                 np.float32)
    y_base = np.cumsum([0] + [e.y.shape[0] for e in entries])[:-1].tolist()
    for e, r, base in zip(entries, rows, y_base):
        x[r] = e.x
        y[base:base + e.y.shape[0], r] = e.y
    norm_base = np.cumsum([0] + [e.norm_mean.shape[0] for e in entries])[:-1].tolist()
    return ProgramInputs(x, y, np.concatenate([e.norm_mean for e in entries]),
                         np.concatenate([e.norm_std for e in entries]), entries, rows, y_base,
                         norm_base, entry_of)


def as_program(inputs: RunInputs | ProgramInputs) -> ProgramInputs:
    return inputs if isinstance(inputs, ProgramInputs) else merge_inputs([inputs])


@dataclass
class LaneResults:
    """What training leaves per lane: predictions for every word and the training record."""

    table: LaneTable
    group: int
    program: ProgramInputs
    preds: np.ndarray  # [L, G, N, D] best-parameter predictions for every row of program.x
    epochs: np.ndarray  # [L] epochs trained
    best_epoch: np.ndarray  # [L]
    best_score: np.ndarray  # [L] validation early-stopping metric at the best epoch
    state: dict  # host pytree of best parameters and statistics, leading axis L
    seconds: float


def lane_inputs(table: LaneTable, inputs: RunInputs | ProgramInputs):
    """The trainer's per-lane arrays (numpy) for a lane table: each lane's training and
    validation rows, target set and statistics set come from its point's entry."""
    from podbench.train.program import Lanes

    program = as_program(inputs)
    folds = [{f.number: f for f in e.folds} for e in program.entries]
    train, val, yset, nset = [], [], [], []
    for point, number in zip(table.point.tolist(), table.fold.tolist()):
        e = program.entry(point)
        entry, fold = program.entries[e], folds[e][number]
        train.append(program.rows[e][fold.train])
        val.append(program.rows[e][fold.val])
        yset.append(program.y_base[e] + (number - 1 if entry.y.shape[0] > 1 else 0))
        nset.append(program.norm_base[e] + (number - 1 if entry.norm_mean.shape[0] > 1 else 0))
    train_idx, train_n = padded(train)
    val_idx, val_n = padded(val)
    return Lanes(
        key=np.stack([key_data(int(s)) for s in table.seed]),
        lag=table.lag_index.astype(np.int32),
        yfold=np.asarray(yset, np.int32), nfold=np.asarray(nset, np.int32),
        lr=table.lr, weight_decay=table.weight_decay, dropout=table.dropout,
        train_idx=train_idx, train_n=train_n, val_idx=val_idx, val_n=val_n)


def auto_chunk(n_lanes: int, per_lane_bytes: float, n_devices: int) -> int:
    """Lanes per compiled chunk that fit in about half of the device (or host) memory."""
    import jax

    try:
        limit = jax.devices()[0].memory_stats()["bytes_limit"]
    except (TypeError, KeyError, AttributeError):
        import psutil

        limit = psutil.virtual_memory().available
    chunk = max(1, int(0.5 * limit // max(per_lane_bytes, 1)))
    chunk = min(chunk, n_lanes)
    return max(n_devices, chunk // n_devices * n_devices)


def _model_builder(cfg: Config, input_shape: tuple, output_dim: int, head: str):
    entry = registry.models.entry(cfg.model.name, "model.name")
    dims = entry.meta.get("input_dims")
    if dims is not None and len(dims) != len(input_shape):
        raise ConfigError(f"model.name = {cfg.model.name!r} takes latents with dims {dims}; "
                          f"preprocess.name = {cfg.preprocess.name!r} gives {len(input_shape)}-d "
                          "inputs per lag")
    return lambda rngs: entry.obj(cfg.model.params, input_shape=input_shape,
                                  output_dim=output_dim, head=head, rngs=rngs)


def lane_batch(cfg: Config) -> int | None:
    """Lanes vmapped together on one device: all (None) on accelerators; one at a time on
    CPU, where vmapped small convolutions run slower than a sequence of single-lane steps."""
    import jax

    if isinstance(cfg.training.lane_batch, int):
        return cfg.training.lane_batch
    return 1 if jax.devices()[0].platform == "cpu" else None


def make_program(cfg: Config, task: Task, inputs: RunInputs | ProgramInputs, lanes_np,
                 group: int, mesh=None):
    """The compiled lane program for this run's model, task and padded fold sizes."""
    from podbench.train.program import Program

    build = _model_builder(cfg, inputs.x.shape[2:], task.output_dim(inputs.y), task.head)
    return Program(build, group=group, batch_size=cfg.training.batch_size,
                   patience=cfg.training.patience, optimizer_name=cfg.training.optimizer,
                   loss_fn=lambda p, y: task.loss(p, y, cfg), stop_fn=task.stop_value,
                   stop_mode=task.stop_mode, n_train_max=lanes_np.train_idx.shape[1],
                   n_val_max=lanes_np.val_idx.shape[1], lane_batch=lane_batch(cfg), mesh=mesh)


def train_lanes(cfg: Config, task: Task, inputs: RunInputs | ProgramInputs, table: LaneTable,
                group: int, log: Callable[[str], None] = print) -> LaneResults:
    """Train every lane of `table` in chunks of one compiled program; predict all words."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from podbench.train.program import Data
    from podbench.train.sharding import LaneSharding

    t0 = time.perf_counter()
    inputs = as_program(inputs)
    input_shape = inputs.x.shape[2:]
    lanes_np = lane_inputs(table, inputs)
    shard = LaneSharding()
    program = make_program(cfg, task, inputs, lanes_np, group, shard.mesh)
    build = program.build_model
    data = shard.replicate(Data(jnp.asarray(inputs.x), jnp.asarray(inputs.y),
                                jnp.asarray(inputs.norm_mean), jnp.asarray(inputs.norm_std)))
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(
        nnx.state(build(nnx.Rngs(0)), nnx.Param)))
    per_lane = group * (n_params * 4 * 8 + cfg.training.batch_size * 4 * 64 * math.prod(input_shape))
    chunk = (cfg.training.lane_chunk if isinstance(cfg.training.lane_chunk, int)
             else auto_chunk(len(table), per_lane, shard.n_devices))
    n_words = inputs.x.shape[0]
    all_rows = jnp.arange(n_words, dtype=jnp.int32)
    preds, states, records = [], [], []
    n_chunks = math.ceil(len(table) / chunk)
    for c in range(n_chunks):
        real = np.arange(c * chunk, min((c + 1) * chunk, len(table)))
        # Pad to a multiple of the devices with copies of the chunk's first lane.
        pick = np.concatenate([real, np.full((-len(real)) % shard.n_devices, real[0])])
        sub = jax.tree.map(lambda a: a[pick], lanes_np)
        state = train_chunk(program, sub, data, cfg.training.epochs, shard,
                            f"chunk {c + 1}/{n_chunks}" if n_chunks > 1 else "")
        keep = slice(0, len(real))
        preds.append(np.asarray(program.predict(state, shard.lanes(sub), data, all_rows))[keep])
        records.append([np.asarray(a)[keep] for a in (state.epochs, state.best_epoch,
                                                      state.best_score)])
        states.append(jax.tree.map(lambda a: np.asarray(a)[keep],
                                   {"params": state.best_params, "rest": state.best_rest}))
    epochs, best_epoch, best_score = (np.concatenate(r) for r in zip(*records))
    sign = 1.0 if task.stop_mode == "max" else -1.0
    return LaneResults(table, group, inputs, np.concatenate(preds), epochs, best_epoch,
                       sign * best_score, jax.tree.map(lambda *a: np.concatenate(a), *states),
                       time.perf_counter() - t0)


def train_chunk(program, lanes_np, data, max_epochs: int, shard, label: str):
    """Train one chunk of lanes to completion. Where lanes are vmapped together, the working
    set is compacted as lanes stop (a narrower program, compiled once per width); where they
    run one at a time, a stopped lane already skips its work and compaction would only add
    compilations."""
    import jax
    from tqdm.auto import tqdm

    n = len(lanes_np.lr)
    working = program.init(shard.lanes(lanes_np))
    work_lanes = shard.lanes(lanes_np)
    bank, ids = None, np.arange(n)  # the bank holds every lane once the working set shrinks
    bar = tqdm(total=max_epochs, desc=f"training {n} lanes {label}".rstrip(), unit="epoch",
               leave=False)
    for epoch in range(max_epochs):
        working = program.epoch(working, work_lanes, data, epoch)
        stopped = np.asarray(working.stopped)[: len(ids)]
        active = int((~stopped).sum())
        bar.update(1)
        bar.set_postfix(active=f"{active}/{n}")
        if active == 0:
            break
        width = shard.width(active)
        if program.lane_batch != 1 and width <= len(working.stopped) // 2:
            bank = working if bank is None else _scatter(bank, ids, working)
            keep = ids[~stopped]
            pick = np.concatenate([keep, np.full(width - len(keep), ids[stopped][0])])
            working = shard.lanes(jax.tree.map(lambda a: a[pick], bank))
            work_lanes = shard.lanes(jax.tree.map(lambda a: a[pick], lanes_np))
            ids = keep
    bar.close()
    return working if bank is None else _scatter(bank, ids, working)


def _scatter(bank, ids: np.ndarray, working):
    """Write the first len(ids) lanes of the working set back into the bank."""
    import jax

    n = len(ids)
    return jax.tree.map(lambda b, w: b.at[ids].set(w[:n]), bank, working)



def train_closed_form(cfg: Config, task: Task, inputs: RunInputs | ProgramInputs,
                      table: LaneTable, fit_predict) -> LaneResults:
    """Closed-form decoders (ridge): one solve per lane, no epochs."""
    import jax
    import jax.numpy as jnp

    from podbench.train.program import Data, closed_form

    t0 = time.perf_counter()
    inputs = as_program(inputs)
    fit, predict = fit_predict
    data = Data(jnp.asarray(inputs.x), jnp.asarray(inputs.y), jnp.asarray(inputs.norm_mean),
                jnp.asarray(inputs.norm_std))
    lanes = jax.device_put(lane_inputs(table, inputs))
    alphas = jnp.asarray(cfg.model.params["alphas"], jnp.float32)
    sign = 1.0 if task.stop_mode == "max" else -1.0
    preds, scores, chosen = jax.jit(lambda ln: closed_form(fit, predict, ln, data, alphas,
                                                           task.stop_value, sign))(lanes)
    zeros = np.zeros(len(table), np.int64)
    return LaneResults(table, 1, inputs, np.asarray(preds), zeros, zeros, np.asarray(scores),
                       {"alpha": np.asarray(chosen)}, time.perf_counter() - t0)


@dataclass
class RunResult:
    run_dir: Path
    performance: object  # pandas DataFrame: the lag_performance table
    skipped: bool


PER_LANE = ("training.lr", "training.weight_decay", "model.params.dropout", "training.seed")


def per_lane_fields(cfg: Config) -> tuple[str, ...]:
    """Fields that can differ between points trained as lanes of one program.

    The seed is per lane unless it also decides the folds (zero-shot) or the target shuffle.
    """
    seed_shapes_data = cfg.training.fold_type == "zero_shot" or cfg.training.shuffle_targets
    return tuple(f for f in PER_LANE if not (f == "training.seed" and seed_shapes_data))


def program_signature(cfg: Config) -> str:
    """Configs with equal signatures share epochs, latents, shapes and schedule: one program.

    The task enters only through what the compiled program takes from it (`program_key`) and
    its events, so tasks or target settings with equal shapes pack together; each point keeps
    its own targets."""
    from podbench.keys import canonical_json

    task = task_for(cfg)
    raw = cfg.to_dict()
    for name in ("trial_name", "task", "task_params", "targets"):
        raw.pop(name)
    raw["task_program"] = task.program_key(cfg)
    raw["events"] = task.events_fragment(cfg)
    if not registry.models.entry(cfg.model.name).meta.get("closed_form", False):
        for dotted in per_lane_fields(cfg):
            *parents, leaf = dotted.split(".")
            node = raw
            for part in parents:
                node = node[part]
            node.pop(leaf, None)
    return canonical_json(raw)


def run_dir_of(cfg: Config, training_key: str) -> Path:
    from podbench.keys import SHORT

    return Path(cfg.output.results).expanduser() / cfg.trial_name / training_key[:SHORT]


def train(cfg: Config, force: bool = False,
          log: Callable[[str], None] = print) -> RunResult | list[RunResult]:
    """Build or reuse the stores, train all lanes, evaluate, write results/<trial>/<run-id>.

    A config that lists several tasks gives one result per task, in its order; tasks whose
    programs have equal shapes train as lanes of one program, over one epochs/latents build.
    """
    if not cfg.several_tasks:
        return train_points([cfg], force=force, log=log)[0]
    from podbench.train.sweep import group_programs

    configs = cfg.task_configs()
    out: list[RunResult | None] = [None] * len(configs)
    programs = group_programs(configs)
    log(f"{len(configs)} tasks in {len(programs)} program(s): " + "; ".join(
        " + ".join(c.task for c in p.configs) for p in programs))
    for program in programs:
        for i, result in zip(program.indices, train_points(program.configs, force, log)):
            out[i] = result
    return out


def train_points(cfgs: list[Config], force: bool = False,
                 log: Callable[[str], None] = print) -> list[RunResult]:
    """Train configs that share one program signature together, as lanes of one program.

    Each config (a sweep point, or a task) gets its own results folder; points whose results
    are complete are skipped unless `force`.
    """
    import pandas as pd

    from podbench.keys import stage_keys
    from podbench.train import results

    if len({program_signature(c) for c in cfgs}) != 1:
        raise ValueError("train_points needs configs with one program signature")
    base = cfgs[0]
    t0 = time.perf_counter()
    keys = [stage_keys(c) for c in cfgs]
    features: dict[str, Features] = {}  # one per targets store
    for c, k in zip(cfgs, keys):
        if k["targets"] not in features:
            features[k["targets"]] = build_features(c, log=log)
    dirs = [run_dir_of(c, k["training"]) for c, k in zip(cfgs, keys)]
    out: list[RunResult | None] = [None] * len(cfgs)
    pending = []
    for i, run_dir in enumerate(dirs):
        if results.is_complete(run_dir) and not force:
            log(f"results already complete: {run_dir} (use --force to train again)")
            out[i] = RunResult(run_dir, pd.read_csv(run_dir / "lag_performance.csv"), True)
        else:
            pending.append(i)
    if not pending:
        return out
    task = task_for(base)
    t1 = time.perf_counter()
    entries: dict[str, int] = {}  # targets key -> entry
    inputs: list[RunInputs] = []
    for i in pending:
        if keys[i]["targets"] not in entries:
            entries[keys[i]["targets"]] = len(inputs)
            inputs.append(prepare(cfgs[i], features[keys[i]["targets"]]))
    entry_of = [entries[keys[i]["targets"]] for i in pending]
    program = merge_inputs(inputs, entry_of)
    entry = registry.models.entry(base.model.name, "model.name")
    closed = entry.meta.get("closed_form", False)
    members = 1 if closed else base.model.members
    group = members if base.model.ensemble == "joint" and not closed else 1
    table = lay_out(inputs[0].lags, inputs[0].folds, members, group,
                    [lane_point(cfgs[i]) for i in pending])
    log(f"training {len(table)} lanes ({len(pending)} point(s) x {len(inputs[0].lags)} lags x "
        f"{len(inputs[0].folds)} folds x {members // group} member lanes of {group}) on "
        f"{len(program.x)} words, inputs {tuple(program.x.shape[2:])}")
    if closed:
        res = train_closed_form(base, task, program, table, entry.obj(base.model.params))
    else:
        res = train_lanes(base, task, program, table, group, log)
    fold_numbers = [f.number for f in inputs[0].folds]
    for point, i in enumerate(pending):
        t2 = time.perf_counter()
        point_task = task_for(cfgs[i])
        long = results.score_lanes(cfgs[i], point_task, inputs[entry_of[point]], res, point)
        perf = results.lag_performance(long, fold_numbers)
        timings = {"features": round(t1 - t0, 3), "training": round(res.seconds, 3),
                   "evaluation": round(time.perf_counter() - t2, 3),
                   "points_in_program": len(pending)}
        results.write_run(dirs[i], cfgs[i], keys[i], long, perf, point_task, res, point,
                          timings, fold_numbers)
        log(summary_table(perf, point_task))
        log(f"results: {dirs[i]}")
        out[i] = RunResult(dirs[i], perf, False)
    return out


def lane_point(cfg: Config) -> LanePoint:
    """The per-lane hyper-parameters of one config."""
    t = cfg.training
    return LanePoint(t.seed, t.lr, t.weight_decay, float(cfg.model.params.get("dropout", 0.0)))


def summary_table(perf, task: Task) -> str:
    """Closing table: the headline metric (higher is better) by lag, mean ± std over folds."""
    key = task.headline
    lines = [f"{'lag (ms)':>9}  {key}"]
    best = perf[f"{key}_mean"].idxmax()
    for i, row in perf.iterrows():
        mark = "  <- best" if i == best else ""
        lines.append(f"{int(row['lags']):>9}  {row[f'{key}_mean']:.4f} ± {row[f'{key}_std']:.4f}{mark}")
    return "\n".join(lines)
