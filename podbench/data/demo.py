"""`podbench demo`: stand-in (made if absent) -> build-features -> train -> table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd

from podbench.data.dataset import Dataset

DEMO_DURATION = 600.0
GROUND_TRUTH = Path("derivatives/podbench-synth/ground_truth.json")
ELECTRODE_CSV = Path("derivatives/podbench-synth/responsive_electrodes.csv")


def responsive_electrode_csv(root: str | Path, out: str | Path | None = None) -> Path:
    """The ground truth's responsive channels as a reference-format CSV (subject=NYU id, elec).

    This is how researchers pass "significant electrodes"; the default path is beside the
    ground truth.
    """
    root = Path(root)
    truth = json.loads((root / GROUND_TRUTH).read_text())
    nyu = {s: n for n, s in Dataset(root).nyu_to_subject().items()}
    rows = []
    for item in truth["responsive_channels"]:
        sub, name = item.split(":", 1)
        rows.append({"subject": nyu[int(sub[4:])], "elec": name})
    out = Path(out) if out else root / ELECTRODE_CSV
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def run_demo(config_path: Path, data_dir: Path, log: Callable[[str], None] = print):
    """Run the demo pipeline on the stand-in under `data_dir`, making it first if absent."""
    from podbench import config
    from podbench.data.synth import synthesize
    from podbench.train.run import train

    if not (data_dir / GROUND_TRUTH).is_file():
        log(f"making the demo stand-in (all nine subjects, first {DEMO_DURATION:.0f} s) in {data_dir}")
        synthesize(data_dir, duration=DEMO_DURATION, progress=log)
    csv = responsive_electrode_csv(data_dir)
    cfg = config.load(config_path, [f"data.root={data_dir}", f"data.electrodes={csv}"])
    return train(cfg, log=log)
