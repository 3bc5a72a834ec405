"""The effect of `task_params.parity: reference` on the stand-in: content_word, part_of_speech
and sentence_onset trained with podbench's protocol and with the reference's (its negatives,
its early-stopping metric as a mean over validation batches, probability averaging in the
joint ensemble, the LayerNorm class head), side by side on the same features.

Reduced settings (one run per task and mode, a few minutes each on 2 CPU cores): subjects 3,
6 and 9 of a 600-s stand-in, the ground truth's responsive electrodes, the planted lag
(250 ms) only, 5 sequential folds, a 3-member joint PITOM ensemble with 32 filters, up to 20
epochs, patience 5, seed 42. Prints per task and mode the events (negatives for
sentence_onset), the mean test ROC-AUC over folds (whole split), the reference's per-batch
mean where written, and the mean best epoch.

    python benchmarks/parity_effects.py [--data DIR]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from podbench import api, config
from podbench.data.synth import responsive_electrode_csv, synthesize

TASKS = {
    "content_word": "test_roc_auc",
    "part_of_speech": "test_macro_roc_auc",
    "sentence_onset": "test_roc_auc",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("stores/benchmarks/parity-standin"))
    args = parser.parse_args()
    if not args.data.is_dir():
        synthesize(args.data, subjects=[3, 6, 9], duration=600)
    csv = responsive_electrode_csv(args.data)
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
    print(
        f"{'task':<16} {'parity':<9} {'events':>7} {'negatives':>9} {'test AUC':>9} "
        f"{'batch mean':>10} {'best epoch':>10} {'time':>6}"
    )
    gaps = []
    for task, headline in TASKS.items():
        for parity in ("podbench", "reference"):
            cfg = config.from_dict(
                {
                    "task": task,
                    "trial_name": f"parity_{task}_{parity}",
                    "task_params": {"parity": parity},
                    "data": {
                        "root": str(args.data),
                        "electrodes": str(csv),
                        "lags": {"min": 250, "max": 251, "step": 250},
                    },
                    "model": {"members": 3, "ensemble": "joint", "params": {"filters": 32}},
                    "training": {"epochs": 20, "patience": 5, "n_folds": 5, "seed": 42},
                    "output": {
                        "stores": "stores/benchmarks/stores",
                        "results": "stores/benchmarks/results",
                    },
                }
            )
            t0 = time.perf_counter()
            run = api.train(cfg, log=lambda s: None)
            seconds = time.perf_counter() - t0
            perf = run.performance.iloc[0]
            labels = api.open_store(cfg, "epochs")["label"].values
            negatives = int((labels == "inside").sum()) if task == "sentence_onset" else "-"
            batch = perf.get(f"{headline}_batch_mean_mean", np.nan)
            print(
                f"{task:<16} {parity:<9} {len(labels):>7} {negatives:>9} "
                f"{perf[headline + '_mean']:>9.3f} {batch:>10.3f} "
                f"{perf['num_epochs_mean']:>10.1f} {seconds:>5.0f}s"
            )
            if parity == "reference":
                gaps.append(perf[headline + "_mean"] - batch)
    print(f"whole_split_minus_batch_mean_auc={np.mean(gaps):.3f}")


if __name__ == "__main__":
    main()
