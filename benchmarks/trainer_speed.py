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

The last line printed is `ratio=<baseline / podbench, median over repeats>`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference_loop import count_flops_per_step, run_reference  # noqa: E402

from podbench import api, config  # noqa: E402
from podbench.data.synth import GROUND_TRUTH  # noqa: E402
from podbench.data.synth import synthesize  # noqa: E402
from podbench.train.lanes import lay_out  # noqa: E402
from podbench.train.execute import train_lanes  # noqa: E402
from podbench.train.inputs import prepare  # noqa: E402
from podbench.train.run import lane_point  # noqa: E402
from podbench.tasks import task_for  # noqa: E402

N_ELECTRODES = 160


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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
        for rec in open_recordings(ds, ds.resolve_subjects(truth["subjects"]), None):
            for name in rec.channels:
                label = f"sub-{rec.subject:02d}:{name}"
                if len(picked) < n and label not in chosen:
                    picked.append(label)
    nyu = {s: n_id for n_id, s in ds.nyu_to_subject().items()}
    lines = ["subject,elec"] + [f"{nyu[int(p[4:6])]},{p.split(':', 1)[1]}" for p in picked]
    out.write_text("\n".join(lines) + "\n")
    return out


def bench_config(root: Path, csv: Path, work: Path, quick: bool, epochs: int | None) -> config.Config:
    lags = {"min": 0, "max": 400, "step": 200} if quick else {"min": -1000, "max": 1000, "step": 200}
    return config.from_dict({
        "trial_name": "trainer_speed",
        "data": {"root": str(root), "electrodes": str(csv), "lags": lags},
        "targets": {"kind": "gpt2", "layer": 24, "pca_dim": 50},
        "model": {"name": "pitom", "members": 10, "ensemble": "joint"},
        "training": {"epochs": epochs or (3 if quick else 100), "patience": 10, "batch_size": 32,
                     "lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw"},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    })


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
    return 2 * n ** 3 / min(times)


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 lags, 3 epochs, one repeat")
    parser.add_argument("--data", type=Path, default=None, help="an existing stand-in")
    parser.add_argument("--repeats", type=int, default=None, help="alternating repeats (default 1)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per lane (default: 3 with --quick, else <= 100 with early stopping)")
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks"))
    args = parser.parse_args(argv)
    repeats = args.repeats or 1
    work = args.work.resolve() / ("trainer_speed_quick" if args.quick else "trainer_speed")
    work.mkdir(parents=True, exist_ok=True)
    root = ensure_standin(args.data or (args.work.resolve() / ("standin-600s" if args.quick
                                                                else "standin-full")), args.quick)
    csv = electrode_csv(root, N_ELECTRODES, work / "electrodes.csv")
    cfg = bench_config(root, csv, work, args.quick, args.epochs)
    features = api.build_features(cfg)
    inputs = prepare(cfg, features)
    task = task_for(cfg)
    members = cfg.model.members
    table = lay_out(inputs.lags, inputs.folds, members, members, [lane_point(cfg)])
    peak = dense_matmul_flops()
    print(f"machine: {machine()}; latents {inputs.x.shape}, {len(table)} lanes of {members} "
          f"joint members, <= {cfg.training.epochs} epochs, patience {cfg.training.patience}")
    ratios = []
    for r in range(repeats):
        base = run_reference(inputs, members=members, epochs=cfg.training.epochs,
                             patience=cfg.training.patience, log=lambda s: None)
        print(f"[{r + 1}] baseline (PyTorch, sequential): {base.seconds:8.1f} s, "
              f"{len(base.epochs)} runs, {sum(base.epochs)} epochs")
        t0 = time.perf_counter()
        res = train_lanes(cfg, task, inputs, table, members, log=lambda s: None)
        seconds = time.perf_counter() - t0
        flops = podbench_flops(inputs, res, members)
        print(f"[{r + 1}] podbench (JAX lanes):          {seconds:8.1f} s, {len(table)} lanes, "
              f"{int(res.epochs.sum())} epochs, {flops / seconds / 1e9:.1f} GFLOP/s "
              f"(dense matmul here: {peak / 1e9:.1f} GFLOP/s, "
              f"{100 * flops / seconds / peak:.0f}%)")
        ratios.append(base.seconds / seconds)
    print(f"ratio baseline/podbench: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, "
          f"max {max(ratios):.2f} over {repeats} repeat(s)")
    print(f"ratio={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
