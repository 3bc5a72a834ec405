"""The standard run on one GPU, from nothing: podbench's whole standard config vs the reference.

Makes the full-size stand-in on the spot (`podbench synth`: 9 subjects, 1,800 s), builds the
standard features (160 electrodes, 10 lags, GPT-2 targets reduced to 50 dimensions), trains
the whole standard config with podbench (10 lags x 5 folds x 10 joint members, <= 100 epochs,
patience 10: 50 lanes of one compiled program), then the reference loop
(benchmarks/reference_loop.py, PyTorch) on the first lanes on the same device. Meant to fit in
one 10-minute command, stand-in and compilation included.

    python benchmarks/gpu.py                    # on a GPU machine
    python benchmarks/gpu.py --reduced          # a check on CPU in well under a minute: 120-s
                                                # stand-in: 2 subjects, 2 lags, 2 members, 2 epochs

Prints each stage's time, podbench's whole run, the reference's seconds per lane-epoch, and
last `ratio=<reference's whole run, estimated from its lanes, / podbench's whole run>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference_loop import run_reference  # noqa: E402
from trainer_speed import bench_config, electrode_csv, machine  # noqa: E402

from podbench import api  # noqa: E402
from podbench.data.synth import GROUND_TRUTH, synthesize  # noqa: E402
from podbench.tasks import task_for  # noqa: E402
from podbench.train.execute import train_lanes  # noqa: E402
from podbench.train.inputs import prepare  # noqa: E402
from podbench.train.lanes import lane_point, lay_out  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reduced",
        action="store_true",
        help="small stand-in and run (a CPU check that the script works)",
    )
    parser.add_argument(
        "--reference-lanes",
        type=int,
        default=2,
        help="(lag, fold) lanes the reference trains (default 2)",
    )
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks/gpu"))
    args = parser.parse_args(argv)
    import jax
    import torch

    t_start = time.perf_counter()
    work = args.work.resolve() / ("reduced" if args.reduced else "standard")
    work.mkdir(parents=True, exist_ok=True)
    root = work / "standin"
    print(
        f"machine: {machine()}; torch device: {'cuda' if torch.cuda.is_available() else 'cpu'}",
        flush=True,
    )
    t0 = time.perf_counter()
    if not (root / GROUND_TRUTH).is_file():
        if args.reduced:
            synthesize(root, subjects=[1, 3], duration=120)
        else:
            synthesize(root)
    print(f"stand-in: {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    csv = electrode_csv(root, 16 if args.reduced else 160, work / "electrodes.csv")
    cfg = bench_config(root, csv, work, args.reduced, None)
    if args.reduced:
        cfg = cfg.replace(
            {
                "model.members": 2,
                "training.epochs": 2,
                "training.batch_size": 64,
                "targets.pca_dim": 8,
                "targets.min_train_freq": 2,
            }
        )
    inputs = prepare(cfg, api.build_features(cfg, log=lambda s: None))
    print(f"features: {time.perf_counter() - t0:.1f} s; latents {inputs.x.shape}", flush=True)
    members, t = cfg.model.members, cfg.training
    table = lay_out(inputs.lags, inputs.folds, members, members, [lane_point(cfg)])
    t0 = time.perf_counter()
    res = train_lanes(cfg, task_for(cfg), inputs, table, members, log=lambda s: None)
    whole = time.perf_counter() - t0
    epochs = res.epochs.tolist()
    print(
        f"podbench, whole standard run on {jax.devices()[0].platform}: {whole:.1f} s "
        f"(compilation included), {len(table)} lanes of {members} joint members, "
        f"{sum(epochs)} lane-epochs ({min(epochs)}-{max(epochs)} per lane), "
        f"{whole / sum(epochs):.3f} s per lane-epoch; widths {res.widths[0][0]} -> "
        f"{res.widths[0][-1]}",
        flush=True,
    )
    n_ref = min(args.reference_lanes, len(table))
    pairs = list(zip(table.lag_ms[:n_ref].tolist(), table.fold[:n_ref].tolist()))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = run_reference(
        inputs,
        members=members,
        epochs=t.epochs,
        patience=t.patience,
        pairs=pairs,
        device=device,
        threads=1 if device == "cpu" else 2,
        log=lambda s: None,
    )
    per_lane_epoch = base.seconds / sum(base.epochs)
    estimate = base.seconds / n_ref * len(table)
    print(
        f"reference loop on {device}: {base.seconds:.1f} s for {n_ref} lanes, "
        f"{sum(base.epochs)} epochs, {per_lane_epoch:.3f} s per lane-epoch; whole run "
        f"estimated {estimate:.0f} s ({len(table)} lanes)",
        flush=True,
    )
    print(
        f"ratio per lane-epoch: {per_lane_epoch / (whole / sum(epochs)):.1f}; "
        f"this script: {time.perf_counter() - t_start:.0f} s"
    )
    print(f"ratio={estimate / whole:.1f}")


if __name__ == "__main__":
    main()
