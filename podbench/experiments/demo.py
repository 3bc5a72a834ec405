"""`podbench demo`: stand-in (made if absent) -> build-features -> train -> table."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import as_file, files
from pathlib import Path

from podbench.data.synth import GROUND_TRUTH

DEMO_DURATION = 600.0


def run_demo(
    data_dir: Path,
    overrides: tuple[str, ...] | list[str] = (),
    force: bool = False,
    log: Callable[[str], None] = print,
):
    """Run the demo config (podbench/configs/demo.yml, package data) on the stand-in under
    `data_dir`, making it first if absent; `overrides` are --set PATH=VALUE strings."""
    from podbench import config
    from podbench.data.synth import synthesize
    from podbench.experiments.config_runs import train_config

    if not (data_dir / GROUND_TRUTH).is_file():
        log(
            f"making the demo stand-in (all nine subjects, first {DEMO_DURATION:.0f} s) "
            f"in {data_dir}"
        )
        synthesize(data_dir, duration=DEMO_DURATION, progress=log)
    with as_file(files("podbench") / "configs" / "demo.yml") as path:
        cfg = config.load(path, [f"data.root={data_dir}", *overrides])
    return train_config(cfg, force=force, log=log)
