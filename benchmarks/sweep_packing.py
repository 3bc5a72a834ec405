"""A 12-point decoder sweep packed as lanes of one program vs the same 12 configs run one by
one with `podbench train` (each a fresh process: start-up, store lookup, compile, train).

    python benchmarks/sweep_packing.py [--data DIR]

Both use the same (already built) feature stores, so the difference is the trainer's: one
compiled program and one data upload for all points, against twelve. Prints `ratio=<one by
one / packed>`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from trainer_speed import electrode_csv, ensure_standin, machine  # noqa: E402

from podbench import api, config  # noqa: E402
from podbench.experiments.sweep import grid_points, sweep  # noqa: E402

GRID = {
    "training.lr": [3e-4, 1e-3, 3e-3],
    "model.params.dropout": [0.1, 0.3],
    "training.weight_decay": [1e-4, 1e-3],
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing stand-in")
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks"))
    args = parser.parse_args(argv)
    work = args.work.resolve() / "sweep_packing"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root = ensure_standin(args.data or (args.work.resolve() / "standin-600s"), quick=True)
    csv = electrode_csv(root, 160, work / "electrodes.csv")
    raw = {
        "trial_name": "packed",
        "data": {
            "root": str(root),
            "electrodes": str(csv),
            "lags": {"min": -500, "max": 1000, "step": 250},
        },
        "model": {"members": 2},
        "training": {"epochs": 10, "patience": 3},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    cfg_path = work / "base.yml"
    cfg_path.write_text(yaml.safe_dump(raw))
    grid_path = work / "grid.yml"
    grid_path.write_text(yaml.safe_dump(GRID))
    cfg = config.load(cfg_path)
    api.build_features(cfg, log=lambda s: None)
    print(f"machine: {machine()}")

    t0 = time.perf_counter()
    result = sweep(cfg, grid_path, log=lambda s: None)
    packed = time.perf_counter() - t0
    print(f"packed: {len(result.summary)} points in {result.programs} program(s): {packed:.1f} s")

    podbench = str(Path(sys.executable).parent / "podbench")
    t0 = time.perf_counter()
    for i, point in enumerate(grid_points(GRID)):
        sets = [f"{k}={v}" for k, v in point.items()] + [f"trial_name=one_by_one_{i}"]
        cmd = [podbench, "train", "--config", str(cfg_path)]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, capture_output=True)
    separate = time.perf_counter() - t0
    print(f"one by one: 12 x `podbench train`: {separate:.1f} s")
    print(f"ratio={separate / packed:.2f}")


if __name__ == "__main__":
    main()
