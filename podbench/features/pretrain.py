"""`podbench pretrain`: self-supervised MAE pretraining on unlabelled high-gamma windows.

Windows of `data.window_width` seconds are drawn at random times from the recordings of the
config's subjects and electrodes (all subjects side by side, since every recording is aligned
to the podcast), with a random subset of at most MAX_CHANNELS channels per window. Only the
signal is read: never the transcript, word onsets or targets.

The result is a folder `<output.results>/<trial_name>/pretrain-<key12>/` holding
`checkpoint.pt` (state_dict), `config.json` (pretrain section, architecture, data fragment,
podbench version), `loss.csv` (step, loss) and `digest` (sha256 of checkpoint.pt, written
last: the completion marker). key12 hashes the pretrain section and the data fields that
shape the windows, so the same config finds the same folder and skips the work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

from podbench import __version__
from podbench.config import Config
from podbench.data.recordings import Recording, file_digest, open_recordings
from podbench.errors import ConfigError, DataError
from podbench.features.context import resolve
from podbench.features.keys import SHORT, canonical_json, epochs_fragment

PRETRAIN_VERSION = 1  # bump when the model or the pretraining recipe changes
MAX_CHANNELS = 64  # channels per pretraining window (keeps token counts small)
BLOCK_SECONDS = 30.0  # windows are drawn from a block of this length read from every recording
REFRESH_STEPS = 10  # steps between block reads
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 0.05
FILES = ("checkpoint.pt", "config.json", "loss.csv", "digest")


def pretrain_fragment(cfg: Config) -> dict:
    """What a pretraining depends on: the pretrain section and the data shaping the windows
    (the epochs fragment without the lag grid and the events, which pretraining never uses;
    the content of the recordings and channel tables only)."""
    from podbench.features.epochs import recording_sources

    ctx = resolve(cfg)
    data = epochs_fragment(ctx)
    for unused in ("lags", "events"):
        data.pop(unused)
    data["data"] = ctx.fingerprints.of(recording_sources(ctx))
    return {"version": PRETRAIN_VERSION, "pretrain": dataclasses.asdict(cfg.pretrain), "data": data}


def pretrain_dir(cfg: Config) -> Path:
    """`<output.results>/<trial_name>/pretrain-<key12>` of a config."""
    key = hashlib.sha256(canonical_json(pretrain_fragment(cfg)).encode()).hexdigest()
    return Path(cfg.output.results).expanduser() / cfg.trial_name / f"pretrain-{key[:SHORT]}"


def is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


class WindowSampler:
    """Random windows [batch, channel, time] of the recordings side by side, drawn from a
    block of BLOCK_SECONDS that is read afresh every REFRESH_STEPS steps."""

    def __init__(self, recordings: list[Recording], window: int, rng: np.random.Generator):
        self.recordings, self.window, self.rng = recordings, window, rng
        n_times = min(r.n_times for r in recordings)
        if n_times < window:
            raise DataError(f"recordings have {n_times} samples, fewer than one window ({window})")
        self.n_times = n_times
        self.block_len = min(n_times, max(window, int(BLOCK_SECONDS * recordings[0].sfreq)))
        self.n_channels = sum(len(r.channels) for r in recordings)
        self.block = np.empty((0, 0), np.float32)

    def refresh(self) -> None:
        start = int(self.rng.integers(0, self.n_times - self.block_len + 1))
        self.block = np.concatenate([r.read(start, start + self.block_len) for r in self.recordings])

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows [batch, k, window] and their channel indices [batch, k], k <= MAX_CHANNELS."""
        k = min(MAX_CHANNELS, self.n_channels)
        channels = np.stack([self.rng.choice(self.n_channels, k, replace=False) for _ in range(batch)])
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

    from podbench.features.epochs import geometry
    from podbench.data.dataset import channel_coordinates
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
        raise ConfigError(f"pretrain.patch = {p.patch}: longer than the window of "
                          f"data.window_width = {cfg.data.window_width} s ({window} samples)")
    arch = architecture(p.width, p.depth, p.heads, p.patch, window // p.patch)
    channels = [f"sub-{r.subject:02d}:{n}" for r in recordings for n in r.channels]
    coords, missing = channel_coordinates(dataset.root, channels)
    if missing:
        log(f"{len(missing)} channel(s) without MNI coordinates use their subject's mean: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(p.seed)
    rng = np.random.default_rng(p.seed)
    masks = torch.Generator().manual_seed(p.seed)
    model = MaskedAutoencoder(**arch).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(p.steps))
    sampler = WindowSampler(recordings, window, rng)
    coords_t = torch.from_numpy(coords)
    log(f"pretraining on {device}: {len(channels)} channels of {len(recordings)} subject(s), "
        f"windows of {window} samples ({arch['max_patches']} patches of {p.patch}), "
        f"{p.steps} steps of {p.batch_size}")
    every = max(1, p.steps // 10)
    losses, t0 = [], time.perf_counter()
    model.train()
    for step in range(p.steps):
        if step % REFRESH_STEPS == 0:
            sampler.refresh()
        x, picked = sampler.sample(p.batch_size)
        loss = model.loss(torch.from_numpy(x).to(device), coords_t[picked].to(device),
                          p.mask_ratio, masks)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == p.steps:
            recent = np.mean(losses[-every:])
            log(f"pretrain step {step + 1}/{p.steps}  loss {recent:.4f}  "
                f"({time.perf_counter() - t0:.0f} s)")

    meta = {"podbench_version": __version__, "key": folder.name.removeprefix("pretrain-"),
            **pretrain_fragment(cfg), "architecture": arch, "sfreq": sfreq,
            "window_samples": window, "channels": len(channels), "device": device,
            "seconds": round(time.perf_counter() - t0, 1)}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _write(folder, state, meta, losses)
    log(f"pretrained model: {folder}")
    return folder


def _write(folder: Path, state: dict, meta: dict, losses: list[float]) -> None:
    """Write the folder atomically: a temporary sibling renamed into place."""
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        torch.save(state, tmp / "checkpoint.pt")
        (tmp / "config.json").write_text(json.dumps(meta, indent=1))
        (tmp / "loss.csv").write_text("step,loss\n" + "".join(
            f"{i + 1},{v:.6f}\n" for i, v in enumerate(losses)))
        (tmp / "digest").write_text(file_digest(tmp / "checkpoint.pt") + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not is_complete(folder):  # someone else published the same key first: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pretrain_command(cfg: Config, log: Callable[[str], None] = print) -> Path:
    """`podbench pretrain`: pretrain (or find) the model, then say how to use it."""
    folder = pretrain(cfg, log)
    losses = np.loadtxt(folder / "loss.csv", delimiter=",", skiprows=1, ndmin=2)[:, 1]
    n = max(1, min(10, len(losses) // 5))
    log(f"loss {losses[:n].mean():.4f} (first {n} steps) -> {losses[-n:].mean():.4f} (last {n})")
    ref = cfg.source if cfg.source.endswith((".yml", ".yaml")) else folder
    log(f"use it with  preprocess: {{name: foundation, params: {{checkpoint: {ref}}}}}")
    return folder
