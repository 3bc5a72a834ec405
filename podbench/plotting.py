"""One style for every figure podbench draws, saved as PNG with an SVG twin beside it.

Figures are drawn on a bare matplotlib Figure inside `figure(...)` (so the caller's backend
and rcParams are left alone), sized for a paper's full width with fonts legible when printed
at column width; `save` writes `<name>.png` and `<name>.svg` (text kept as text, so labels are
searchable and editable). Lag curves share one drawing: the mean over folds, a fold band, the
null's mean-to-95th-percentile band, significant lags starred, the lag chosen on validation
dashed, chance and lag 0 as reference lines, lags in ms.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

WIDTH = 6.5  # inches: a paper's text width (about twice a column)

STYLE: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 3.5,
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "svg.fonttype": "none",
}


@contextmanager
def figure(width: float = WIDTH, height: float = 3.4, **subplots) -> Iterator[tuple]:
    """(figure, axes) in podbench's style; draw and `save` inside the block."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, fig.subplots(**subplots)


def save(fig, path: Path) -> list[Path]:
    """Write `path` (.png) and its vector twin (.svg) beside it; return both paths."""
    png, svg = Path(path).with_suffix(".png"), Path(path).with_suffix(".svg")
    fig.savefig(png)
    fig.set_layout_engine("none")  # the twin keeps the layout the PNG was drawn with
    fig.savefig(svg)
    return [png, svg]


def encoded(fig) -> tuple[bytes, bytes]:
    """The figure as PNG and SVG bytes (for pages that embed their figures)."""
    out = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        fig.set_layout_engine("none")  # laid out once: the twin keeps that layout
        out.append(buf.getvalue())
    return out[0], out[1]


def lag_axes(ax, lags: Sequence[int], ylabel: str, chance: float | None) -> None:
    """Axis labels, ticks at the lags, chance and lag-0 lines."""
    if chance is not None:
        ax.axhline(chance, color="k", lw=0.8, ls="--", label="chance")
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xticks(list(lags))
    if len(lags) > 12:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("lag relative to the event onset (ms)")
    ax.set_ylabel(ylabel)


def lag_curve(
    ax,
    lags: Sequence[int] | np.ndarray,
    mean: Sequence[float | None] | np.ndarray,
    *,
    low=None,
    high=None,
    label: str,
    colour=None,
    significant: Sequence[bool] | None = None,
    null: tuple[Sequence, Sequence] | None = None,
    chosen: int | None = None,
) -> None:
    """One curve: mean over folds with a band from `low` to `high` (e.g. fold std or range),
    the null's band from its mean to its 95th percentile, significant lags starred and the
    lag chosen on validation as a dashed line."""
    lags = np.asarray(lags, float)
    mean = np.asarray([np.nan if v is None else v for v in mean], float)
    (line,) = ax.plot(lags, mean, marker="o", label=label, color=colour)
    colour = line.get_color()
    if low is not None and high is not None:
        ax.fill_between(
            lags, np.asarray(low, float), np.asarray(high, float), alpha=0.18, color=colour, lw=0
        )
    if null is not None:
        null_mean, q95 = (np.asarray([np.nan if v is None else v for v in a], float) for a in null)
        if np.isfinite(q95).any():
            ax.fill_between(
                lags,
                null_mean,
                q95,
                color="grey",
                alpha=0.25,
                lw=0,
                label="null: mean to 95th percentile",
            )
    if significant is not None and any(significant):
        sig = np.asarray(significant, bool)
        ax.plot(
            lags[sig],
            mean[sig],
            ls="none",
            marker="*",
            ms=9,
            color=colour,
            markeredgecolor="k",
            markeredgewidth=0.4,
        )
    if chosen is not None:
        ax.axvline(chosen, color=colour, lw=0.8, ls="--")
