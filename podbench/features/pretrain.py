"""`podbench pretrain`: self-supervised MAE pretraining on unlabelled high-gamma windows.

Windows of `data.window_width` seconds are drawn at random times from the recordings of the
config's subjects and electrodes (all subjects side by side, since every recording is aligned
to the podcast), with a random subset of at most MAX_CHANNELS channels per window. Only the
signal is read: never the transcript, word onsets or targets.

The result is a keyed artefact of the store root, `<output.stores>/pretrain/<key>/`, holding
`checkpoint.pt` (state_dict), `config.json` (pretrain section, architecture, data fragment,
podbench version), `loss.csv` (step, training loss), `held_out.csv` (step, loss on fixed
windows of the last HELD_OUT_FRACTION of the recordings, which training never sees),
`loss.png` and `loss.svg` (both curves) and `digest` (sha256 of checkpoint.pt, written last: the
completion marker). The key hashes the pretrain section and the data that shapes the
windows (the content fingerprints of the recordings and channel tables), like every stage's
key, so the same config on the same data finds the same folder and skips the work, wherever
the data or the store root lie.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from podbench import __version__
from podbench.config import Config, keyed_values
from podbench.data.recordings import Recording, file_digest, open_recordings
from podbench.errors import ConfigError, DataError
from podbench.features.context import resolve
from podbench.features.keys import canonical_json, epochs_fragment, recording_sources
from podbench.progress import progress

PRETRAIN_VERSION = 2  # bump when the model or the pretraining recipe changes
MAX_CHANNELS = 64  # channels per pretraining window (keeps token counts small)
BLOCK_SECONDS = 30.0  # windows are drawn from a block of this length read from every recording
REFRESH_STEPS = 10  # steps between block reads
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 0.05
HELD_OUT_FRACTION = 0.1  # tail of the recordings kept out of training, for the held-out loss
HELD_OUT_BATCHES = 4  # fixed held-out batches scored at every report step
STAGE = "pretrain"  # its folder in the store root
FILES = ("checkpoint.pt", "config.json", "loss.csv", "held_out.csv", "loss.png", "digest")


def pretrain_fragment(cfg: Config) -> dict:
    """What a pretraining depends on: the pretrain section and the data shaping the windows
    (the epochs fragment without the lag grid and the events, which pretraining never uses;
    the content of the recordings and channel tables only)."""
    ctx = resolve(cfg)
    data = epochs_fragment(ctx)
    for unused in ("lags", "events"):
        data.pop(unused)
    data["data"] = ctx.fingerprints.of(recording_sources(ctx))
    return {
        "version": PRETRAIN_VERSION,
        "pretrain": keyed_values(cfg.pretrain, "pretrain"),
        "data": data,
    }


def pretrain_dir(cfg: Config) -> Path:
    """`<output.stores>/pretrain/<key>` of a config."""
    key = hashlib.sha256(canonical_json(pretrain_fragment(cfg)).encode()).hexdigest()
    return Path(cfg.output.stores).expanduser() / STAGE / key


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


class WindowSampler:
    """Random windows [batch, channel, time] of the recordings side by side, drawn from a
    block of BLOCK_SECONDS inside samples [start, stop) that is read afresh every
    REFRESH_STEPS steps."""

    def __init__(
        self,
        recordings: list[Recording],
        window: int,
        rng: np.random.Generator,
        start: int,
        stop: int,
    ):
        self.recordings, self.window, self.rng = recordings, window, rng
        if stop - start < window:
            raise DataError(
                f"recordings have {stop - start} samples for pretraining windows, "
                f"fewer than one window ({window})"
            )
        self.start, self.stop = start, stop
        self.block_len = min(stop - start, max(window, int(BLOCK_SECONDS * recordings[0].sfreq)))
        self.n_channels = sum(len(r.channels) for r in recordings)
        self.block = np.empty((0, 0), np.float32)

    def refresh(self) -> None:
        start = int(self.rng.integers(self.start, self.stop - self.block_len + 1))
        self.block = np.concatenate(
            [r.read(start, start + self.block_len) for r in self.recordings]
        )

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows [batch, k, window] and their channel indices [batch, k], k <= MAX_CHANNELS."""
        k = min(MAX_CHANNELS, self.n_channels)
        channels = np.stack(
            [self.rng.choice(self.n_channels, k, replace=False) for _ in range(batch)]
        )
        starts = self.rng.integers(0, self.block_len - self.window + 1, size=batch)
        times = starts[:, None] + np.arange(self.window)
        return self.block[channels[:, :, None], times[:, None, :]], channels


def _schedule(steps: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(WARMUP_FRACTION * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


def pretrain(cfg: Config, log: Callable[[str], None] = print) -> Path:
    """Pretrain the MAE of `cfg.pretrain` on the config's recordings; return its folder
    (the existing one when that pretraining is already complete)."""
    import torch

    from podbench.data.dataset import channel_coordinates
    from podbench.features.epochs import geometry
    from podbench.models.foundation.mae import MaskedAutoencoder, architecture

    p = cfg.pretrain
    if p.width % p.heads:
        raise ConfigError(f"pretrain.heads = {p.heads}: must divide pretrain.width = {p.width}")
    folder = pretrain_dir(cfg)
    if is_complete(folder):
        log(f"pretraining already complete: {folder}")
        return folder
    ctx = resolve(cfg)
    dataset = ctx.dataset
    recordings = open_recordings(dataset, ctx.subjects, ctx.electrodes, cfg.data.signal)
    sfreq = recordings[0].sfreq
    window = geometry(cfg, sfreq).window
    if window < p.patch:
        raise ConfigError(
            f"pretrain.patch = {p.patch}: longer than the window of "
            f"data.window_width = {cfg.data.window_width} s ({window} samples)"
        )
    arch = architecture(p.width, p.depth, p.heads, p.patch, window // p.patch)
    channels = [f"sub-{r.subject:02d}:{n}" for r in recordings for n in r.channels]
    coords, missing = channel_coordinates(dataset.root, channels)
    if missing:
        log(
            f"{len(missing)} channel(s) without MNI coordinates use their subject's mean: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    masks = torch.Generator().manual_seed(p.seed)
    model = MaskedAutoencoder(**arch).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(p.steps))
    n_times = min(r.n_times for r in recordings)
    split = n_times - max(window, int(HELD_OUT_FRACTION * n_times))
    sampler = WindowSampler(recordings, window, rng, 0, split)
    held_out = WindowSampler(recordings, window, np.random.default_rng(p.seed + 1), split, n_times)
    held_out.refresh()
    held_batches = [held_out.sample(p.batch_size) for _ in range(HELD_OUT_BATCHES)]
    coords_t = torch.from_numpy(coords)

    def held_out_loss() -> float:
        fixed = torch.Generator().manual_seed(p.seed + 1)  # the same masks at every step
        model.eval()
        with torch.no_grad():
            total = sum(
                model.loss(
                    torch.from_numpy(x).to(device), coords_t[c].to(device), p.mask_ratio, fixed
                ).item()
                for x, c in held_batches
            )
        model.train()
        return total / len(held_batches)

    log(
        f"pretraining on {device}: {len(channels)} channels of {len(recordings)} subject(s), "
        f"windows of {window} samples ({arch['max_patches']} patches of {p.patch}), "
        f"{p.steps} steps of {p.batch_size}"
    )
    every = max(1, p.steps // 10)
    losses, held, t0 = [], [], time.perf_counter()
    bar = progress(p.steps, "pretraining", unit="step")
    model.train()
    for step in range(p.steps):
        if step % REFRESH_STEPS == 0:
            sampler.refresh()
        x, picked = sampler.sample(p.batch_size)
        loss = model.loss(
            torch.from_numpy(x).to(device), coords_t[picked].to(device), p.mask_ratio, masks
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.update(1)
        if (step + 1) % every == 0 or step + 1 == p.steps:
            held.append((step + 1, held_out_loss()))
            log(
                f"pretrain step {step + 1}/{p.steps}  loss {np.mean(losses[-every:]):.4f}  "
                f"held-out {held[-1][1]:.4f}  ({time.perf_counter() - t0:.0f} s)"
            )
    bar.close()

    meta = {
        "podbench_version": __version__,
        "key": folder.name,
        **pretrain_fragment(cfg),
        "architecture": arch,
        "sfreq": sfreq,
        "window_samples": window,
        "channels": len(channels),
        "device": device,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _write(folder, state, meta, losses, held)
    log(f"pretrained model: {folder}")
    return folder


def plot_losses(losses: list[float], held: list[tuple[int, float]], path: Path) -> None:
    """loss.png and .svg: the training loss per step and the held-out loss at the report
    steps."""
    from podbench import plotting

    with plotting.figure(width=4.5, height=3.0) as (fig, ax):
        ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8, label="training windows")
        ax.plot(*zip(*held), marker="o", label=f"held-out windows (last {HELD_OUT_FRACTION:.0%})")
        ax.set_xlabel("step")
        ax.set_ylabel("masked reconstruction MSE")
        ax.set_title("MAE pretraining")
        ax.legend()
        plotting.save(fig, path)


def _write(
    folder: Path, state: dict, meta: dict, losses: list[float], held: list[tuple[int, float]]
) -> None:
    """Publish the folder atomically (`podbench.publish`; the digest is its marker)."""
    import torch

    from podbench.publish import publish_dir

    def write(tmp: Path) -> str:
        torch.save(state, tmp / "checkpoint.pt")
        (tmp / "config.json").write_text(json.dumps(meta, indent=1))
        (tmp / "loss.csv").write_text(
            "step,loss\n" + "".join(f"{i + 1},{v:.6f}\n" for i, v in enumerate(losses))
        )
        (tmp / "held_out.csv").write_text(
            "step,loss\n" + "".join(f"{s},{v:.6f}\n" for s, v in held)
        )
        plot_losses(losses, held, tmp / "loss.png")
        return file_digest(tmp / "checkpoint.pt") + "\n"

    publish_dir(folder, write, "digest", "writing the pretrained model")


def pretrain_command(cfg: Config, log: Callable[[str], None] = print) -> Path:
    """`podbench pretrain`: pretrain (or find) the model, then say how to use it."""
    folder = pretrain(cfg, log)
    losses = np.loadtxt(folder / "loss.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1]
    n = max(1, min(10, len(losses) // 5))
    held = np.loadtxt(folder / "held_out.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1]
    log(
        f"loss {losses[:n].mean():.4f} (first {n} steps) -> {losses[-n:].mean():.4f} (last {n}); "
        f"held-out {held[0]:.4f} -> {held[-1]:.4f}; curves: {folder / 'loss.png'}"
    )
    ref = cfg.source if cfg.source.endswith((".yml", ".yaml")) else folder
    log(f"use it with  preprocess: {{name: foundation, params: {{checkpoint: {ref}}}}}")
    return folder
