"""Pretrained vs randomly initialised foundation model, decoded with the same MLP.

On the demo stand-in (made first if absent, about a minute): pretrain the masked autoencoder of
configs/foundation/pretrain.yml (unlabelled signal only), write the same network before
pretraining (same seed, so identical initial weights) as a second checkpoint, build the
`foundation` latents of both with each readout (`pool`: all tokens averaged, the seed's; or
one average per electrode), train the MLP decoder of configs/foundation/mlp_gpt2.yml on each,
and print the ensembles' test word ROC-AUC (`test_word_avg_auc_roc` of metrics.csv) at the
stand-in's planted lag (250 ms) and either side, and the pretrained - random difference
paired by fold.

    python benchmarks/foundation_vs_random.py [--steps N] [--members N] [--pool tokens electrodes]

Run from the repository root; stores and results go to stores/ and results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from podbench import config
from podbench.data.synth import GROUND_TRUTH, responsive_electrode_csv, synthesize
from podbench.experiments.config_runs import train_config
from podbench.experiments.demo import DEMO_DURATION
from podbench.features.pretrain import pretrain
from podbench.models.foundation.mae import POOLS

DATA = Path("data/podcast-standin-demo")
PRETRAIN_CONFIG = Path("configs/foundation/pretrain.yml")
DECODER_CONFIG = Path("configs/foundation/mlp_gpt2.yml")
LAGS = "{min: 0, max: 501, step: 250}"  # 0, 250, 500 ms: the planted lag and one either side
METRIC = "test_word_avg_auc_roc"


def random_init_checkpoint(pretrained: Path) -> Path:
    """The pretrained model's network before any step: same architecture, same seed."""
    import torch

    from podbench.models.foundation.mae import MaskedAutoencoder

    meta = json.loads((pretrained / "config.json").read_text())
    folder = pretrained.parent / f"random-init-{meta['key']}"
    if (folder / "checkpoint.pt").is_file():
        return folder
    tmp = folder.parent / f"{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.manual_seed(meta["pretrain"]["seed"])
    torch.save(MaskedAutoencoder(**meta["architecture"]).state_dict(), tmp / "checkpoint.pt")
    (tmp / "config.json").write_text(json.dumps({**meta, "random_init": True}, indent=1))
    tmp.rename(folder)
    return folder


def fold_scores(run_dir: Path):
    """The ensembles' test word ROC-AUC of a run: a (lag x fold) table."""
    import pandas as pd

    long = pd.read_csv(run_dir / "metrics.csv")
    long = long[(long["member"] == "ensemble") & (long["metric"] == METRIC)]
    return long.pivot(index="lag", columns="fold", values="value")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="pretraining steps (default: the config's)"
    )
    parser.add_argument("--members", type=int, default=5, help="ensemble members per lag and fold")
    parser.add_argument("--pool", nargs="+", default=list(POOLS), choices=POOLS, help="readouts")
    args = parser.parse_args()
    t0 = time.perf_counter()
    quiet = lambda line: None  # noqa: E731 - progress lines of the stages are not needed here

    if not (DATA / GROUND_TRUTH).is_file():
        print(f"making the demo stand-in in {DATA} (all nine subjects, {DEMO_DURATION:.0f} s)")
        synthesize(DATA, duration=DEMO_DURATION)
    responsive_electrode_csv(DATA)

    overrides = [f"pretrain.steps={args.steps}"] if args.steps else []
    pre_cfg = config.load(PRETRAIN_CONFIG, overrides)
    t = time.perf_counter()
    pretrained = pretrain(pre_cfg, log=print)
    print(f"pretraining: {time.perf_counter() - t:.0f} s")
    random_init = random_init_checkpoint(pretrained)

    rows = {}
    for pool in args.pool:
        for label, checkpoint in (("pretrained", pretrained), ("random init", random_init)):
            t = time.perf_counter()
            cfg = config.load(
                DECODER_CONFIG,
                [
                    f"preprocess.params.checkpoint={checkpoint}",
                    f"preprocess.params.pool={pool}",
                    f"data.lags={LAGS}",
                    f"model.members={args.members}",
                    f"trial_name=foundation-vs-random-{label.replace(' ', '-')}-{pool}",
                ],
            )
            rows[pool, label] = train_config(cfg, log=quiet).run_dir
            print(f"{label}, pool {pool}: latents + training {time.perf_counter() - t:.0f} s")

    losses = [
        float(line.split(",")[1]) for line in (pretrained / "loss.csv").read_text().split()[1:]
    ]
    print(
        f"\npretraining loss {sum(losses[:10]) / 10:.4f} (first 10 steps) -> "
        f"{sum(losses[-10:]) / 10:.4f} (last 10), {len(losses)} steps"
    )
    scores = {k: fold_scores(run_dir) for k, run_dir in rows.items()}
    lags = list(next(iter(scores.values())).index)
    print(f"\nword ROC-AUC of the ensembles ({METRIC}, mean ± std over folds)")
    print(f"{'model':<12}{'pool':<12}" + "".join(f"{f'{lag} ms':>17}" for lag in lags))
    for (pool, label), table in scores.items():
        cells = "".join(
            f"{table.loc[lag].mean():>10.4f} ± {table.loc[lag].std(ddof=0):.3f}" for lag in lags
        )
        print(f"{label:<12}{pool:<12}{cells}")
    print("\npretrained - random init, paired by fold (folds where pretrained is better)")
    for pool in args.pool:
        diff = scores[pool, "pretrained"] - scores[pool, "random init"]
        cells = "".join(
            f"{f'{diff.loc[lag].mean():+.4f} ({(diff.loc[lag] > 0).sum()}/{diff.shape[1]})':>17}"
            for lag in lags
        )
        print(f"{'':<12}{pool:<12}{cells}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
