"""A masked autoencoder (MAE) for high-gamma windows of any electrode layout.

A window x [batch, channel, time] becomes one token per (electrode, time patch of `patch`
samples). Each channel's window is z-scored over time first, so the absolute scale of the
signal (about 1e-6 V) does not matter. A token is

    value embedding (Linear over the patch's samples)
  + electrode position (random Fourier features of its MNI x, y, z in mm -> Linear)
  + time-patch embedding (learned, one per patch index)

so strips, depths, grids and the super-subject concatenation of several subjects all work.
The encoder's blocks factorise attention (over the time patches of each electrode, then over
the electrodes of each time patch), which keeps hundreds of electrodes affordable on a CPU.
Pretraining hides `mask_ratio` of the tokens (their value embedding is replaced by a learned
mask token, their position kept); a light decoder (a per-token MLP) reconstructs the hidden
patches from the encoder's output (MSE on hidden tokens only). `forward_features` runs the
encoder on every token, unmasked, and averages them: one vector of `width` numbers per window
(`pool="tokens"`, the seed's readout), or one per electrode (`pool="electrodes"`: each
electrode's time patches averaged, [channel * width] numbers per window).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FOURIER_FEATURES = 32  # sin/cos pairs of electrode-position features
FOURIER_SCALES_MM = (8.0, 80.0)  # wavelengths of the position features, log-spaced
FOURIER_SEED = 0
POOLS = ("tokens", "electrodes")  # readouts of forward_features


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Z-score each channel of each window over time (a constant channel becomes zeros)."""
    x = x - x.mean(-1, keepdim=True)
    std = x.pow(2).mean(-1, keepdim=True).sqrt()
    return x / std.clamp_min(torch.finfo(x.dtype).tiny)


class Attention(nn.Module):
    """Multi-head self-attention over the middle axis of [sequences, length, width]."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


class Block(nn.Module):
    """Factorised pre-norm transformer block on a [batch, channel, patch, width] token grid:
    attention over the time patches of each channel, then over the channels of each time
    patch, then an MLP; all residual. Cost grows as C*P^2 + P*C^2, not (C*P)^2."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.time_norm, self.time = nn.LayerNorm(width), Attention(width, heads)
        self.space_norm, self.space = nn.LayerNorm(width), Attention(width, heads)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, p, d = h.shape
        h = h + self.time(self.time_norm(h).reshape(b * c, p, d)).view(b, c, p, d)
        across = self.space(self.space_norm(h).transpose(1, 2).reshape(b * p, c, d))
        h = h + across.view(b, p, c, d).transpose(1, 2)
        return h + self.mlp(self.mlp_norm(h))


class Position(nn.Module):
    """Token positions: electrode MNI coordinates (Fourier features) + time-patch index."""

    frequencies: torch.Tensor  # a buffer (register_buffer)

    def __init__(self, width: int, max_patches: int):
        super().__init__()
        gen = torch.Generator().manual_seed(FOURIER_SEED)
        lo, hi = (math.log(s) for s in FOURIER_SCALES_MM)
        wavelengths = torch.exp(lo + (hi - lo) * torch.rand(FOURIER_FEATURES, generator=gen))
        directions = F.normalize(torch.randn(3, FOURIER_FEATURES, generator=gen), dim=0)
        self.register_buffer("frequencies", directions / wavelengths)  # cycles per mm
        self.space = nn.Linear(2 * FOURIER_FEATURES, width)
        self.time = nn.Parameter(0.5 * torch.randn(max_patches, width))

    def forward(self, coords: torch.Tensor, n_patches: int) -> torch.Tensor:
        """coords [batch, channel, 3] (mm) -> [batch, channel, n_patches, width]."""
        phase = 2 * math.pi * coords @ self.frequencies
        space = self.space(torch.cat([phase.sin(), phase.cos()], -1))
        return space[:, :, None, :] + self.time[:n_patches]


class MaskedAutoencoder(nn.Module):
    """Masked autoencoder over (electrode, time patch) tokens; see the module docstring."""

    def __init__(
        self, width: int, depth: int, heads: int, patch: int, max_patches: int, decoder_width: int
    ):
        super().__init__()
        self.patch, self.max_patches = patch, max_patches
        self.value = nn.Linear(patch, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.position = Position(width, max_patches)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.decoder = nn.Sequential(
            nn.Linear(width, decoder_width), nn.GELU(), nn.Linear(decoder_width, patch)
        )

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """Windows [batch, channel, time] -> normalised patches [batch, channel, patch, samples]."""
        n = x.shape[-1] // self.patch
        if not 1 <= n <= self.max_patches:
            raise ValueError(
                f"windows of {x.shape[-1]} samples give {n} patches of {self.patch}; "
                f"this model takes 1..{self.max_patches}"
            )
        x = normalise(x)[..., : n * self.patch]
        return x.reshape(*x.shape[:2], n, self.patch)

    def encode(
        self, values: torch.Tensor, coords: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Patches [batch, channel, patch, samples] -> encoded tokens [..., width]; tokens
        where `hidden` is true show the mask token instead of their values."""
        tokens = self.value(values)
        if hidden is not None:
            tokens = torch.where(hidden[..., None], self.mask_token, tokens)
        if coords.dim() == 2:
            coords = coords.expand(len(values), *coords.shape)
        h = tokens + self.position(coords, values.shape[2])
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward_features(
        self, x: torch.Tensor, coords: torch.Tensor, pool: str = "tokens"
    ) -> torch.Tensor:
        """Windows [batch, channel, time] and coords [channel, 3] or [batch, channel, 3] (mm)
        -> the encoder on every token, averaged over all tokens ([batch, width]) or over each
        electrode's time patches ([batch, channel * width]); see POOLS."""
        if pool not in POOLS:
            raise ValueError(f"pool = {pool!r}; expected one of {', '.join(POOLS)}")
        h = self.encode(self.patches(x), coords)
        return h.mean((1, 2)) if pool == "tokens" else h.mean(2).flatten(1)

    def loss(
        self,
        x: torch.Tensor,
        coords: torch.Tensor,
        mask_ratio: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """MAE loss: MSE of the reconstructed hidden patches (normalised samples). Each
        window hides round(mask_ratio * tokens) tokens, drawn with `generator` (CPU)."""
        values = self.patches(x)
        b, c, p, _ = values.shape
        n_hide = min(c * p - 1, max(1, round(mask_ratio * c * p)))
        rank = torch.rand(b, c * p, generator=generator).argsort(1).argsort(1)
        hidden = (rank < n_hide).view(b, c, p).to(x.device)
        pred = self.decoder(self.encode(values, coords, hidden))
        return F.mse_loss(pred[hidden], values[hidden])


def architecture(width: int, depth: int, heads: int, patch: int, max_patches: int) -> dict:
    """Constructor arguments of a MaskedAutoencoder (saved with every checkpoint)."""
    return {
        "width": width,
        "depth": depth,
        "heads": heads,
        "patch": patch,
        "max_patches": max_patches,
        "decoder_width": 2 * width,
    }
