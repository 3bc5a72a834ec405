"""`podbench demo`: stand-in (made if absent) -> build-features -> train -> table."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from podbench.data.synth import GROUND_TRUTH, responsive_electrode_csv

DEMO_DURATION = 600.0


def run_demo(config_path: Path, data_dir: Path, log: Callable[[str], None] = print):
    """Run the demo pipeline on the stand-in under `data_dir`, making it first if absent."""
    from podbench import config
    from podbench.data.synth import synthesize
    from podbench.experiments.train import train

    if not (data_dir / GROUND_TRUTH).is_file():
        log(f"making the demo stand-in (all nine subjects, first {DEMO_DURATION:.0f} s) in {data_dir}")
        synthesize(data_dir, duration=DEMO_DURATION, progress=log)
    csv = responsive_electrode_csv(data_dir)
    cfg = config.load(config_path, [f"data.root={data_dir}", f"data.electrodes={csv}"])
    return train(cfg, log=log)
