"""podbench's lane trainer against a faithful PyTorch loop of the reference, side by side.

Both train the reference's protocol on the same latents and targets stores: a 10-member
PITOM ensemble trained jointly on the mean of its outputs, AdamW (lr 1e-3, weight decay
1e-4), batch 32, early stopping on validation cosine; the baseline (benchmarks/reference_loop.py)
runs lags x folds one after another in eager PyTorch with per-batch metrics, podbench runs
every (lag, fold) lane in one compiled JAX program. Runs alternate (baseline, podbench, ...)
so a noisy machine affects both alike; podbench's time includes compilation.

    python benchmarks/trainer_speed.py --quick          # ~1 minute: 2 lags, 5 folds, 10 members
    python benchmarks/trainer_speed.py [--data DIR]     # standard: full stand-in, 160 electrodes,
                                                        # 10 lags, <= 100 epochs, patience 10
    python benchmarks/trainer_speed.py --epochs 3       # the standard shapes, 3 epochs per lane
    python benchmarks/trainer_speed.py --standard-lanes 10   # the standard config (<= 100
                                                        # epochs, patience 10), 10 (lag, fold) lanes
    python benchmarks/trainer_speed.py --scaling        # time per lane-epoch and peak memory as
                                                        # lanes, words and electrodes grow
    python benchmarks/trainer_speed.py --profile        # where one lane's epoch goes (JAX's
                                                        # profiler, by source file and line)

The last line printed is `ratio=<baseline / podbench, median over repeats>` (end to end); the
scaling and profile modes print a table instead.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference_loop import count_flops_per_step, run_reference  # noqa: E402

from podbench import api, config  # noqa: E402
from podbench.data.synth import GROUND_TRUTH, synthesize  # noqa: E402
from podbench.tasks import task_for  # noqa: E402
from podbench.train.execute import (  # noqa: E402
    auto_chunk,
    compile_program,
    device_memory,
    memory_estimate,
    train_lanes,
)
from podbench.train.inputs import lane_inputs, prepare  # noqa: E402
from podbench.train.lanes import lane_point, lay_out  # noqa: E402
from podbench.train.results import cpu_model  # noqa: E402

N_ELECTRODES = 160


def machine() -> str:
    import os

    import jax

    dev = jax.devices()[0]
    if dev.platform != "cpu":
        return f"{dev.device_kind} ({dev.platform}) + {cpu_model()}"
    return f"{cpu_model()}, {os.cpu_count()} cores"


def ensure_standin(path: Path, quick: bool) -> Path:
    """The stand-in to benchmark on (made if absent): full size, or 3 subjects x 600 s."""
    if not (path / GROUND_TRUTH).is_file():
        print(f"making the stand-in at {path} ...", flush=True)
        if quick:
            synthesize(path, subjects=[3, 6, 9], duration=600)
        else:
            synthesize(path)
    return path


def electrode_csv(root: Path, n: int, out: Path) -> Path:
    """The ground truth's responsive channels, cut or topped up with other good channels to n
    (like the real 160 significant electrodes)."""
    from podbench.data.dataset import Dataset
    from podbench.data.recordings import open_recordings

    truth = json.loads((root / GROUND_TRUTH).read_text())
    picked = list(truth["responsive_channels"])[:n]
    ds = Dataset(root)
    if len(picked) < n:
        chosen = set(picked)
        for rec in open_recordings(ds, ds.check_subjects(truth["subjects"]), None):
            for name in rec.channels:
                label = f"sub-{rec.subject:02d}:{name}"
                if len(picked) < n and label not in chosen:
                    picked.append(label)
    nyu = {s: n_id for n_id, s in ds.nyu_to_subject().items()}
    lines = ["subject,elec"] + [f"{nyu[int(p[4:6])]},{p.split(':', 1)[1]}" for p in picked]
    out.write_text("\n".join(lines) + "\n")
    return out


def bench_config(
    root: Path, csv: Path, work: Path, quick: bool, epochs: int | None
) -> config.Config:
    lags = (
        {"min": 0, "max": 400, "step": 200} if quick else {"min": -1000, "max": 1000, "step": 200}
    )
    return config.from_dict(
        {
            "trial_name": "trainer_speed",
            "data": {"root": str(root), "electrodes": str(csv), "lags": lags},
            "targets": {"kind": "gpt2", "layer": 24, "pca_dim": 50},
            "model": {"name": "pitom", "members": 10, "ensemble": "joint"},
            "training": {
                "epochs": epochs or (3 if quick else 100),
                "patience": 10,
                "batch_size": 32,
                "lr": 1e-3,
                "weight_decay": 1e-4,
                "optimizer": "adamw",
            },
            "output": {"stores": str(work / "stores"), "results": str(work / "results")},
        }
    )


def dense_matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """This process's dense float32 matmul rate (FLOP/s) through JAX on the same device."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


def podbench_flops(inputs, res, members: int) -> float:
    """Training + validation FLOPs of the epochs podbench actually ran (same counting rule as
    the baseline: convolutions and dense layers)."""
    n_ch, n_t = inputs.x.shape[2:]
    d = inputs.y.shape[-1]
    per_step = count_flops_per_step(n_ch, n_t, d, members, 32)
    forward_per_example = count_flops_per_step(n_ch, n_t, d, members, 1, backward=False)
    folds = {f.number: f for f in inputs.folds}
    total = 0.0
    for lane, epochs in enumerate(res.epochs.tolist()):
        fold = folds[int(res.table.fold[lane])]
        steps = -(-len(fold.train) // 32)
        total += epochs * (steps * per_step + len(fold.val) * forward_per_example)
    return total


def subset(table, n: int):
    """The first n lanes of a lane table (lag-major, then fold)."""
    from dataclasses import replace

    return replace(table, **{k: getattr(table, k)[:n] for k in table.__dataclass_fields__})


def standard_lanes(cfg, inputs, task, table, members: int, n: int) -> None:
    """The early-stopped standard config on the first n (lag, fold) lanes, both sides, once."""
    sub = subset(table, n)
    pairs = list(zip(sub.lag_ms.tolist(), sub.fold.tolist()))
    t = cfg.training
    base = run_reference(
        inputs,
        members=members,
        epochs=t.epochs,
        patience=t.patience,
        pairs=pairs,
        log=lambda s: None,
    )
    t0 = time.perf_counter()
    res = train_lanes(cfg, task, inputs, sub, members, log=lambda s: None)
    seconds = time.perf_counter() - t0
    for name, secs, epochs in (
        ("baseline (PyTorch, sequential)", base.seconds, base.epochs),
        ("podbench (JAX lanes)", seconds, res.epochs.tolist()),
    ):
        print(
            f"{name:31s} {secs:8.1f} s end to end, {len(epochs)} lanes, {sum(epochs)} epochs "
            f"(per lane {min(epochs)}-{max(epochs)}), {secs / sum(epochs):.3f} s per lane-epoch"
        )
    per_epoch = (base.seconds / sum(base.epochs)) / (seconds / res.epochs.sum())
    print(f"ratio per lane-epoch: {per_epoch:.2f}; end to end: {base.seconds / seconds:.2f}")
    print(f"ratio={base.seconds / seconds:.2f}")


def scaling_point(
    cfg,
    inputs,
    task,
    members: int,
    lanes: int,
    words: int,
    electrodes: int,
    epochs: int,
    trace: Path | None = None,
) -> dict:
    """Time per lane-epoch (after a first, compiling epoch) and peak memory of `lanes` lanes on
    the first `words` words and `electrodes` electrodes; the memory estimate that chooses lane
    chunks, for the chunk it chose (only that chunk is trained). With `trace`, the timed epochs
    run under JAX's profiler (trace written there) and the compiled epoch's HLO is returned."""
    import resource
    from dataclasses import replace

    import jax
    import jax.numpy as jnp

    from podbench.tasks.folds import sequential_folds
    from podbench.train.lanes import LanePoint
    from podbench.train.program import Data
    from podbench.train.sharding import LaneSharding

    folds = sequential_folds(words, len(inputs.folds), cfg.training.val_fraction)
    cut = replace(
        inputs,
        words=inputs.words[:words],
        labels=inputs.labels[:words],
        x=np.ascontiguousarray(inputs.x[:words, :, :electrodes]),
        y=np.ascontiguousarray(inputs.y[:, :words]),
        folds=folds,
        norm_mean=inputs.norm_mean[:, :, :electrodes],
        norm_std=inputs.norm_std[:, :, :electrodes],
    )
    t = cfg.training
    per_point = len(inputs.lags) * len(folds)
    points = [
        LanePoint(t.seed + i, t.lr, t.weight_decay, 0.2) for i in range(-(-lanes // per_point))
    ]
    table = subset(lay_out(cut.lags, folds, members, members, points), lanes)
    lanes_np = lane_inputs(table, cut)
    shard = LaneSharding()
    cfg = cfg.replace({"training.patience": 10_000})
    compiled = compile_program(cfg, task, cut, lanes_np, members, shard.mesh)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data = shard.replicate(
        Data(
            jnp.asarray(cut.x),
            jnp.asarray(cut.y),
            jnp.asarray(cut.norm_mean),
            jnp.asarray(cut.norm_std),
        )
    )
    estimate = memory_estimate(compiled, lanes_np, data, shard.n_devices)
    chunk = auto_chunk(lanes, shard.n_devices, estimate, device_memory(shard.n_devices))
    work = shard.lanes(jax.tree.map(lambda a: a[:chunk], lanes_np))
    t0 = time.perf_counter()
    state = compiled.epoch(compiled.init(work), work, data, 0)
    state.stopped.block_until_ready()
    first = time.perf_counter() - t0
    if trace is not None:
        hlo = (
            compiled._epoch.lower(state, work, data, jnp.asarray(1, jnp.int32)).compile().as_text()
        )
        jax.profiler.start_trace(str(trace), create_perfetto_trace=True)
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        state = compiled.epoch(state, work, data, e)
    state.stopped.block_until_ready()
    timed = time.perf_counter() - t0
    if trace is not None:
        jax.profiler.stop_trace()
    try:
        peak = jax.devices()[0].memory_stats()["peak_bytes_in_use"]
    except (TypeError, KeyError, AttributeError):  # CPU: the process's peak RSS growth
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    return {
        "lanes": lanes,
        "chunk": chunk,
        "words": words,
        "electrodes": electrodes,
        "first_epoch_s": first,
        "lane_epoch_s": timed / (chunk * epochs),
        "peak_gb": peak / 1e9,
        "estimate_gb": estimate(chunk) / 1e9,
        **({"hlo": hlo} if trace is not None else {}),
    }


def hlo_sources(hlo: str) -> dict[str, tuple[str, str, int]]:
    """Each HLO instruction's innermost traced source (file, function, line), from the
    compiled module text's FileNames / FunctionNames / FileLocations / StackFrames tables."""
    tables: dict[str, dict[int, str]] = {}
    section = None
    for line in hlo.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = tables.setdefault(line, {})
        elif section is not None and (m := re.match(r"^(\d+) (.*)$", line)):
            section[int(m[1])] = m[2]
        else:
            section = None
    files = {k: v.strip('"') for k, v in tables.get("FileNames", {}).items()}
    funcs = {k: v.strip('"') for k, v in tables.get("FunctionNames", {}).items()}
    places = {}
    for k, v in tables.get("FileLocations", {}).items():
        f = dict(re.findall(r"(\w+)=(\d+)", v))
        places[k] = (
            files[int(f["file_name_id"])],
            funcs[int(f["function_name_id"])],
            int(f["line"]),
        )
    frames = {
        k: places[int(re.search(r"file_location_id=(\d+)", v)[1])]
        for k, v in tables.get("StackFrames", {}).items()
    }
    out = {}
    for m in re.finditer(r"^\s*(?:ROOT )?%?([\w.-]+) = .*?stack_frame_id=(\d+)", hlo, re.M):
        out[m[1]] = frames[int(m[2])]
    return out


def profile(cfg, inputs, task, members: int, work: Path, epochs: int) -> None:
    """Where one standard lane's epoch goes: JAX's profiler over `epochs` epochs (after a
    compiling one); each executed XLA operation's time is charged to the source line it was
    traced from (the compiled HLO's metadata), summed by file and by line."""
    import gzip
    import linecache
    import shutil
    from collections import Counter

    trace = work / "profile"
    shutil.rmtree(trace, ignore_errors=True)
    point = scaling_point(
        cfg, inputs, task, members, 1, len(inputs.words), inputs.x.shape[2], epochs, trace=trace
    )
    where = hlo_sources(point["hlo"])
    (path,) = trace.rglob("*.trace.json.gz")
    events = json.loads(gzip.open(path).read())["traceEvents"]
    by_line, by_file, total = Counter(), Counter(), 0.0
    for ev in events:
        if ev.get("ph") != "X" or ev["name"] not in where:
            continue
        file, func, line = where[ev["name"]]
        by_line[(file, func, line)] += ev["dur"] / 1e6
        by_file[file] += ev["dur"] / 1e6
        total += ev["dur"] / 1e6
    print(
        f"{point['lane_epoch_s']:.3f} s per lane-epoch over {epochs} epochs of 1 lane; "
        f"XLA operations {total / epochs:.3f} s per epoch, by source file:"
    )
    for file, secs in by_file.most_common(8):
        print(f"  {100 * secs / total:5.1f} %  {file.split('site-packages/')[-1]}")
    print("by source line:")
    for (file, func, line), secs in by_line.most_common(15):
        text = linecache.getline(file, line).strip()[:60]
        print(f"  {100 * secs / total:5.1f} %  {Path(file).name}:{line} {func}: {text}")


def scaling(args, work: Path) -> None:
    """One process per point (a fresh peak memory each), standard shapes unless varied."""
    import subprocess

    rows = []
    grid = (
        [(n, None, None) for n in args.lanes]
        + [(1, w, None) for w in args.words]
        + [(1, None, e) for e in args.electrodes]
    )
    for lanes, words, electrodes in grid:
        cmd = [
            sys.executable,
            __file__,
            "--work",
            str(args.work),
            "--point",
            str(lanes),
            str(words or 0),
            str(electrodes or 0),
            "--epochs",
            str(args.epochs or 1),
        ]
        if args.data:
            cmd += ["--data", str(args.data)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"lanes {r['lanes']:>4} (chunk {r['chunk']:>4})  words {r['words']:>5}  "
            f"electrodes {r['electrodes']:>3}: {r['lane_epoch_s']:.3f} s per lane-epoch "
            f"(first epoch {r['first_epoch_s']:.1f} s), peak {r['peak_gb']:.2f} GB, "
            f"estimate {r['estimate_gb']:.2f} GB",
            flush=True,
        )
    (work / "scaling.json").write_text(json.dumps(rows, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 lags, 3 epochs, one repeat")
    parser.add_argument("--data", type=Path, default=None, help="an existing stand-in")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 1)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per lane (default: 3 with --quick, else <= 100 with early "
        "stopping; timed epochs per scaling point: 1)",
    )
    parser.add_argument(
        "--standard-lanes",
        type=int,
        default=None,
        metavar="N",
        help="the standard config, early stopping included, on N (lag, fold) lanes",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="time per lane-epoch and peak memory as lanes, words, electrodes grow",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        nargs="+",
        default=[1, 10, 50, 100, 500],
        help="--scaling: lane counts (standard words and electrodes)",
    )
    parser.add_argument(
        "--words",
        type=int,
        nargs="+",
        default=[1000, 2500],
        help="--scaling: word counts, 1 lane (besides all words)",
    )
    parser.add_argument(
        "--electrodes",
        type=int,
        nargs="+",
        default=[40, 80],
        help="--scaling: electrode counts, 1 lane (besides 160)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="where one standard lane's epoch goes, by source file and line",
    )
    parser.add_argument("--point", type=int, nargs=3, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks"))
    args = parser.parse_args(argv)
    repeats = args.repeats or 1
    work = args.work.resolve() / ("trainer_speed_quick" if args.quick else "trainer_speed")
    work.mkdir(parents=True, exist_ok=True)
    if args.scaling:
        print(f"machine: {machine()}")
        return scaling(args, work)
    root = ensure_standin(
        args.data or (args.work.resolve() / ("standin-600s" if args.quick else "standin-full")),
        args.quick,
    )
    csv = electrode_csv(root, N_ELECTRODES, work / "electrodes.csv")
    standard = args.standard_lanes is not None or args.point is not None or args.profile
    cfg = bench_config(root, csv, work, args.quick, None if standard else args.epochs)
    features = api.build_features(cfg, log=lambda s: None)
    inputs = prepare(cfg, features)
    task = task_for(cfg)
    members = cfg.model.members
    if args.profile:
        print(f"machine: {machine()}")
        return profile(cfg, inputs, task, members, work, args.epochs or 2)
    if args.point is not None:
        lanes, words, electrodes = args.point
        print(
            json.dumps(
                scaling_point(
                    cfg,
                    inputs,
                    task,
                    members,
                    lanes,
                    words or len(inputs.words),
                    electrodes or inputs.x.shape[2],
                    args.epochs or 1,
                )
            )
        )
        return None
    table = lay_out(inputs.lags, inputs.folds, members, members, [lane_point(cfg)])
    if args.standard_lanes is not None:
        print(
            f"machine: {machine()}; latents {inputs.x.shape}, {args.standard_lanes} of "
            f"{len(table)} lanes of {members} joint members, <= {cfg.training.epochs} epochs, "
            f"patience {cfg.training.patience}"
        )
        return standard_lanes(cfg, inputs, task, table, members, args.standard_lanes)
    peak = dense_matmul_flops()
    print(
        f"machine: {machine()}; latents {inputs.x.shape}, {len(table)} lanes of {members} "
        f"joint members, <= {cfg.training.epochs} epochs, patience {cfg.training.patience}"
    )
    ratios = []
    for r in range(repeats):
        base = run_reference(
            inputs,
            members=members,
            epochs=cfg.training.epochs,
            patience=cfg.training.patience,
            log=lambda s: None,
        )
        print(
            f"[{r + 1}] baseline (PyTorch, sequential): {base.seconds:8.1f} s, "
            f"{len(base.epochs)} runs, {sum(base.epochs)} epochs"
        )
        t0 = time.perf_counter()
        res = train_lanes(cfg, task, inputs, table, members, log=lambda s: None)
        seconds = time.perf_counter() - t0
        flops = podbench_flops(inputs, res, members)
        print(
            f"[{r + 1}] podbench (JAX lanes):          {seconds:8.1f} s, {len(table)} lanes, "
            f"{int(res.epochs.sum())} epochs, {flops / seconds / 1e9:.1f} GFLOP/s "
            f"(dense matmul here: {peak / 1e9:.1f} GFLOP/s, "
            f"{100 * flops / seconds / peak:.0f}%)"
        )
        ratios.append(base.seconds / seconds)
    print(
        f"ratio baseline/podbench: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, "
        f"max {max(ratios):.2f} over {repeats} repeat(s)"
    )
    print(f"ratio={statistics.median(ratios):.2f}")
    return None


if __name__ == "__main__":
    main()
