"""Build (or find) the three feature stores of a config: epochs, targets, latents.

`build_features(cfg)` is a plain function of a config and the store root, so an engine can
run it on any node that sees the same store root. Each stage is built only if its complete
store is missing or its sources changed; children list their parents' completion markers as
sources, so a rebuilt parent makes its children stale too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from podbench import registry
from podbench.config import Config
from podbench.features.context import Resolved, resolve
from podbench.features.epochs import build_epochs
from podbench.features.keys import epochs_sources, stage_specs
from podbench.features.latents import build_latents
from podbench.features.store import COMPLETE, BuildReport, Stores, shape_of_var
from podbench.features.targets import build_targets


@dataclass
class Features:
    """The keys and build reports of a config's feature stores."""

    stores: Stores
    keys: dict[str, str]
    reports: list[BuildReport]

    def open(self, stage: str):
        return self.stores.open(stage, self.keys[stage])

    def load(self, stage: str):
        """The store read into memory (a damaged or corrupt store is a StoreError)."""
        return self.stores.load(stage, self.keys[stage])

    def __repr__(self) -> str:
        """The build report as a short table (what a notebook cell shows)."""
        return "\n".join([BuildReport.HEADER, *(r.line() for r in self.reports)])


def build_features(cfg: Config | Resolved, log: Callable[[str], None] = print,
                   stages: tuple[str, ...] = ("epochs", "targets", "latents")) -> Features:
    """Ensure the feature stores of `cfg` exist; log one report line per stage. Inputs,
    data-dependent values and the store root are checked first (`preflight`)."""
    from podbench.features.preflight import preflight

    preflight([cfg])
    ctx = resolve(cfg)
    cfg = ctx.cfg
    specs = stage_specs(ctx)
    stores = Stores(cfg.output.stores)
    keys = {name: spec.key for name, spec in specs.items()}
    reports: list[BuildReport] = []

    def done(report: BuildReport) -> None:
        reports.append(report)
        log(report.line())

    epochs_marker = stores.path("epochs", keys["epochs"]) / COMPLETE
    done(stores.ensure(specs["epochs"], lambda tmp: build_epochs(ctx, specs["epochs"], tmp),
                       epochs_sources(ctx), shape_of_var("ecog"), ctx.fingerprints))
    if "targets" in stages:
        needs_epochs = bool(specs["targets"].parents)
        epoch_words = stores.open("epochs", keys["epochs"])["word"].values if needs_epochs else None
        sources = ctx.task.target_sources(cfg, ctx.dataset)
        sources += [epochs_marker] if needs_epochs else []
        done(stores.ensure(specs["targets"],
                           lambda tmp: build_targets(cfg, ctx.task, ctx.dataset, epoch_words, tmp),
                           sources, shape_of_var("target"), ctx.fingerprints))
    if "latents" in stages:
        extra = registry.preprocessors.spec(cfg.preprocess.name).sources(cfg)
        done(stores.ensure(specs["latents"],
                           lambda tmp: build_latents(ctx, specs["latents"],
                                                     stores.open("epochs", keys["epochs"]), tmp),
                           [epochs_marker, *extra], shape_of_var("latent"), ctx.fingerprints))
    return Features(stores, keys, reports)
