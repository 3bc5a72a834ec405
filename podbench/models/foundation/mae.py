"""A masked autoencoder (MAE) for high-gamma windows of any electrode layout.

A window x [batch, channel, time] becomes one token per (electrode, time patch of `patch`
samples). Each channel's window is z-scored over time first, so the absolute scale of the
signal (about 1e-6 V) does not matter. A token is

    value embedding (Linear over the patch's samples)
  + electrode position (random Fourier features of its MNI x, y, z in mm -> Linear)
  + time-patch embedding (learned, one per patch index)

so strips, depths, grids and the super-subject concatenation of several subjects all work.
Pretraining hides `mask_ratio` of the tokens; the encoder sees the visible ones and a light
decoder reconstructs the hidden patches (MSE on hidden tokens only). `forward_features` runs
the encoder on every token and averages them: one vector of `width` numbers per window.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FOURIER_FEATURES = 32  # sin/cos pairs of electrode-position features
FOURIER_SCALES_MM = (8.0, 80.0)  # wavelengths of the position features, log-spaced
FOURIER_SEED = 0


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Z-score each channel of each window over time (a constant channel becomes zeros)."""
    x = x - x.mean(-1, keepdim=True)
    std = x.pow(2).mean(-1, keepdim=True).sqrt()
    return x / std.clamp_min(torch.finfo(x.dtype).tiny)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention then a 2x MLP, both residual."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(attended)
        return x + self.mlp(self.norm2(x))


class Position(nn.Module):
    """Token positions: electrode MNI coordinates (Fourier features) + time-patch index."""

    def __init__(self, width: int, max_patches: int):
        super().__init__()
        gen = torch.Generator().manual_seed(FOURIER_SEED)
        lo, hi = (math.log(s) for s in FOURIER_SCALES_MM)
        wavelengths = torch.exp(lo + (hi - lo) * torch.rand(FOURIER_FEATURES, generator=gen))
        directions = F.normalize(torch.randn(3, FOURIER_FEATURES, generator=gen), dim=0)
        self.register_buffer("frequencies", directions / wavelengths)  # cycles per mm
        self.space = nn.Linear(2 * FOURIER_FEATURES, width)
        self.time = nn.Parameter(0.02 * torch.randn(max_patches, width))

    def forward(self, coords: torch.Tensor, n_patches: int) -> torch.Tensor:
        """coords [batch, channel, 3] (mm) -> [batch, channel * n_patches, width]."""
        phase = 2 * math.pi * coords @ self.frequencies
        space = self.space(torch.cat([phase.sin(), phase.cos()], -1))
        pos = space[:, :, None, :] + self.time[:n_patches]
        return pos.flatten(1, 2)


class MaskedAutoencoder(nn.Module):
    """MAE over (electrode, time patch) tokens; see the module docstring."""

    def __init__(self, width: int, depth: int, heads: int, patch: int, max_patches: int,
                 decoder_width: int, decoder_depth: int = 1):
        super().__init__()
        self.patch, self.max_patches = patch, max_patches
        self.value = nn.Linear(patch, width)
        self.position = Position(width, max_patches)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.to_decoder = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(decoder_width))
        self.decoder_position = Position(decoder_width, max_patches)
        dec_heads = max(h for h in range(1, heads + 1) if decoder_width % h == 0)
        self.decoder = nn.ModuleList(Block(decoder_width, dec_heads) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_width)
        self.reconstruct = nn.Linear(decoder_width, patch)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised windows [batch, channel, time] -> [batch, channel * n_patches, patch]."""
        n = x.shape[-1] // self.patch
        if not 1 <= n <= self.max_patches:
            raise ValueError(f"windows of {x.shape[-1]} samples give {n} patches of {self.patch}; "
                             f"this model takes 1..{self.max_patches}")
        x = normalise(x)[..., : n * self.patch]
        return x.reshape(*x.shape[:2], n, self.patch).flatten(1, 2)

    @staticmethod
    def _coords(coords: torch.Tensor, batch: int) -> torch.Tensor:
        return coords.expand(batch, *coords.shape[-2:]) if coords.dim() == 2 else coords

    def encode(self, x: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token values [batch, tokens, patch] and embedded tokens [batch, tokens, width]."""
        values = self.patches(x)
        n_patches = values.shape[1] // x.shape[1]
        tokens = self.value(values) + self.position(self._coords(coords, len(x)), n_patches)
        return values, tokens

    def forward_features(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Windows [batch, channel, time] and coords [channel, 3] or [batch, channel, 3] (mm)
        -> [batch, width]: the encoder on every token, averaged over tokens."""
        _, h = self.encode(x, coords)
        for block in self.blocks:
            h = block(h)
        return self.norm(h).mean(1)

    def loss(self, x: torch.Tensor, coords: torch.Tensor, mask_ratio: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """MAE loss: MSE of the reconstructed hidden patches (normalised samples); the
        random token order comes from `generator` (a CPU generator)."""
        values, tokens = self.encode(x, coords)
        b, n, _ = tokens.shape
        n_keep = min(n - 1, max(1, round(n * (1 - mask_ratio))))
        order = torch.rand(b, n, generator=generator).to(x.device).argsort(1)
        keep, hidden = order[:, :n_keep], order[:, n_keep:]
        h = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        for block in self.blocks:
            h = block(h)
        h = self.to_decoder(self.norm(h))
        n_patches = n // x.shape[1]
        full = torch.scatter(self.mask_token.expand(b, n, -1), 1,
                             keep[..., None].expand(-1, -1, h.shape[-1]), h)
        full = full + self.decoder_position(self._coords(coords, b), n_patches)
        for block in self.decoder:
            full = block(full)
        pred = self.reconstruct(self.decoder_norm(full))
        index = hidden[..., None].expand(-1, -1, self.patch)
        return F.mse_loss(torch.gather(pred, 1, index), torch.gather(values, 1, index))


def architecture(width: int, depth: int, heads: int, patch: int, max_patches: int) -> dict:
    """Constructor arguments of a MaskedAutoencoder (saved with every checkpoint)."""
    return {"width": width, "depth": depth, "heads": heads, "patch": patch,
            "max_patches": max_patches, "decoder_width": max(8, width // 2), "decoder_depth": 1}


def channel_coordinates(root: str | Path, channels: list[str]) -> tuple[np.ndarray, list[str]]:
    """MNI x, y, z (mm) of "sub-XX:NAME" channels, float32 [channel, 3], and the channels
    without coordinates (given the mean of their subject's, or the origin if it has none)."""
    from podbench.data.dataset import Dataset

    dataset = Dataset(root)
    tables: dict[str, dict[str, np.ndarray]] = {}
    out = np.zeros((len(channels), 3), np.float32)
    missing = []
    for i, channel in enumerate(channels):
        sub, name = channel.split(":", 1)
        if sub not in tables:
            table = dataset.electrodes(int(sub[4:]))
            xyz = table[["x", "y", "z"]].to_numpy(np.float64)
            tables[sub] = {n: p for n, p in zip(table["name"], xyz) if np.isfinite(p).all()}
        found = tables[sub].get(name)
        if found is None:
            known = list(tables[sub].values())
            found = np.mean(known, axis=0) if known else np.zeros(3)
            missing.append(channel)
        out[i] = found
    return out, missing
