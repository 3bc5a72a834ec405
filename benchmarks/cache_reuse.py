"""What the feature store saves: warm vs cold builds, latents loading vs rebuilding, and a
sweep of K decoder configs over one store vs the same K runs with caching disabled.

    python benchmarks/cache_reuse.py [--data DIR] [--points 20]

1. cold build-features (fresh store root) vs warm build-features (everything cached): the
   warm run must do no feature work (every stage `hit`) and take < 5 % of the cold time;
2. loading the latents of the standard config (160 electrodes, 10 lags) from the store vs
   rebuilding them from the .fif recordings (epochs + latents);
3. a K-point sweep (decoder settings only) over one store vs the same K trainings each with a
   fresh, empty store root ("caching disabled"); the sweep should cost <= 1.1 x (one build +
   K trainings).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from trainer_speed import electrode_csv, ensure_standin, machine  # noqa: E402

from podbench import api, config  # noqa: E402
from podbench.experiments.sweep import sweep  # noqa: E402
from podbench.train.run import train_points  # noqa: E402

QUIET = {"log": lambda s: None}


def standard_config(root: Path, csv: Path, stores: Path, results: Path) -> config.Config:
    return config.from_dict(
        {
            "trial_name": "cache_reuse",
            "data": {
                "root": str(root),
                "electrodes": str(csv),
                "lags": {"min": -1000, "max": 1000, "step": 200},
            },
            "model": {"members": 1, "params": {"filters": 32}},
            "training": {"epochs": 3, "patience": 2},
            "output": {"stores": str(stores), "results": str(results)},
        }
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="an existing stand-in")
    parser.add_argument("--points", type=int, default=20, help="sweep points K")
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks"))
    args = parser.parse_args(argv)
    work = args.work.resolve() / "cache_reuse"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    root = ensure_standin(args.data or (args.work.resolve() / "standin-full"), quick=False)
    csv = electrode_csv(root, 160, work / "electrodes.csv")
    cfg = standard_config(root, csv, work / "stores", work / "results")
    print(f"machine: {machine()}")

    cold, t_cold = timed(lambda: api.build_features(cfg, **QUIET))
    warm, t_warm = timed(lambda: api.build_features(cfg, **QUIET))
    print(
        f"1. build-features cold {t_cold:.1f} s ({[r.status for r in cold.reports]}), "
        f"warm {t_warm:.2f} s ({[r.status for r in warm.reports]}): "
        f"warm/cold = {100 * t_warm / t_cold:.2f} %"
    )

    latents, t_load = timed(lambda: api.open_store(cfg, "latents")["latent"].values)
    fresh = cfg.replace({"output.stores": str(work / "stores-rebuild")})
    _, t_rebuild = timed(lambda: api.build_features(fresh, **QUIET))
    print(
        f"2. latents {latents.shape}: load {t_load:.2f} s vs rebuild from .fif {t_rebuild:.1f} s "
        f"-> {t_rebuild / t_load:.0f}x"
    )
    shutil.rmtree(work / "stores-rebuild")

    lrs = [float(f"{v:.2e}") for v in [1e-4 * 1.5**i for i in range(args.points)]]
    grid = work / "grid.yml"
    grid.write_text(yaml.safe_dump({"training.lr": lrs}))
    one = cfg.replace({"training.lr": lrs[0], "trial_name": "single"})
    _, t_one = timed(lambda: train_points([one], **QUIET))
    _, t_sweep = timed(lambda: sweep(cfg, grid, **QUIET))
    separate = 0.0
    for i, lr in enumerate(lrs):
        alone = cfg.replace(
            {
                "training.lr": lr,
                "trial_name": f"nocache{i}",
                "output.stores": str(work / f"stores-nocache-{i}"),
            }
        )
        _, t = timed(lambda: train_points([alone], **QUIET))  # noqa: B023 (called in this iteration)
        separate += t
        shutil.rmtree(work / f"stores-nocache-{i}")
    budget = t_cold + args.points * (t_one - t_warm)
    print(
        f"3. {args.points}-point sweep over one store: {t_sweep:.1f} s; the same {args.points} "
        f"runs with caching disabled: {separate:.1f} s -> {separate / t_sweep:.1f}x; "
        f"sweep / (one build + {args.points} trainings) = {t_sweep / budget:.2f}"
    )
    print(
        f"ratio_warm_cold={t_warm / t_cold:.4f} ratio_load={t_rebuild / t_load:.0f} "
        f"ratio_nocache_sweep={separate / t_sweep:.2f}"
    )


if __name__ == "__main__":
    main()
