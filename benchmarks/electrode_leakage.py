"""How much selecting electrodes on every event inflates test decoding: `fit: all` (the usual
practice) vs `fit: train` (selection inside each training fold) vs all electrodes, on
stand-ins with no planted signal (snr 0) and with a weak one, over several seeds; and on the
planted stand-ins, precision and recall of the selected electrodes against the ground truth.

    python benchmarks/electrode_leakage.py [--seeds 3] [--snr 0 0.3] [--gap 0] [--reduced]
    python benchmarks/electrode_leakage.py --recovery

Each (snr, seed) gets its own stand-in (`podbench synth --seed S --snr X`). Decoding: the
word-embedding task (GPT-2 stand-in targets, PCA 50), the closed-form ridge decoder, lag 200
ms, 5 sequential folds (`--gap N`: training.gap, N words left out beside each test block);
the headline is the test word ROC-AUC (mean over folds), each beside its score-level
permutation p (the run's test predictions against `--nulls` circular shifts of each fold's
test targets, the product's `significance: {mode: circular}`). Rows are kept under `--work`
and read back by a rerun. The leakage
rows select with `correction: none` at alpha 0.05 (what picks noise channels when there is no
signal; Benjamini-Hochberg at the default alpha selects next to none there); precision and
recall use the default selection (BH, alpha 0.05). `--reduced` runs one subject for 300 s
with 200 shifts (too few for Benjamini-Hochberg over its 72 electrodes to select much):
minutes, for a first look. `--recovery` measures only precision and recall of the default
selection on the planted (snr 1) 600-s stand-in of all nine subjects.
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
from podbench.experiments.significance import Significance, permutation_pvalues, score_null
from podbench.features.build import build_selection_store
from podbench.train.run import train_points

HEADLINE = "test_word_avg_auc_roc_mean"
QUIET = {"log": lambda _: None}


def base_config(root: Path, work: Path, electrodes, trial: str, gap: int = 0) -> config.Config:
    return config.from_dict(
        {
            "trial_name": trial,
            "training": {"gap": gap},
            "data": {
                "root": str(root),
                "electrodes": electrodes,
                "lags": {"min": 200, "max": 400, "step": 200},
            },
            "model": {"name": "ridge"},
            "output": {"stores": str(work / "stores"), "results": str(work / "results")},
        }
    )


def test_auc(cfg: config.Config, nulls: int) -> tuple[float, float, float]:
    """The run's test word ROC-AUC, its score-level permutation p and the null's 95th
    percentile (its test predictions against `nulls` circular shifts of each fold's test
    targets, mean over folds as the AUC); NaNs where the selection chose no electrode."""
    try:
        [result] = train_points([cfg], **QUIET)
    except DataError as exc:
        print(f"  ({cfg.trial_name}: {exc})", file=sys.stderr)
        return float("nan"), float("nan"), float("nan")
    auc = float(result.performance[HEADLINE].iloc[0])
    null = score_null(result.run_dir, cfg, Significance(permutations=nulls, mode="circular"))[:, 0]
    return (
        auc,
        float(permutation_pvalues(np.array([auc]), null[:, None])[0]),
        float(np.percentile(null, 95)),
    )


def recovery(root: Path, work: Path, selection: dict) -> tuple[float, float, int]:
    """Precision, recall and count of the default (fit: all) selection vs the ground truth."""
    cfg = base_config(root, work, {"select": "encoding", "fit": "all", **selection}, "recovery")
    sel = build_selection_store(cfg, **QUIET).load("selection")
    truth = set(json.loads((root / GROUND_TRUTH).read_text())["responsive_channels"])
    planted = np.array([c in truth for c in sel["channel"].values])
    chosen = sel["selected"].values[0]
    hits = int((chosen & planted).sum())
    return hits / max(1, chosen.sum()), hits / max(1, planted.sum()), int(chosen.sum())


CONDITIONS = ("all electrodes", "fit: all", "fit: train")
NEAR = 10  # test words at most this many words from a training block are "near" it


def edge_advantage(run_dir: Path, within: int = NEAR) -> tuple[float, float]:
    """How much better each test word's prediction matches its own target than the fold's
    other test targets (cosine, mean over words), for the test words at most `within` words
    from a training block and for the rest: where drifts shared by signals and targets carry
    the neighbouring training words' targets into the test score, the first is above the
    second."""
    saved = np.load(run_dir / "test_predictions.npz")
    near, far = [], []
    for number in saved["fold"]:
        rows = np.flatnonzero(saved["test_fold"] == number)
        pred, target = saved["ensemble"][0, rows], saved["target"][rows]
        cos = (pred / np.linalg.norm(pred, axis=1)[:, None]) @ (
            target / np.linalg.norm(target, axis=1)[:, None]
        ).T
        own = np.diag(cos)
        score = own - (cos.sum(axis=1) - own) / (len(rows) - 1)
        position = np.arange(len(rows))
        sides = [position] if number > 1 else []  # a training block before the test block
        sides += [position[::-1]] if number < len(saved["fold"]) else []  # and after it
        distance = np.min(sides, axis=0)
        near.append(score[distance < within])
        far.append(score[distance >= within])
    return float(np.concatenate(near).mean()), float(np.concatenate(far).mean())


def with_edges(row: dict, work: Path, gap: str) -> dict:
    """The row with each condition's edge advantage (near, far) from its results folder."""
    for name in CONDITIONS:
        trial = name.replace(": ", "-").replace(" ", "-") + gap
        runs = sorted((work / "results" / trial).glob("*/test_predictions.npz"))
        if runs:
            row[f"{name} near"], row[f"{name} far"] = edge_advantage(runs[0].parent)
    return row


def one_standin(args, gap_words: int, snr: float, seed: int) -> dict:
    """One (gap, snr, seed) row, read back from its JSON when an earlier run finished it."""
    work = args.work.resolve() / f"snr{snr:g}-seed{seed}"
    gap = f"-gap{gap_words}" if gap_words else ""
    done = work / f"row{gap}.json"
    if done.is_file():
        row = json.loads(done.read_text())
        if f"{CONDITIONS[0]} near" not in row:  # rows written before the edge columns
            done.write_text(json.dumps(with_edges(row, work, gap)))
        return {"gap": 0, **row}  # (rows written before the gap column: gap 0)
    root = work / "ds"
    if not (root / GROUND_TRUTH).is_file():
        synthesize(root, subjects=args.subjects, duration=args.duration, seed=seed, snr=snr)
    shifts = {"permutations": args.permutations}
    loose = {"select": "encoding", "correction": "none", "alpha": 0.05, **shifts}
    electrodes = {
        "all electrodes": None,
        "fit: all": {**loose, "fit": "all"},
        "fit: train": {**loose, "fit": "train"},
    }
    row: dict = {"snr": snr, "seed": seed, "gap": gap_words}
    for name, setting in electrodes.items():
        trial = name.replace(": ", "-").replace(" ", "-") + gap
        auc, p, null95 = test_auc(base_config(root, work, setting, trial, gap_words), args.nulls)
        row[name], row[f"{name} p"], row[f"{name} null95"] = auc, p, null95
    if snr > 0:
        row["precision"], row["recall"], row["selected"] = recovery(root, work, shifts)
    done.write_text(json.dumps(with_edges(row, work, gap)))
    return row


def groups(rows: list[dict]) -> list[tuple[int, float]]:
    return sorted({(r["gap"], r["snr"]) for r in rows})


def table(rows: list[dict]) -> str:
    """Markdown: per row each condition's AUC with its p; per (gap, snr) the means and how
    many runs the null rejects at 0.05."""
    cols = ["gap", "snr", "seed", *CONDITIONS, "precision", "recall", "selected"]
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for row in rows:
        cells = [f"{row['gap']}", f"{row['snr']:g}", f"{row['seed']}"]
        cells += [_auc(row[c], row[f"{c} p"]) for c in CONDITIONS]
        cells += [_cell(row.get(c), "{:g}" if c == "selected" else "{:.2f}") for c in cols[6:]]
        lines.append(" | ".join(cells))
    for gap, snr in groups(rows):
        mine = [r for r in rows if (r["gap"], r["snr"]) == (gap, snr)]
        cells = [f"{gap}", f"{snr:g}", "mean"]
        for c in CONDITIONS:
            auc = np.nanmean([r[c] for r in mine])
            significant = sum(r[f"{c} p"] <= 0.05 for r in mine)
            cells.append(f"{auc:.4f} ({significant}/{len(mine)} p <= 0.05)")
        for c in cols[6:]:
            values = [r[c] for r in mine if c in r]
            cells.append(_cell(np.nanmean(values) if values else None, "{:.2f}"))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def edge_table(rows: list[dict]) -> str:
    """Markdown: per (gap, snr), each condition's edge advantage near and far from training
    blocks (mean over seeds)."""
    lines = [
        "gap | snr | " + " | ".join(f"{c}: near / far" for c in CONDITIONS),
        " | ".join("---" for _ in range(2 + len(CONDITIONS))),
    ]
    for gap, snr in groups(rows):
        mine = [r for r in rows if (r["gap"], r["snr"]) == (gap, snr)]
        cells = [f"{gap}", f"{snr:g}"]
        for c in CONDITIONS:
            near = np.nanmean([r.get(f"{c} near", np.nan) for r in mine])
            far = np.nanmean([r.get(f"{c} far", np.nan) for r in mine])
            cells.append(f"{near:+.3f} / {far:+.3f}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def _auc(value: float, p: float) -> str:
    return "" if np.isnan(value) else f"{value:.4f} (p {p:.3f})"


def _cell(value, fmt: str) -> str:
    return "" if value is None or np.isnan(value) else fmt.format(value)


def plot(rows: list[dict], path: Path) -> None:
    """Each condition's test AUC per seed (dots) beside its null's 95th percentile (bars: the
    largest over seeds), one panel per (gap, snr)."""
    from podbench.plotting import figure, save

    panels = groups(rows)
    with figure(height=2.6, ncols=len(panels), squeeze=False, sharey=True) as (fig, axes):
        for ax, (gap, snr) in zip(axes[0], panels):
            mine = [r for r in rows if (r["gap"], r["snr"]) == (gap, snr)]
            for i, c in enumerate(CONDITIONS):
                ax.bar(i, max(r[f"{c} null95"] for r in mine) - 0.5, bottom=0.5, color="0.85")
                ax.scatter([i] * len(mine), [r[c] for r in mine], c="C3", s=10, zorder=3)
            ax.axhline(0.5, color="k", lw=0.6)
            ax.set_xticks(range(len(CONDITIONS)), ["all", "fit: all", "fit: train"])
            ax.set_title(f"snr {snr:g}, gap {gap}")
            ax.set_ylabel("test word ROC-AUC")
        save(fig, path)


def recovery_row(args) -> str:
    """Precision and recall of the default selection (fit: all) on one planted stand-in."""
    work = args.work.resolve() / f"recovery-{len(args.subjects)}subjects-{args.duration:g}s"
    root = work / "ds"
    if not (root / GROUND_TRUTH).is_file():
        synthesize(root, subjects=args.subjects, duration=args.duration)
    t0 = time.perf_counter()
    precision, recall, count = recovery(root, work, {"permutations": args.permutations})
    return (
        f"subjects {' '.join(map(str, args.subjects))}, {args.duration:g} s, snr 1, "
        f"{args.permutations} shifts, BH alpha 0.05: {count} selected, precision "
        f"{precision:.3f}, recall {recall:.3f} ({time.perf_counter() - t0:.0f} s)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 0.3])
    parser.add_argument("--subjects", type=int, nargs="+", default=[3, 6, 9])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--nulls", type=int, default=1000, help="score-level re-pairings")
    parser.add_argument(
        "--gap",
        type=int,
        nargs="+",
        default=[0],
        help="training.gap: words left out beside each test block",
    )
    parser.add_argument("--reduced", action="store_true", help="subject 8, 300 s, 200 shifts")
    parser.add_argument(
        "--recovery",
        action="store_true",
        help="only precision and recall on one planted stand-in (default: nine subjects)",
    )
    parser.add_argument("--work", type=Path, default=Path("stores/benchmarks/electrode_leakage"))
    parser.add_argument("--figure", type=Path, default=None, help="where to save the figure")
    args = parser.parse_args(argv)
    if args.recovery:
        if "--subjects" not in (argv or sys.argv):
            args.subjects = list(range(1, 10))
        print(recovery_row(args))
        return
    if args.reduced:
        args.subjects, args.duration, args.permutations = [8], 300.0, 200
    t0 = time.perf_counter()
    rows = []
    for gap in args.gap:
        for snr in args.snr:
            for seed in range(args.seeds):
                rows.append(one_standin(args, gap, snr, seed))
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    print(f"test words within {NEAR} words of a training block (near) and the rest (far):")
    print(edge_table(rows))
    if args.figure:
        plot(rows, args.figure)
    print(f"electrode_leakage_seconds={time.perf_counter() - t0:.0f}")


if __name__ == "__main__":
    main()
