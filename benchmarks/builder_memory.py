"""Peak memory and throughput of build-features at full scale.

Full-scale stand-in: 9 subjects, all 1,268 good channels, 5,136 words, lags -2000..2000 ms
step 100 (40 lags), window 0.625 s. build-features runs in a child process (`podbench
build-features`) whose peak RSS is read from the kernel when it ends.

    python benchmarks/builder_memory.py [--data DIR] [--keep]

The epochs store of this configuration is large (every word's window spans all 40 lags, about
2,300 samples x 1,268 channels); it is deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from trainer_speed import ensure_standin, machine  # noqa: E402

from podbench.features.store import Stores, human_bytes  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing full stand-in")
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks"))
    parser.add_argument("--keep", action="store_true", help="keep the stores it builds")
    args = parser.parse_args(argv)
    work = args.work.resolve() / "builder_memory"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root = ensure_standin(args.data or (args.work.resolve() / "standin-full"), quick=False)
    cfg_path = work / "full.yml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "trial_name": "builder_memory",
                "data": {
                    "root": str(root),
                    "subjects": "all",
                    "electrodes": None,
                    "window_width": 0.625,
                    "lags": {"min": -2000, "max": 2000, "step": 100},
                },
                "output": {"stores": str(work / "stores"), "results": str(work / "results")},
            }
        )
    )
    podbench = str(Path(sys.executable).parent / "podbench")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [podbench, "build-features", "--config", str(cfg_path)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"machine: {machine()}")
    print(proc.stdout.strip())
    stores = Stores(work / "stores")
    sizes = {
        stage: sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        for stage, _, path, _ in stores.complete_stores()
    }
    epochs = next(m for s, _, _, m in stores.complete_stores() if s == "epochs")
    n_words, n_channels, n_time = epochs["arrays"]["ecog"]
    raw_bytes = n_words * n_channels * n_time * 4
    print(
        f"epochs {n_words} words x {n_channels} channels x {n_time} samples "
        f"({human_bytes(raw_bytes)} float32, {human_bytes(sizes['epochs'])} on disk)"
    )
    print(
        f"total {seconds:.0f} s, peak RSS {peak_kb / 1e6:.2f} GB, "
        f"throughput {raw_bytes / seconds / 1e6:.0f} MB/s of windows "
        f"({n_words * n_channels / seconds:,.0f} word-channel windows/s)"
    )
    print(f"peak_rss_gb={peak_kb / 1e6:.2f}")
    if not args.keep:
        shutil.rmtree(work / "stores")


if __name__ == "__main__":
    main()
