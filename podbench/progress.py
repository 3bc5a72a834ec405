"""Progress bars for long steps (tqdm: a bar on a terminal or in a notebook, nothing in logs)."""

from __future__ import annotations


def progress(total: int, desc: str, unit: str = "it"):
    """A progress bar of `total` steps that disappears when done; call .update(n), .close()."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None)
