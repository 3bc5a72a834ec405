"""The reference's training procedure in PyTorch: the baseline for podbench's speed-up.

A faithful re-implementation, written from the specification of hassonlab/podcast-benchmark
(`/work/shared/reference/podcast-benchmark.md`, §3.1, §3.2, §4.1, §4.2, §5.3), of how the
reference trains its word decoder, including the parts podbench deliberately does differently:

- `EnsemblePitomModel`: M PITOM members in one `nn.Module`, run one after another in a Python
  loop on the same input; the forward pass returns the mean of the member outputs.
- Joint training: one optimiser (AdamW, or Adam for the older reference) over every member,
  `nn.MSELoss` on the ensemble mean, batch 32, shuffled training `DataLoader` (no drop_last).
- Every batch of every pass computes the loss and the metrics `nll_embedding`, `cosine_sim` and
  `pairwise_accuracy` with a `.item()` host sync each; an epoch's value is the sum of its batch
  values divided by the number of batches.
- Early stopping on the validation `cosine_sim` (strictly greater is an improvement, a deep copy
  of the state_dict is kept in memory), patience 10; the best state is reloaded for the test pass.
- (lag, fold) runs one after another; every model is initialised from one torch RNG stream
  seeded once at the start, so a run's initialisation depends on the runs before it.

Timing: measure on an otherwise idle machine. PyTorch's OpenMP threads spin while they wait
for each other, so with `threads` = 2 on 2 cores and another busy process, an epoch can take
10-50 times longer (measured: 2 s -> 20-120 s); `OMP_WAIT_POLICY=PASSIVE` in the environment
before torch starts, or `threads=1`, avoids that. `run_reference` records, per (lag, fold),
how many cores other processes kept busy meanwhile, and warns when that is not negligible.

The latents and targets are podbench's own (`podbench.train.inputs.prepare`), so both trainers
see identical data. As a script it trains and prints epochs and test cosine per (lag, fold):

    python benchmarks/reference_loop.py --config CONFIG [--set k=v ...] [--lags -1000 0]
        [--folds 1 2] [--epochs N] [--members M]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

FILTERS = 128


# ---------------------------------------------------------------------------- model (§3.1, §3.2)


class PitomModel(nn.Module):
    """One PITOM member for inputs [B, E, T]; PyTorch default initialisation."""

    def __init__(
        self, n_channels: int, output_dim: int, filters: int = FILTERS, dropout: float = 0.2
    ):
        super().__init__()
        self.conv1 = nn.Conv1d(n_channels, filters, kernel_size=3, bias=False)
        self.bn1 = nn.BatchNorm1d(filters)
        self.drop1 = nn.Dropout(dropout)
        self.pool = nn.MaxPool1d(kernel_size=2, stride=2, padding=1)
        self.conv2 = nn.Conv1d(filters, filters, kernel_size=2, bias=False)
        self.bn2 = nn.BatchNorm1d(filters)
        self.drop2 = nn.Dropout(dropout)
        self.final_conv = nn.Conv1d(filters, filters, kernel_size=2, bias=True)
        self.bn3 = nn.BatchNorm1d(filters)
        self.dense = nn.Linear(filters, output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.bn1(F.relu(self.conv1(x))))
        h = self.pool(h)
        h = self.drop2(self.bn2(F.relu(self.conv2(h))))
        h = F.relu(self.bn3(self.final_conv(h)))
        h = F.adaptive_max_pool1d(h, 1).squeeze(-1)
        return torch.tanh(self.norm(self.dense(h)))


class EnsemblePitomModel(nn.Module):
    """`members` PITOM models run sequentially on the same input; returns their mean output."""

    def __init__(self, members: int, n_channels: int, output_dim: int):
        super().__init__()
        self.models = nn.ModuleList(PitomModel(n_channels, output_dim) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.models], dim=1).mean(dim=1)


# ---------------------------------------------------------------------------- metrics (§5.3)


def _cosine_matrix(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[B, B] cosine similarities of every prediction i with every target j."""
    return F.normalize(pred, dim=-1) @ F.normalize(y, dim=-1).T


def cosine_sim(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of cos(pred_i, y_i)."""
    return F.cosine_similarity(pred, y, dim=-1).mean()


def nll_embedding(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the within-batch cosine matrix with the diagonal as the targets."""
    logits = _cosine_matrix(pred, y)
    return F.cross_entropy(logits, torch.arange(len(pred), device=pred.device))


def pairwise_accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of ordered pairs i != j with cos(pred_i, y_i) > cos(pred_i, y_j).

    Ties count as failures; a batch of one example (no pair) scores 0.
    """
    sims = _cosine_matrix(pred, y)
    n = len(pred)
    if n < 2:
        return torch.tensor(0.0)
    wins = (sims.diagonal()[:, None] > sims).float()
    return (wins.sum() - wins.diagonal().sum()) / (n * (n - 1))


METRICS = {
    "nll_embedding": nll_embedding,
    "cosine_sim": cosine_sim,
    "pairwise_accuracy": pairwise_accuracy,
}


# ---------------------------------------------------------------------------- training (§4.2)


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer | None,
) -> dict[str, float]:
    """One pass over `loader` (training when an optimiser is given): mean of per-batch values.
    Batches move to the model's device as they are drawn."""
    device = next(model.parameters()).device
    training = optimizer is not None
    model.train(training)
    totals = dict.fromkeys(("loss", *METRICS), 0.0)
    n_batches = 0
    with torch.set_grad_enabled(training):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss = loss_fn(out, yb)
            if training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            totals["loss"] += loss.item()
            out = out.detach()
            for name, metric in METRICS.items():
                totals[name] += metric(out, yb).item()
            n_batches += 1
    return {k: v / n_batches for k, v in totals.items()}


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (decoupled decay, HEAD after PR #25) or Adam (L2 in the gradient, older HEAD)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer {name!r}: expected 'adamw' or 'adam'")


@dataclass
class FoldRun:
    """What one (lag, fold) training leaves."""

    epochs: int
    best_epoch: int  # 1-based
    test: dict[str, float]
    seconds: float


def train_fold(
    loaders: dict[str, DataLoader],
    n_channels: int,
    output_dim: int,
    *,
    members: int,
    epochs: int,
    patience: int,
    lr: float,
    weight_decay: float,
    optimizer: str,
    device: str = "cpu",
) -> FoldRun:
    """Build a fresh ensemble, train it with early stopping, reload the best state, test it."""
    t0 = time.perf_counter()
    model = EnsemblePitomModel(members, n_channels, output_dim).to(device)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    loss_fn = nn.MSELoss()
    best_score, best_state, best_epoch, bad = -float("inf"), None, 0, 0
    for epoch in range(1, epochs + 1):
        run_epoch(model, loaders["train"], loss_fn, opt)
        score = run_epoch(model, loaders["val"], loss_fn, None)["cosine_sim"]
        if score > best_score:
            best_score, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:  # the validation cosine was NaN at every epoch otherwise
        model.load_state_dict(best_state)
    test = run_epoch(model, loaders["test"], loss_fn, None)
    return FoldRun(epoch, best_epoch, test, time.perf_counter() - t0)


def fold_loaders(inputs, lag_index: int, fold, batch_size: int) -> dict[str, DataLoader]:
    """Standardised float32 tensors of one (lag, fold), as the reference's three DataLoaders."""
    nfold = fold.number - 1 if inputs.norm_mean.shape[0] > 1 else 0
    yfold = fold.number - 1 if inputs.y.shape[0] > 1 else 0
    mean = inputs.norm_mean[nfold, lag_index]
    std = inputs.norm_std[nfold, lag_index]
    x = torch.from_numpy(
        np.ascontiguousarray((inputs.x[:, lag_index] - mean) / std, dtype=np.float32)
    )
    y = torch.from_numpy(np.ascontiguousarray(inputs.y[yfold], dtype=np.float32))

    def loader(rows, shuffle: bool) -> DataLoader:
        rows = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return DataLoader(TensorDataset(x[rows], y[rows]), batch_size=batch_size, shuffle=shuffle)

    return {
        "train": loader(fold.train, True),
        "val": loader(fold.val, False),
        "test": loader(fold.test, False),
    }


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds all processes have been busy, this process's CPU seconds); None off Linux."""
    try:
        with open("/proc/stat") as f:
            jiffies = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return None
    busy = sum(jiffies) - jiffies[3] - jiffies[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK"), sum(os.times()[:2])


def _others_busy(before: tuple[float, float] | None, seconds: float) -> float:
    """Cores other processes kept busy since `before` (a `_cpu_seconds()` reading)."""
    after = _cpu_seconds()
    if before is None or after is None:
        return float("nan")
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / seconds


@dataclass
class ReferenceResult:
    """Timing and outcome of `run_reference`; the lists have one entry per (lag, fold), in order.

    `others_busy` is how many cores other processes kept busy during each run (NaN without
    /proc/stat); above about 0.25 that run's timing is inflated (see the module docstring).
    """

    seconds: float  # wall time of the whole training (all lags x folds), excluding data loading
    epochs: list[int]  # epochs actually run
    test_cosine: list[float]  # per-batch-mean test cosine (the reference's recipe)
    lags: list[int]  # lag (ms)
    others_busy: list[float] = field(default_factory=list)


def run_reference(
    inputs,
    *,
    members: int = 10,
    batch_size: int = 32,
    epochs: int = 100,
    patience: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: str = "adamw",
    lags: list[int] | None = None,
    folds: list[int] | None = None,
    pairs: list[tuple[int, int]] | None = None,
    seed: int = 42,
    threads: int = 2,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> ReferenceResult:
    """Train every (lag, fold) of `inputs` (a `podbench.train.inputs.RunInputs`) like the reference.

    `lags` (ms values) and `folds` (1-based numbers) restrict and order what runs; the default is
    every lag and fold of `inputs`; `pairs` (lag ms, fold number) lists the runs instead. Seeds
    python, numpy and torch once, as the reference's main. `device` is torch's ("cuda" on a GPU).
    `seconds` sums the per-(lag, fold) training times (model build, epochs, best reload, test);
    slicing the fold tensors beforehand is not counted.
    """
    if epochs < 1 or patience < 1:
        raise ValueError(f"epochs = {epochs}, patience = {patience}: both must be >= 1")
    lag_values = list(inputs.lags) if lags is None else [int(v) for v in lags]
    by_number = {f.number: f for f in inputs.folds}
    fold_numbers = list(by_number) if folds is None else [int(k) for k in folds]
    runs = (
        [(int(lag), int(k)) for lag, k in pairs]
        if pairs is not None
        else [(lag, k) for lag in lag_values for k in fold_numbers]
    )
    unknown = sorted({lag for lag, _ in runs} - set(inputs.lags)) + sorted(
        {k for _, k in runs} - set(by_number)
    )
    if unknown:
        raise ValueError(
            f"lags/folds {unknown} not in the inputs (lags {inputs.lags}, "
            f"folds {sorted(by_number)})"
        )
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    n_channels, output_dim = inputs.x.shape[2], inputs.y.shape[-1]
    result = ReferenceResult(0.0, [], [], [])
    try:
        for lag, number in runs:
            loaders = fold_loaders(inputs, inputs.lags.index(lag), by_number[number], batch_size)
            cpu = _cpu_seconds()
            run = train_fold(
                loaders,
                n_channels,
                output_dim,
                members=members,
                epochs=epochs,
                patience=patience,
                lr=lr,
                weight_decay=weight_decay,
                optimizer=optimizer,
                device=device,
            )
            result.seconds += run.seconds
            result.epochs.append(run.epochs)
            result.test_cosine.append(run.test["cosine_sim"])
            result.lags.append(lag)
            result.others_busy.append(_others_busy(cpu, run.seconds))
            log(
                f"lag {lag:>6} ms  fold {number}: {run.epochs:>3} epochs (best {run.best_epoch}), "
                f"test cosine {run.test['cosine_sim']:.4f}, {run.seconds:.1f} s "
                f"({run.seconds / run.epochs:.2f} s/epoch)"
            )
            if result.others_busy[-1] > 0.25:
                log(
                    f"  warning: other processes kept {result.others_busy[-1]:.1f} cores busy "
                    "meanwhile; this timing may be inflated (see the module docstring)"
                )
    finally:
        torch.set_num_threads(previous_threads)
    return result


def count_flops_per_step(
    E: int, T: int, D: int, members: int, batch: int, filters: int = FILTERS, backward: bool = True
) -> int:
    """Forward + backward FLOPs of one training step of the ensemble (convolutions and dense).

    Per example and member, with F = filters (128), T1 = T - 2 (conv k3), T2 = T1 // 2 + 1
    (max-pool 2, stride 2, padding 1), T3 = T2 - 1 and T4 = T3 - 1 (the two k2 convolutions),
    the multiply-accumulates of the forward pass are

        conv1 = T1·F·E·3,   rest = T3·F·F·2 + T4·F·F·2 + F·D,   MACs = conv1 + rest.

    Forward = 2·MACs. Backward = 2 × forward (input and weight gradients) for every layer but
    the first, whose input (the data) needs no gradient: weight gradient only, 1 × forward. So

        FLOPs = members · batch · (2·MACs + 2·conv1 + 4·rest)
              = members · batch · (6·MACs - 2·conv1),

    which equals `torch.utils.flop_counter.FlopCounterMode`'s count for a step (so it is not
    3 × forward); `backward=False` gives the forward pass alone, members · batch · 2·MACs. Biases,
    BatchNorm, ReLU, pooling, LayerNorm, tanh, the loss, the per-batch metrics and the optimiser
    update are not counted (about 1 % more, mostly the update's ~10 FLOPs per parameter). At
    E=183, T=10, D=50, 10 members, batch 32: 1.17 GFLOP (the plain 6·MACs rule would say 1.53).
    """
    t1 = T - 2
    t3 = t1 // 2 + 1 - 1
    t4 = t3 - 1
    conv1 = t1 * filters * E * 3
    rest = t3 * filters * filters * 2 + t4 * filters * filters * 2 + filters * D
    per_example = 6 * (conv1 + rest) - 2 * conv1 if backward else 2 * (conv1 + rest)
    return members * batch * per_example


# ---------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> None:
    """Build or reuse podbench's stores for CONFIG and train them with the reference loop."""
    from podbench import config
    from podbench.features.build import build_features
    from podbench.train.inputs import prepare

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="podbench YAML config")
    ap.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="config overrides, e.g. training.epochs=5",
    )
    ap.add_argument("--lags", nargs="+", type=int, help="lag values (ms) to train; default all")
    ap.add_argument("--folds", nargs="+", type=int, help="fold numbers to train; default all")
    ap.add_argument("--epochs", type=int, help="max epochs (default training.epochs)")
    ap.add_argument("--members", type=int, help="ensemble members (default model.members)")
    ap.add_argument("--patience", type=int, help="default training.patience")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)

    cfg = config.load(args.config, args.set)
    t = cfg.training
    t0 = time.perf_counter()
    inputs = prepare(cfg, build_features(cfg, log=print))
    print(
        f"data: {time.perf_counter() - t0:.1f} s; {len(inputs.words)} words, "
        f"inputs {tuple(inputs.x.shape[2:])}, targets {inputs.y.shape[-1]}-d"
    )
    res = run_reference(
        inputs,
        members=args.members or cfg.model.members,
        batch_size=t.batch_size,
        epochs=args.epochs or t.epochs,
        patience=args.patience or t.patience,
        lr=t.lr,
        weight_decay=t.weight_decay,
        optimizer=t.optimizer,
        lags=args.lags,
        folds=args.folds,
        seed=t.seed,
        threads=args.threads,
    )
    n_epochs = sum(res.epochs)
    print(
        f"total: {res.seconds:.1f} s for {len(res.epochs)} (lag, fold) runs, {n_epochs} epochs "
        f"({res.seconds / n_epochs:.2f} s/epoch)"
    )


if __name__ == "__main__":
    main()
