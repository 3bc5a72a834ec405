"""Build (or find) the feature stores of a config: epochs, targets, latents (and the
electrode selection where podbench chooses the electrodes).

`build_features(cfg)` is a plain function of a config and the store root, so an engine can
run it on any node that sees the same store root. Each stage is built only if its complete
store is missing or its sources changed; children list their parents' completion markers as
sources, so a rebuilt parent makes its children stale too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podbench import registry
from podbench.config import Config
from podbench.data.recordings import resolve_subjects
from podbench.errors import ConfigError
from podbench.features.context import Resolved, resolve
from podbench.features.epochs import build_epochs
from podbench.features.keys import epochs_sources, stage_specs
from podbench.features.latents import build_latents
from podbench.features.selection import build_selection, selected_csv, write_csv
from podbench.features.store import COMPLETE, BuildReport, Stores, shape_of_var
from podbench.features.targets import build_targets
from podbench.publish import publish_file


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


def build_features(
    cfg: Config | Resolved,
    log: Callable[[str], None] = print,
    stages: tuple[str, ...] = ("epochs", "targets", "latents"),
) -> Features:
    """Ensure the feature stores of a config exist, building the missing ones.

    Inputs, data-dependent values and the store root are checked first (``preflight``).
    Where podbench selects the electrodes, the targets and the selection come first (the
    epochs hold the selected electrodes).

    Parameters
    ----------
    cfg : podbench.config.Config
        The config (or its resolved context).
    log : callable, default print
        Called with one report line per stage.
    stages : tuple of str, default ("epochs", "targets", "latents")
        The stages to build; epochs always are.

    Returns
    -------
    Features
        The stores' root, keys and build reports.
    """
    from podbench.features.preflight import preflight

    preflight([cfg])
    ctx = resolve(cfg)
    specs = stage_specs(ctx)
    stores = Stores(ctx.cfg.output.stores)
    features = Features(stores, {name: spec.key for name, spec in specs.items()}, [])

    def done(report: BuildReport) -> None:
        features.reports.append(report)
        log(report.line())

    if "selection" in specs:
        done(_ensure_targets(ctx, specs, stores))
        done(_ensure_selection(ctx, specs, stores))
    done(_ensure_epochs(ctx, specs, stores))
    if "targets" in stages and "selection" not in specs:
        done(_ensure_targets(ctx, specs, stores))
    if "latents" in stages:
        done(_ensure_latents(ctx, specs, stores))
    return features


def _marker(stores: Stores, specs: dict, stage: str) -> Path:
    return stores.path(stage, specs[stage].key) / COMPLETE


def _ensure_epochs(ctx: Resolved, specs: dict, stores: Stores) -> BuildReport:
    """The epochs of the config's electrodes, or of those its selection chose."""
    sources = epochs_sources(ctx)
    if "selection" in specs:
        ctx = selected_context(ctx, stores, specs["selection"].key)
        sources = [*epochs_sources(ctx), _marker(stores, specs, "selection")]
    return stores.ensure(
        specs["epochs"],
        lambda tmp: build_epochs(ctx, specs["epochs"], tmp),
        sources,
        shape_of_var("ecog"),
        ctx.fingerprints,
    )


def _ensure_targets(ctx: Resolved, specs: dict, stores: Stores) -> BuildReport:
    cfg = ctx.cfg
    needs_epochs = bool(specs["targets"].parents)
    epoch_events = (
        stores.open("epochs", specs["epochs"].key)["word"].values if needs_epochs else None
    )
    sources = ctx.task.target_sources(cfg, ctx.dataset)
    sources += [_marker(stores, specs, "epochs")] if needs_epochs else []
    return stores.ensure(
        specs["targets"],
        lambda tmp: build_targets(cfg, ctx.task, ctx.dataset, epoch_events, tmp),
        sources,
        shape_of_var("target"),
        ctx.fingerprints,
    )


def _ensure_selection(ctx: Resolved, specs: dict, stores: Stores) -> BuildReport:
    targets = stores.load("targets", specs["targets"].key)
    sources = [*epochs_sources(ctx), _marker(stores, specs, "targets")]
    return stores.ensure(
        specs["selection"],
        lambda tmp: build_selection(ctx, targets, tmp),
        sources,
        shape_of_var("r"),
        ctx.fingerprints,
    )


def _ensure_latents(ctx: Resolved, specs: dict, stores: Stores) -> BuildReport:
    extra = registry.preprocessors.spec(ctx.cfg.preprocess.name).sources(ctx.cfg)
    epochs = specs["epochs"].key
    return stores.ensure(
        specs["latents"],
        lambda tmp: build_latents(ctx, specs["latents"], stores.open("epochs", epochs), tmp),
        [_marker(stores, specs, "epochs"), *extra],
        shape_of_var("latent"),
        ctx.fingerprints,
    )


def selected_context(ctx: Resolved, stores: Stores, key: str) -> Resolved:
    """`ctx` with the electrodes (and subjects) a selection store chose: its electrode CSV,
    written under the store root once."""
    csv = selected_csv(stores.root, key)
    if not csv.is_file():
        selection = stores.open("selection", key)
        publish_file(
            csv,
            lambda tmp: write_csv(selection, nyu_ids(ctx.dataset), tmp),
            "writing the selected electrodes",
        )
    subjects = resolve_subjects(ctx.dataset, "all", str(csv), ctx.cfg.data.signal)
    return dataclasses.replace(ctx, electrodes=str(csv), subjects=subjects)


def nyu_ids(dataset) -> dict[int, int]:
    """Subject number -> NYU id (participants.tsv)."""
    return {sub: nyu for nyu, sub in dataset.nyu_to_subject().items()}


def build_selection_store(cfg: Config | Resolved, log: Callable[[str], None] = print) -> Features:
    """Ensure the targets and selection stores of a config with `data.electrodes: {select:
    ...}` (what `podbench electrodes` needs; no epochs)."""
    from podbench.features.preflight import preflight

    ctx = resolve(cfg)
    if ctx.cfg.data.selection is None:
        raise ConfigError(
            f"data.electrodes = {ctx.cfg.data.electrodes!r}: not a selection; "
            "give data.electrodes: {select: encoding, ...}"
        )
    preflight([ctx])
    specs = stage_specs(ctx)
    stores = Stores(ctx.cfg.output.stores)
    features = Features(stores, {name: spec.key for name, spec in specs.items()}, [])
    for ensure in (_ensure_targets, _ensure_selection):
        features.reports.append(ensure(ctx, specs, stores))
        log(features.reports[-1].line())
    return features
