"""Overhead of the Ray engine: one 8-point sweep with `--engine local` and `--engine ray`.

    python benchmarks/ray_overhead.py [--repeats 2] [--nodes 2] [--cpus-per-node 1] [--out DIR]

A small stand-in (subjects 1 and 3, 120 s, a few dozen channels, 2 lags, an MLP, 2 epochs)
is written under a temporary folder (or --out), its stores are built once, then the same
8-point sweep (4 programs of 2 points) runs as `podbench sweep` subprocesses, alternating
local and ray, each into a fresh results folder. The ray runs join a local cluster of
--nodes nodes (ray.cluster_utils) started once; its start-up is reported on its own and left
out of the ratio. Each ray run still pays its own driver connection and worker start-up.
The last line is `ratio=<mean ray wall time / mean local wall time>`.
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from podbench.train.results import cpu_model

REPO = Path(__file__).resolve().parents[1]
FEW = "^(G[1-3][0-9]|LGA[1-3][0-9])$"
GRID = {"model.params.hidden": [[16], [32], [48], [64]], "training.lr": [1e-3, 3e-3]}
PROGRAM_LINE = re.compile(r"\(program (\d+), ([0-9.]+) s\)")


def write_inputs(out: Path) -> tuple[Path, Path]:
    """The stand-in, its config and the grid."""
    from podbench.data.synth import synthesize

    synthesize(out / "ds", subjects=[1, 3], duration=120)
    config = {
        "trial_name": "ray-overhead",
        "data": {
            "root": str(out / "ds"),
            "electrodes": FEW,
            "lags": {"min": 0, "max": 400, "step": 200},
        },
        "targets": {"pca_dim": 8, "min_train_freq": 2},
        "model": {"name": "mlp", "members": 1},
        "training": {"epochs": 2, "patience": 1},
        "output": {"stores": str(out / "stores"), "results": str(out / "results")},
    }
    (out / "exp.yml").write_text(yaml.safe_dump(config))
    (out / "grid.yml").write_text(yaml.safe_dump(GRID))
    return out / "exp.yml", out / "grid.yml"


def podbench(*args: str) -> tuple[float, str]:
    """Run the podbench CLI; return its wall time and output."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"podbench {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def program_seconds(output: str) -> dict[int, float]:
    return {int(m[1]): float(m[2]) for m in PROGRAM_LINE.finditer(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each engine")
    parser.add_argument("--nodes", type=int, default=2, help="nodes of the local Ray cluster")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    out = args.out or Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    out.mkdir(parents=True, exist_ok=True)
    config, grid = write_inputs(out)
    build_s, _ = podbench("build-features", "--config", str(config))
    print(f"machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()}")
    print(
        f"stores built once (not in the ratio): {build_s:.1f} s; sweep: 8 points, "
        f"4 programs of 2 points"
    )

    node = {"num_cpus": args.cpus_per_node, "object_store_memory": 80 * 2**20}
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        for _ in range(args.nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        startup_s = time.perf_counter() - t0
        print(
            f"ray cluster start-up (not in the ratio): {startup_s:.1f} s for {args.nodes} "
            f"node(s) x {args.cpus_per_node} CPU"
        )
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        programs: list[float] = []
        for rep in range(args.repeats):
            for engine in ("local", "ray"):
                results = out / f"results-{engine}-{rep}"
                extra = ["--address", cluster.address] if engine == "ray" else []
                wall, output = podbench(
                    "sweep",
                    "--config",
                    str(config),
                    "--grid",
                    str(grid),
                    "--set",
                    f"output.results={results}",
                    "--engine",
                    engine,
                    *extra,
                )
                walls[engine].append(wall)
                if engine == "ray":
                    programs += program_seconds(output).values()
                print(f"run {rep + 1} {engine:<5} {wall:7.1f} s")
    finally:
        cluster.shutdown()
    local, ray_ = statistics.mean(walls["local"]), statistics.mean(walls["ray"])
    per_program = statistics.mean(programs)
    print(
        f"mean wall: local {local:.1f} s, ray {ray_:.1f} s ({args.nodes} nodes); "
        f"per program task (ray): {per_program:.1f} s over {len(programs)} tasks"
    )

    # Paper estimate of a 500-point sweep on N GPU nodes, from the per-program time measured
    # here (a 2-point program on one CPU): 500 points as 50 programs of 10 lane values (e.g.
    # 50 shape settings x 10 lr/dropout/seed values), one program at a time per node, stores
    # already built, shared storage not a bottleneck. Low: a GPU trains a program's lanes
    # side by side, so a 10-point program costs what a 2-point one costs here. High: time
    # grows with the points, 5x per program.
    n_programs = 50
    print("estimate, 500 points = 50 programs of 10 points, from the per-program time here:")
    for n in (1, 4, 8, 16, 50):
        waves = math.ceil(n_programs / n)
        low, high = (startup_s + waves * per_program * f for f in (1, 5))
        print(f"  {n:>3} GPU node(s): {low / 60:6.1f} to {high / 60:6.1f} min")
    print(f"ratio={ray_ / local:.2f}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
