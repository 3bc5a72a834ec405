"""Pretrained vs randomly initialised foundation model, decoded with the same MLP.

On the demo stand-in (made first if absent, about a minute): pretrain the masked autoencoder of
configs/foundation/pretrain.yml (unlabelled signal only), write the same network before
pretraining (same seed, so identical initial weights) as a second checkpoint, build the
`foundation` latents of both, train the MLP decoder of configs/foundation/mlp_gpt2.yml on
each, and print the word ROC-AUC (`test_word_avg_auc_roc_mean` of lag_performance.csv) at the
stand-in's planted lag (250 ms) and the other lags.

    python benchmarks/foundation_vs_random.py [--steps N] [--members N]

Run from the repository root; stores and results go to stores/ and results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from podbench import config
from podbench.data.demo import DEMO_DURATION, GROUND_TRUTH, responsive_electrode_csv
from podbench.data.synth import synthesize
from podbench.models.foundation.pretrain import pretrain
from podbench.train.run import train

DATA = Path("data/podcast-standin-demo")
PRETRAIN_CONFIG = Path("configs/foundation/pretrain.yml")
DECODER_CONFIG = Path("configs/foundation/mlp_gpt2.yml")
PLANTED_LAG = 250
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the config's)")
    parser.add_argument("--members", type=int, default=5, help="ensemble members per lag and fold")
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
    for label, checkpoint in (("pretrained", pretrained), ("random init", random_init)):
        t = time.perf_counter()
        cfg = config.load(DECODER_CONFIG, [
            f"preprocess.params.checkpoint={checkpoint}", f"data.lags={LAGS}",
            f"model.members={args.members}", f"trial_name=foundation-vs-random-{label.replace(' ', '-')}"])
        perf = train(cfg, log=quiet).performance.set_index("lags")
        rows[label] = perf
        print(f"{label}: latents + training {time.perf_counter() - t:.0f} s")

    losses = [float(line.split(",")[1]) for line in (pretrained / "loss.csv").read_text().split()[1:]]
    print(f"\npretraining loss {sum(losses[:10]) / 10:.4f} (first 10 steps) -> "
          f"{sum(losses[-10:]) / 10:.4f} (last 10), {len(losses)} steps")
    lags = list(next(iter(rows.values())).index)
    print(f"\nword ROC-AUC ({METRIC}_mean ± std over folds)")
    print(f"{'model':<12}" + "".join(f"{f'{lag} ms':>17}" for lag in lags))
    for label, perf in rows.items():
        cells = "".join(f"{perf.loc[lag, f'{METRIC}_mean']:>10.4f} ± {perf.loc[lag, f'{METRIC}_std']:.3f}"
                        for lag in lags)
        print(f"{label:<12}{cells}")
    gain = rows["pretrained"].loc[PLANTED_LAG, f"{METRIC}_mean"] - rows["random init"].loc[PLANTED_LAG, f"{METRIC}_mean"]
    print(f"\nat the planted lag ({PLANTED_LAG} ms): pretrained - random init = {gain:+.4f}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
