"""How much selecting electrodes on every event inflates test decoding: `fit: all` (the usual
practice) vs `fit: train` (selection inside each training fold) vs all electrodes, on
stand-ins with no planted signal (snr 0) and with a weak one, over several seeds; and on the
planted stand-ins, precision and recall of the selected electrodes against the ground truth.

    python benchmarks/electrode_leakage.py [--seeds 3] [--snr 0 0.3] [--reduced]

Each (snr, seed) gets its own stand-in (`podbench synth --seed S --snr X`). Decoding: the
word-embedding task (GPT-2 stand-in targets, PCA 50), the closed-form ridge decoder, lag 200
ms, 5 sequential folds; the headline is the test word ROC-AUC (mean over folds). The leakage
rows select with `correction: none` at alpha 0.05 (what picks noise channels when there is no
signal; Benjamini-Hochberg at the default alpha selects next to none there); precision and
recall use the default selection (BH, alpha 0.05). `--reduced` runs one subject for 300 s
with 200 shifts (too few for Benjamini-Hochberg over its 72 electrodes to select much):
minutes, for a first look.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from podbench import config
from podbench.data.synth import GROUND_TRUTH, synthesize
from podbench.errors import DataError
from podbench.features.build import build_selection_store
from podbench.train.run import train_points

HEADLINE = "test_word_avg_auc_roc_mean"
QUIET = {"log": lambda _: None}


def base_config(root: Path, work: Path, electrodes, trial: str) -> config.Config:
    return config.from_dict(
        {
            "trial_name": trial,
            "data": {
                "root": str(root),
                "electrodes": electrodes,
                "lags": {"min": 200, "max": 400, "step": 200},
            },
            "model": {"name": "ridge"},
            "output": {"stores": str(work / "stores"), "results": str(work / "results")},
        }
    )


def test_auc(cfg: config.Config) -> float:
    """The run's test word ROC-AUC, NaN where the selection chose no electrode."""
    try:
        [result] = train_points([cfg], **QUIET)
    except DataError as exc:
        print(f"  ({cfg.trial_name}: {exc})", file=sys.stderr)
        return float("nan")
    return float(result.performance[HEADLINE].iloc[0])


def recovery(root: Path, work: Path, selection: dict) -> tuple[float, float, int]:
    """Precision, recall and count of the default (fit: all) selection vs the ground truth."""
    cfg = base_config(root, work, {"select": "encoding", "fit": "all", **selection}, "recovery")
    sel = build_selection_store(cfg, **QUIET).load("selection")
    truth = set(json.loads((root / GROUND_TRUTH).read_text())["responsive_channels"])
    planted = np.array([c in truth for c in sel["channel"].values])
    chosen = sel["selected"].values[0]
    hits = int((chosen & planted).sum())
    return hits / max(1, chosen.sum()), hits / max(1, planted.sum()), int(chosen.sum())


def one_standin(args, snr: float, seed: int) -> dict:
    work = args.work.resolve() / f"snr{snr:g}-seed{seed}"
    root = work / "ds"
    if not (root / GROUND_TRUTH).is_file():
        synthesize(root, subjects=args.subjects, duration=args.duration, seed=seed, snr=snr)
    shifts = {"permutations": args.permutations}
    loose = {"select": "encoding", "correction": "none", "alpha": 0.05, **shifts}
    row = {
        "snr": snr,
        "seed": seed,
        "all electrodes": test_auc(base_config(root, work, None, "all-electrodes")),
        "fit: all": test_auc(base_config(root, work, {**loose, "fit": "all"}, "fit-all")),
        "fit: train": test_auc(base_config(root, work, {**loose, "fit": "train"}, "fit-train")),
    }
    if snr > 0:
        row["precision"], row["recall"], row["selected"] = recovery(root, work, shifts)
    return row


def table(rows: list[dict]) -> str:
    cols = [
        "snr",
        "seed",
        "all electrodes",
        "fit: all",
        "fit: train",
        "precision",
        "recall",
        "selected",
    ]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for row in rows:
        lines.append(" | ".join(_cell(c, row.get(c)) for c in cols))
    for snr in sorted({r["snr"] for r in rows}):
        mine = [r for r in rows if r["snr"] == snr]
        means = [np.nanmean([r[c] for r in mine]) if c in mine[0] else None for c in cols[2:]]
        lines.append(" | ".join([f"{snr:g}", "mean", *map(_cell, cols[2:], means)]))
    return "\n".join(lines)


def _cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if column in ("snr", "seed", "selected"):
        return f"{value:g}"
    return f"{value:.4f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--subjects", type=int, nargs="+", default=[3, 6, 9])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--reduced", action="store_true", help="subject 8, 300 s, 200 shifts")
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks/electrode_leakage"))
    args = parser.parse_args(argv)
    if args.reduced:
        args.subjects, args.duration, args.permutations = [8], 300.0, 200
    t0 = time.perf_counter()
    rows = [one_standin(args, snr, seed) for snr in args.snr for seed in range(args.seeds)]
    print(table(rows))
    print(f"electrode_leakage_seconds={time.perf_counter() - t0:.0f}")


if __name__ == "__main__":
    main()
