"""Typed, strict experiment configs: load YAML, apply `--set` overrides, validate, resolve.

A config has the sections `data`, `targets`, `preprocess`, `model`, `training`, `pretrain`,
`output` plus `trial_name`, `task` and `plugins`. Validation is strict: an unknown key, a
wrong type or an out-of-range value raises `ConfigError` naming the YAML path, the value,
what is allowed and, for a misspelt key, the closest valid one. The free-form `model.params`,
`preprocess.params` and `targets.params` are validated against the schema their registry entry
declares (the last by the word-embedding task, against its target source's).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from podbench.errors import ConfigError

Stage = Literal["epochs", "selection", "targets", "latents", "training", "pretrain"]


@dataclass(frozen=True)
class Keyed:
    """Whether and where a config field is hashed: the marker every config field declares
    (``opt(..., keyed=Keyed(...))``). The keys are derived from these markers, never from
    lists of fields kept elsewhere; tests/test_config.py fails on a field without one.

    Parameters
    ----------
    stage : str or None
        The key the field enters (podbench.features.keys; ``"pretrain"``: a pretraining's
        folder, podbench.features.pretrain), from where it passes on to later stages through
        their parents; a task or target source may read it into another stage too. None: it
        enters no stage key (where things go, how lanes are laid out on the device).
    program : {"shared", "lane", "point", "targets"}, default "shared"
        Its part in a program signature (podbench.train.run): ``"shared"``, in it (the points
        of one compiled program share the field); ``"lane"``, out of a trained decoder's (it
        may differ between the lanes of one program) and in a closed-form one's;
        ``"point"``, out of it (each point of a program keeps its own, e.g. its results
        folder or its null targets); ``"targets"``, out of it unless podbench selects the
        electrodes (each point its own targets; a selection is fitted on them).
    suite : bool, default True
        Whether it enters a benchmark suite's id (podbench.experiments.benchmark).
    when : str, optional
        A boolean field of the same section: the field enters its stage key only when that
        field is true.
    omit_none : bool, default False
        A null value leaves the field out of its stage key (so keys made before the field
        existed still hold).
    omit_empty : bool, default False
        An empty value (a mapping with no key, a zero) leaves the field out of every key it
        enters: its stage key, a program signature and a suite id (so keys made before the
        field existed still hold).
    """

    stage: Stage | None
    program: Literal["shared", "lane", "point", "targets"] = "shared"
    suite: bool = True
    when: str | None = None
    omit_none: bool = False
    omit_empty: bool = False

    def omits(self, value: Any) -> bool:
        """Whether a value of the field is left out of every key it enters.

        Parameters
        ----------
        value : object
            The field's value in a config.

        Returns
        -------
        bool
            True for an empty value of a field marked ``omit_empty``.
        """
        return self.omit_empty and not value


def opt(
    default: Any = dataclasses.MISSING,
    *,
    keyed: Keyed | None = None,
    doc: str = "",
    choices=None,
    ge=None,
    gt=None,
    le=None,
    lt=None,
    nonempty=False,
    factory=None,
):
    """A config field with its hash marker (`keyed`: every field of the config sections has
    one; the parameter dataclasses of registry entries have none), documentation and
    constraints (range, of each item of a list; `nonempty` refuses an empty list or string)."""
    meta = {
        "keyed": keyed,
        "doc": doc,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "nonempty": nonempty,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Lags:
    """Lags in ms relative to word onset: np.arange(min, max, step) (max excluded)."""

    min: int = opt(-1000, keyed=Keyed("epochs"), doc="first lag (ms)")
    max: int = opt(1000, keyed=Keyed("epochs"), doc="end of the lag range (ms, excluded)")
    step: int = opt(200, keyed=Keyed("epochs"), gt=0, doc="lag step (ms)")

    def values(self) -> list[int]:
        return list(range(self.min, self.max, self.step))


@dataclass
class ElectrodeSelection:
    """Electrodes chosen by podbench (`data.electrodes: {select: encoding, ...}`): per
    candidate electrode, a cross-validated ridge encoding model from the task's targets to the
    mean signal in a window after each event, its held-out correlation r, a permutation p
    (circular shifts of the targets against the signal), Benjamini-Hochberg q across
    electrodes; an electrode is selected when q (or p, `correction: none`) <= alpha."""

    select: Literal["encoding"] = opt(
        "encoding", keyed=Keyed("selection"), doc="the selection rule: encoding"
    )
    fit: Literal["all", "train"] = opt(
        "train",
        keyed=Keyed("selection"),
        doc="select on every event (all: the usual practice, leaks test events) or "
        "inside each training fold from its training events (train)",
    )
    candidates: str | None = opt(
        None,
        keyed=Keyed("epochs"),
        doc="electrodes selected from: a regex, an electrode CSV or responsive (null: "
        "every good channel)",
    )
    start: int = opt(
        0, keyed=Keyed("selection"), doc="response window start (ms after the event onset)"
    )
    stop: int = opt(
        500,
        keyed=Keyed("selection"),
        doc="response window end (ms after the event onset, excluded)",
    )
    alpha: float = opt(
        0.05,
        keyed=Keyed("selection"),
        gt=0,
        lt=1,
        doc="level of q (or p) at which an electrode is selected",
    )
    correction: Literal["bh", "none"] = opt(
        "bh",
        keyed=Keyed("selection"),
        doc="Benjamini-Hochberg across electrodes, or none (p <= alpha)",
    )
    permutations: int = opt(
        1000,
        keyed=Keyed("selection"),
        ge=1,
        le=100_000,
        doc="circular shifts of the permutation test",
    )
    ridge: float = opt(
        1.0,
        keyed=Keyed("selection"),
        gt=0,
        doc="ridge penalty per training event on standardised targets",
    )
    folds: int = opt(
        5, keyed=Keyed("selection"), ge=2, doc="inner cross-validation folds of the encoding model"
    )
    detrend: int = opt(
        31,
        keyed=Keyed("selection"),
        ge=0,
        doc="events in the running mean subtracted from each "
        "electrode's responses (slow drifts; 0: none)",
    )
    seed: int = opt(0, keyed=Keyed("selection"), ge=0, doc="seed of the circular shifts")


@dataclass
class DataConfig:
    root: str = opt(
        "data",
        keyed=Keyed(None),
        nonempty=True,
        doc="BIDS root of ds005574 or of a stand-in made by `podbench synth`",
    )
    subjects: Literal["all"] | list[int] = opt(
        "all", keyed=Keyed("epochs"), nonempty=True, doc="'all' or a list of subject numbers (1-9)"
    )
    electrodes: str | None | ElectrodeSelection = opt(
        None,
        keyed=Keyed("epochs"),
        doc="regex on channel names, a CSV with columns subject (NYU id), elec, "
        "responsive (a stand-in's ground truth), or a selection {select: encoding, ...}",
    )
    signal: Literal["highgamma", "broadband", "podbench_highgamma"] = opt(
        "highgamma",
        keyed=Keyed("epochs"),
        doc="ecogprep high-gamma or broadband .fif, or the one `podbench highgamma` "
        "recomputes from the raw EDF",
    )
    window_width: float = opt(
        0.625, keyed=Keyed("epochs"), gt=0, le=10, doc="window width in seconds"
    )
    lags: Lags = opt(keyed=Keyed("epochs"), factory=Lags, doc="lag grid in ms")
    label_normalisation: Literal["raw", "lower", "strip"] = opt(
        "raw",
        keyed=Keyed("training"),
        doc="word labels: raw transcript (reference), lower, or strip (lower + outer punctuation)",
    )

    @property
    def selection(self) -> ElectrodeSelection | None:
        return self.electrodes if isinstance(self.electrodes, ElectrodeSelection) else None

    @property
    def picks(self) -> str | None:
        """The electrodes read from the recordings: a selection's candidates, else
        data.electrodes."""
        if isinstance(self.electrodes, ElectrodeSelection):
            return self.electrodes.candidates
        return self.electrodes


@dataclass
class TargetsConfig:
    """The targets of the word-embedding tasks: their source (`kind`), the PCA that follows
    it, the word AUC's word types, the built-in sources' settings (`layer`, `glove_path`,
    `hf_model`, `dim`, `seed`) and the parameters a source declares (`params`: a plugin
    source's settings, validated against its spec's parameter dataclass)."""

    kind: str = opt(
        "gpt2",
        keyed=Keyed("targets", program="targets"),
        doc="target source: gpt2, glove, arbitrary, hf or a plugin's",
    )
    layer: int = opt(
        24, keyed=Keyed("targets", program="targets"), ge=0, doc="hidden layer of gpt2 / hf targets"
    )
    pca_dim: int | None = opt(
        50, keyed=Keyed("targets", program="targets"), gt=0, doc="PCA dimension (null: no PCA)"
    )
    pca_fit: Literal["all", "train"] = opt(
        "all",
        keyed=Keyed("targets", program="targets"),
        doc="fit PCA on all words (reference) or inside each training fold (no leakage)",
    )
    min_train_freq: int = opt(
        5,
        keyed=Keyed("training", program="targets"),
        ge=1,
        doc="word AUC counts word types with this many training occurrences",
    )
    glove_path: str | None = opt(
        None, keyed=Keyed("targets", program="targets"), doc="GloVe text file for kind: glove"
    )
    hf_model: str | None = opt(
        None,
        keyed=Keyed("targets", program="targets"),
        doc="local Hugging Face model directory for kind: hf",
    )
    dim: int = opt(
        50, keyed=Keyed("targets", program="targets"), gt=0, doc="dimension of arbitrary embeddings"
    )
    seed: int = opt(
        42, keyed=Keyed("targets", program="targets"), doc="seed of arbitrary embeddings"
    )
    params: dict = opt(
        keyed=Keyed("targets", program="targets", omit_empty=True),
        factory=dict,
        doc="parameters declared by the target source (none for the built-in ones)",
    )


@dataclass
class PreprocessConfig:
    name: str = opt("window_average", keyed=Keyed("latents"), doc="registered preprocessor")
    params: dict = opt(
        keyed=Keyed("latents"), factory=dict, doc="parameters declared by the preprocessor"
    )


@dataclass
class ModelConfig:
    name: str = opt("pitom", keyed=Keyed("training"), doc="registered model")
    params: dict = opt(
        keyed=Keyed("training"), factory=dict, doc="parameters declared by the model"
    )
    members: int = opt(10, keyed=Keyed("training"), ge=1, doc="ensemble members per (lag, fold)")
    ensemble: Literal["independent", "joint"] = opt(
        "independent",
        keyed=Keyed("training"),
        doc="members trained separately (Goldstein 2022) or on their mean output (reference)",
    )


@dataclass
class TrainingConfig:
    batch_size: int = opt(32, keyed=Keyed("training"), ge=1, doc="training batch per lane")
    epochs: int = opt(100, keyed=Keyed("training"), ge=1, doc="maximum epochs per lane")
    lr: float = opt(1e-3, keyed=Keyed("training", program="lane"), gt=0, doc="learning rate")
    weight_decay: float = opt(
        1e-4,
        keyed=Keyed("training", program="lane"),
        ge=0,
        doc="weight decay (PyTorch semantics of the optimizer)",
    )
    optimizer: Literal["adamw", "adam"] = opt(
        "adamw",
        keyed=Keyed("training"),
        doc="adamw (PyTorch AdamW) or adam (PyTorch Adam: L2 added to the gradient)",
    )
    patience: int = opt(
        10,
        keyed=Keyed("training"),
        ge=1,
        doc="epochs without validation improvement before a lane stops",
    )
    n_folds: int = opt(5, keyed=Keyed("training"), ge=2, doc="cross-validation folds")
    fold_type: Literal["sequential", "zero_shot"] = opt(
        "sequential",
        keyed=Keyed("training"),
        doc="contiguous blocks in time (reference) or folds by word type",
    )
    val_fraction: float = opt(
        0.25, keyed=Keyed("training"), gt=0, le=0.9, doc="tail of train+val used for validation"
    )
    gap: int = opt(
        0,
        keyed=Keyed("training", omit_empty=True),
        ge=0,
        doc="sequential folds: words left out on each side of each test block (neither "
        "training nor validation), so that slow drifts shared by signals and targets do not "
        "carry the neighbouring training words' targets into the test score (0: the reference)",
    )
    seed: int = opt(
        42,
        keyed=Keyed("training", program="lane"),
        doc="lane seeds derive from it, the lag, the fold and the member",
    )
    shuffle_targets: bool = opt(
        False,
        keyed=Keyed("training", program="point"),
        doc="control: train on null targets (see shuffle_mode)",
    )
    shuffle_mode: Literal["all", "words", "circular"] = opt(
        "all",
        keyed=Keyed("training", program="point", when="shuffle_targets"),
        doc="null targets: all: every word's target permuted, test rows too (the "
        "shuffled-target control, at chance); words / circular: each fold's training "
        "rows permuted across words or shifted circularly in time (keeps their "
        "autocorrelation), test rows kept (the nulls of a permutation test)",
    )
    permutation_seed: int | None = opt(
        None,
        keyed=Keyed("training", program="point", when="shuffle_targets", omit_none=True),
        ge=0,
        doc="seed of the null targets (null: training.seed); set, it leaves "
        "training.seed a per-lane seed, so null points pack beside the real one",
    )
    loss: Literal["mse", "cosine"] = opt(
        "mse", keyed=Keyed("training"), doc="loss of vector targets"
    )
    lane_chunk: Literal["auto"] | int = opt(
        "auto",
        keyed=Keyed(None),
        gt=0,
        doc="lanes per compiled chunk; auto sizes it to the device memory",
    )
    lane_batch: Literal["auto"] | int = opt(
        "auto",
        keyed=Keyed(None),
        gt=0,
        doc="lanes vmapped together per device; auto: 1 on CPU (faster), all on GPU",
    )
    snapshot_every_s: float | None = opt(
        600.0,
        keyed=Keyed(None, program="point", suite=False),
        ge=0,
        doc="seconds of training between resume snapshots of a trained program (under "
        "output.stores/snapshots/; a killed run started again goes on from the last, with "
        "the same results; points that share a program take the first's); 0: after every "
        "epoch; null: none",
    )
    checkpoints: bool = opt(
        True,
        keyed=Keyed(None, program="point"),
        doc="write every lane's best parameters to checkpoints/ "
        "(api.load_run predicts from them); false saves the space",
    )
    predictions: bool = opt(
        True,
        keyed=Keyed(None, program="point"),
        doc="write every event's held-out predictions to "
        "test_predictions.npz (score-level permutation nulls "
        "read them); false saves the space",
    )


@dataclass
class PretrainConfig:
    """Self-supervised pretraining of the built-in ECoG masked autoencoder (`podbench pretrain`)."""

    mask_ratio: float = opt(
        0.75,
        keyed=Keyed("pretrain"),
        gt=0,
        le=0.95,
        doc="fraction of (electrode, time patch) tokens hidden",
    )
    depth: int = opt(4, keyed=Keyed("pretrain"), ge=1, doc="encoder blocks")
    width: int = opt(64, keyed=Keyed("pretrain"), ge=8, doc="token dimension")
    heads: int = opt(4, keyed=Keyed("pretrain"), ge=1, doc="attention heads")
    patch: int = opt(32, keyed=Keyed("pretrain"), ge=1, doc="time-patch length in samples")
    steps: int = opt(300, keyed=Keyed("pretrain"), ge=1, doc="optimisation steps")
    batch_size: int = opt(16, keyed=Keyed("pretrain"), ge=1, doc="windows per step")
    lr: float = opt(1e-3, keyed=Keyed("pretrain"), gt=0, doc="AdamW learning rate")
    seed: int = opt(0, keyed=Keyed("pretrain"), doc="initialisation, window and mask draws")


@dataclass
class OutputConfig:
    stores: str = opt("stores", keyed=Keyed(None, suite=False), nonempty=True, doc="store root")
    results: str = opt(
        "results",
        keyed=Keyed(None, program="point", suite=False),
        nonempty=True,
        doc="results root",
    )


@dataclass
class Config:
    """A validated podbench configuration: one YAML file, its overrides applied.

    Made by :func:`load` (a YAML file) or :func:`from_dict` (a mapping); every field, its
    default and meaning is in the configuration reference (``docs/configuration.md``).

    Parameters
    ----------
    trial_name : str
        Results go to ``<output.results>/<trial_name>/<run-id>``.
    task : str or list of str
        A registered task, or several trained on the same features.
    task_params : dict
        The parameters the task declares (per task when `task` is a list).
    plugins : list of str
        Modules imported so that they register decoders, tasks, ...
    data : DataConfig
        The dataset root, subjects, electrodes, signal, lags and epoch window.
    targets : TargetsConfig
        The word targets (their kind, model layer, PCA, vocabulary filter).
    preprocess : PreprocessConfig
        How epochs become a decoder's input (a registered preprocessor and its params).
    model : ModelConfig
        The decoder (a registered model, its params, ensemble members).
    training : TrainingConfig
        Folds, optimiser, epochs, early stopping, null targets, checkpoints.
    pretrain : PretrainConfig
        The self-supervised encoder of the foundation-model latents.
    output : OutputConfig
        The store and results roots.
    source : str
        Where the config came from (its file), for error messages.
    overrides : tuple of str
        The ``--set`` values applied, passed on to configs this one names.
    """

    trial_name: str = opt(
        "podbench",
        keyed=Keyed(None, program="point", suite=False),
        nonempty=True,
        doc="results go to <output.results>/<trial_name>/<run-id>; one folder "
        "name (no path separator, not . or ..)",
    )
    task: str | list[str] = opt(
        "word_embedding",
        keyed=Keyed("training", program="targets"),
        doc="registered task, or a list of tasks trained on the same features "
        "(task_params then maps each listed task to its parameters)",
    )
    task_params: dict = opt(
        keyed=Keyed("training", program="targets"),
        factory=dict,
        doc="parameters declared by the task",
    )
    plugins: list[str] = opt(
        keyed=Keyed(None), factory=list, doc="modules to import so that they register entries"
    )
    data: DataConfig = opt(factory=DataConfig)
    targets: TargetsConfig = opt(factory=TargetsConfig)
    preprocess: PreprocessConfig = opt(factory=PreprocessConfig)
    model: ModelConfig = opt(factory=ModelConfig)
    training: TrainingConfig = opt(factory=TrainingConfig)
    pretrain: PretrainConfig = opt(factory=PretrainConfig)
    output: OutputConfig = opt(factory=OutputConfig)
    source: str = field(default="<defaults>", metadata={"internal": True})
    # the command line's --set values, passed on to configs this one names (a foundation
    # checkpoint's pretrain config receives those of data.* and output.*)
    overrides: tuple[str, ...] = field(default=(), metadata={"internal": True})

    def to_dict(self) -> dict:
        """The resolved config as a plain mapping of every field.

        Returns
        -------
        dict
            Nested by section; ``yaml.safe_dump`` writes it and :func:`from_dict` reads it
            back (``source`` and ``overrides`` left out).
        """
        out = dataclasses.asdict(self)
        out.pop("source")
        out.pop("overrides")
        return out

    def replace(self, overrides: dict[str, Any]) -> Config:
        """A new validated config with dotted-path overrides applied.

        Parameters
        ----------
        overrides : dict
            Dotted config path -> value, e.g. ``{"training.lr": 3e-4}``.

        Returns
        -------
        Config
            A new config, validated; this one is unchanged.
        """
        raw = self.to_dict()
        for path, value in overrides.items():
            set_path(raw, path, value)
        new = from_dict(raw, self.source)
        new.overrides = self.overrides
        return new

    @property
    def several_tasks(self) -> bool:
        """Whether `task` lists several tasks (trained on the same features)."""
        return isinstance(self.task, list)

    def task_configs(self) -> list[Config]:
        """One config per task, all sharing every other field.

        Returns
        -------
        list of Config
            ``[self]`` for one task, else one config for each listed task, in order, with
            that task's own ``task_params``.
        """
        if not self.several_tasks:
            return [self]
        return [
            self.replace({"task": name, "task_params": self.task_params.get(name, {})})
            for name in self.task
        ]


# --------------------------------------------------------------------------- validation


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    if origin is Literal:
        return " | ".join(repr(c) for c in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    return {
        int: "an integer",
        float: "a number",
        bool: "true/false",
        str: "a string",
        dict: "a mapping",
    }.get(hint, str(hint))


def _range_error(value, meta) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if meta.get("nonempty") and value in ([], ""):
        return "a non-empty value"
    checks = (
        ("gt", lambda v, b: v > b, ">"),
        ("ge", lambda v, b: v >= b, ">="),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    )
    bounds = [
        (sym, meta.get(key))
        for key, ok, sym in checks
        if meta.get(key) is not None
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not ok(value, meta.get(key))
    ]
    if not bounds:
        return None
    sym, bound = bounds[0]
    low = [f"{s} {meta[k]}" for k, s in (("gt", ">"), ("ge", ">=")) if meta.get(k) is not None]
    high = [f"{s} {meta[k]}" for k, s in (("lt", "<"), ("le", "<=")) if meta.get(k) is not None]
    if low and high:
        return f"a value {low[0]} and {high[0]}"
    return f"a value {sym} {bound}"


def safe_component(value: str, path: str) -> str:
    """One folder name: no path separator, not '.' or '..', no NUL (nothing can escape a root)."""
    if not value or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ConfigError(
            f"{path} = {value!r}: expected one folder name (no '/', '\\', "
            "not '.' or '..', not empty)"
        )
    return value


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _convert(value, hint, path: str):
    """Check `value` against a type hint; return the converted value or raise ConfigError."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin in (Union, types.UnionType):
        mappings = [h for h in typing.get_args(hint) if dataclasses.is_dataclass(h)]
        if isinstance(value, dict) and len(mappings) == 1:  # its own errors name the key
            return _build(mappings[0], value, path)
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path} = {value!r}: expected {_describe(hint)}")
    if origin is Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path} = {value!r}: expected {_describe(hint)}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path} = {value!r}: expected {_describe(hint)}")
        item = typing.get_args(hint)[0]
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is type(None):
        if value is None:
            return None
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint in (dict, Any) or origin is dict:
        if hint is Any or isinstance(value, dict):
            return value
    else:
        raise TypeError(f"unsupported config type {hint} at {path}")
    raise ConfigError(f"{path} = {value!r}: expected {_describe(hint)}")


def unknown_key(key: str, allowed: list[str], path: str) -> ConfigError:
    """An unknown key at `path` (dotted; "" at the top), with the closest allowed one."""
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {(path + '.' if path else '') + close[0]!r}?" if close else ""
    return ConfigError(f"unknown key {where!r}{hint} Allowed here: {', '.join(allowed)}")


def _build(cls, raw, path: str):
    """Build dataclass `cls` from a mapping, strictly."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path or 'config'} = {raw!r}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in raw:
        if key not in fields:
            raise unknown_key(str(key), list(fields), path)
    values = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in raw:
            value = _convert(raw[name], hints[name], sub)
            items = enumerate(value) if isinstance(value, list) else ()  # a range bounds each item
            for where, item in [(sub, value), *((f"{sub}[{i}]", v) for i, v in items)]:
                problem = _range_error(item, f.metadata)
                if problem:
                    raise ConfigError(f"{where} = {item!r}: expected {problem}")
            values[name] = value
    return cls(**values)


def build_params(schema, raw: dict, path: str) -> dict:
    """Validate a free-form params mapping against a registry entry's dataclass schema."""
    if schema is None:
        if raw:
            raise ConfigError(f"{path} = {raw!r}: this entry takes no parameters")
        return {}
    return dataclasses.asdict(_build(schema, raw, path))


def set_path(raw: dict, dotted: str, value) -> None:
    """Set `a.b.c` in a nested dict, creating intermediate mappings."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"--set {dotted}: empty component in the path")
    node = raw
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is not a mapping")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Parse `PATH=VALUE` strings; values are YAML-typed (`1e-3`, `[1, 3]`, `true`)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. training.lr=3e-4")
        path, text = item.split("=", 1)
        out[path.strip()] = parse_yaml(text, f"--set {item}", inline=True)
    return out


def _validate_registered(cfg: Config, task_params_path: str = "task_params") -> None:
    """Check registry names and validate free-form params against declared schemas."""
    from podbench import registry

    safe_component(cfg.trial_name, "trial_name")
    source = Path(cfg.source)
    registry.load_plugins(cfg.plugins, [source.resolve().parent] if source.is_file() else [])
    if isinstance(cfg.task, list):  # cfg.several_tasks (written out so that mypy narrows)
        _validate_task_list(cfg)
        return
    task_entry = registry.tasks.entry(cfg.task, "task")
    cfg.task_params = build_params(task_entry.spec.params, cfg.task_params, task_params_path)
    task = task_entry.obj()
    model = registry.models.spec(cfg.model.name, "model.name")
    cfg.model.params = build_params(model.params, cfg.model.params, "model.params")
    pre = registry.preprocessors.spec(cfg.preprocess.name, "preprocess.name")
    cfg.preprocess.params = build_params(pre.params, cfg.preprocess.params, "preprocess.params")
    task.validate(cfg)
    _validate_selection(cfg.data.selection, pre.dims, cfg.preprocess.name)
    lags = cfg.data.lags
    if lags.max <= lags.min:
        raise ConfigError(f"data.lags = {dataclasses.asdict(lags)}: expected max > min")
    if cfg.training.gap and cfg.training.fold_type != "sequential":
        raise ConfigError(
            f"training.gap = {cfg.training.gap}: only sequential folds have neighbours in "
            f"time (training.fold_type = {cfg.training.fold_type!r})"
        )


def _validate_selection(
    selection: ElectrodeSelection | None, dims: tuple[str, ...], preprocessor: str
) -> None:
    """A window that ends after it starts; per-fold electrode masks need latents with a
    channel axis."""
    if selection is None:
        return
    if selection.stop <= selection.start:
        raise ConfigError(
            f"data.electrodes.stop = {selection.stop}: expected > "
            f"data.electrodes.start ({selection.start})"
        )
    if selection.fit == "train" and dims[:1] != ("channel",):
        raise ConfigError(
            f"data.electrodes.fit = 'train' masks each fold's electrodes in the "
            f"latents, but preprocess.name = {preprocessor!r} gives latents with "
            f"dims {list(dims)} (no leading channel axis); use fit: all"
        )


def _validate_task_list(cfg: Config) -> None:
    """A list of tasks: distinct names, task_params keyed by listed task, each task's config
    valid on its own (the task_params of each become its validated parameters)."""
    from podbench import registry

    names = cfg.task
    if not names:
        raise ConfigError("task = []: expected a task name or a non-empty list of task names")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"task = {names!r}: {', '.join(repeated)} listed twice")
    for i, name in enumerate(names):
        registry.tasks.entry(name, f"task[{i}]")
    for name, params in cfg.task_params.items():
        if name not in names:
            raise ConfigError(
                f"task_params.{name}: not a listed task; with several tasks, "
                f"task_params maps each of {names} to its parameters"
            )
        if not isinstance(params, dict):
            raise ConfigError(f"task_params.{name} = {params!r}: expected a mapping")
    validated = {}
    for name in names:
        # shares cfg's sections, so model and preprocess params are validated in place
        single = dataclasses.replace(
            cfg, task=name, task_params=dict(cfg.task_params.get(name, {}))
        )
        try:
            _validate_registered(single, f"task_params.{name}")
        except ConfigError as exc:
            raise ConfigError(f"task {name!r}: {exc}") from None
        validated[name] = single.task_params
    cfg.task_params = validated


def from_dict(raw: dict, source: str = "<dict>", overrides: dict[str, Any] | None = None) -> Config:
    """Validate a raw mapping into a Config.

    Parameters
    ----------
    raw : dict
        The config as nested mappings (a parsed YAML file; ``Config.to_dict()``).
    source : str, default "<dict>"
        Where `raw` came from, named by error messages.
    overrides : dict, optional
        Dotted path -> value of the overrides already applied to `raw`: an error in one of
        those values names the override rather than `source`.

    Returns
    -------
    Config
        The validated config, registry-declared parameters (``model.params``,
        ``preprocess.params``, ``task_params``) included.

    Raises
    ------
    podbench.errors.ConfigError
        A value, a key or a combination that is not valid, named by its path.
    """
    try:
        cfg = _build(Config, copy.deepcopy(raw), "")
        cfg.source = source
        _validate_registered(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{_blame(str(exc), source, overrides or {})}: {exc}") from None
    return cfg


def _blame(message: str, source: str, overrides: dict[str, Any]) -> str:
    """`--set PATH=VALUE` when the message is about an overridden path (or below it), else
    the file."""
    for path in sorted(overrides, key=len, reverse=True):
        if re.search(rf"(^|[\s'(]){re.escape(path)}([\s'.=\[]|$)", message):
            value = yaml.safe_dump(overrides[path], default_flow_style=True)
            return f"--set {path}={value.removesuffix(chr(10)).removesuffix('...').strip()}"
    return source


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping."""


class _FastStrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """StrictLoader on libyaml's parser where PyYAML has it (its wheels do): the same
    documents, several times faster (a plan reads every results folder's config.yml); its
    syntax errors point less precisely, so a document it refuses is parsed again by
    StrictLoader for the message."""


def _strict_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                f"key {key!r} appears twice (lines {seen[key]} and {line}); "
                "the second would silently replace the first"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


for _loader in (StrictLoader, _FastStrictLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def parse_yaml(text: str, where: str, inline: bool = False) -> Any:
    """Parse YAML text strictly (no key twice in a mapping); any problem is one ConfigError
    line, `where:LINE:COLUMN: ...` for a syntax error (`where (column N)` for an `inline`
    value). Every YAML podbench reads (configs, grids, suites, the configs of results it reads
    back, `--set` values) goes through it."""
    try:
        try:
            return yaml.load(text, Loader=_FastStrictLoader)
        except yaml.YAMLError:
            return yaml.load(text, Loader=StrictLoader)  # raises, with the precise mark
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = (
            where
            if mark is None
            else f"{where} (column {mark.column + 1})"
            if inline
            else f"{where}:{mark.line + 1}:{mark.column + 1}"
        )
        problem = " ".join(str(exc.problem or exc.context or "").split())
        raise ConfigError(f"{at}: not valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from None


def read_yaml(path: Path, what: str = "config file") -> Any:
    """Read a YAML file with `parse_yaml`; it must exist and be UTF-8 text."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    return parse_yaml(text, str(path))


ENV_OVERRIDES = "PODBENCH_SET"


def load(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    """Load a YAML config, apply overrides, validate.

    Parameters
    ----------
    path : str or pathlib.Path
        A YAML config file (``configs/demo.yml``).
    overrides : sequence of str, default ()
        ``PATH=VALUE`` settings (the command line's ``--set``), applied in order; then those
        of the environment variable ``PODBENCH_SET`` (whitespace-separated ``PATH=VALUE``,
        e.g. to run every example reduced).

    Returns
    -------
    Config
        The validated config.

    Raises
    ------
    podbench.errors.ConfigError
        A file that is not a mapping, an unknown key or an invalid value, named by its path.

    Examples
    --------
    >>> from podbench import config
    >>> cfg = config.load("configs/demo.yml", ["training.lr=3e-4"])  # doctest: +SKIP
    >>> cfg.training.lr  # doctest: +SKIP
    0.0003
    """
    overrides = [*overrides, *os.environ.get(ENV_OVERRIDES, "").split()]
    path = Path(path)
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    parsed = parse_overrides(overrides)
    for dotted, value in parsed.items():
        set_path(raw, dotted, value)
    cfg = from_dict(raw, str(path), parsed)
    cfg.overrides = tuple(overrides)
    return cfg


def config_file(value: str) -> Path | None:
    """The config file a setting names (an existing .yml or .yaml), else None (a folder, ...)."""
    path = Path(value).expanduser()
    return path if path.suffix in (".yml", ".yaml") and path.is_file() else None


@dataclass(frozen=True)
class RunReference:
    """A setting that names a run (`model.params.encoder_init`, ...): by the config file that
    trains it (so the run need not exist yet; `podbench.features.keys.referenced_run` finds
    its folder by its training key) or by its results folder."""

    where: str  # the setting, e.g. model.params.encoder_init
    value: str

    def __str__(self) -> str:
        return f"{self.where} = {self.value!r}"

    @property
    def config_file(self) -> Path | None:
        return config_file(self.value)

    @property
    def folder(self) -> Path:
        """The results folder the value names (when it names no config file)."""
        return Path(self.value).expanduser()

    def written_config(self, kind: str = "a") -> Any:
        """The run's config as written, unvalidated: its config file, or its results folder's
        config.yml (`kind` names the config file expected, for the error)."""
        if path := self.config_file:
            return read_yaml(path) or {}
        if (self.folder / "config.yml").is_file():
            return read_yaml(self.folder / "config.yml", "results config")
        raise ConfigError(
            f"{self}: neither {kind} config file nor a results folder (with config.yml)"
        )


def describe_fields(section=Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """Every config field with its default and meaning.

    The configuration reference of the documentation site (docs/_ext/podbench_docs.py) is
    made from it, so it cannot drift from the dataclasses.

    Parameters
    ----------
    section : type, default Config
        The config dataclass (or one of its sections) to describe; sections are descended.
    prefix : str, default ""
        Prepended to every path (the section's dotted path and a dot).

    Returns
    -------
    list of (str, str, str)
        (dotted path, default as ``repr``, the field's ``doc=`` text), in field order,
        internal fields left out.
    """
    rows = []
    for f in dataclasses.fields(section):
        if f.metadata.get("internal"):
            continue
        path = f"{prefix}{f.name}"
        hint = typing.get_type_hints(section)[f.name]
        if dataclasses.is_dataclass(hint):
            rows += describe_fields(hint, path + ".")
            continue
        # typeshed cannot tie the two: default_factory is set where default is MISSING
        default = (
            f.default_factory()  # type: ignore[operator]
            if f.default is dataclasses.MISSING
            else f.default
        )
        rows.append((path, repr(default), f.metadata.get("doc", "")))
        for option in typing.get_args(hint):  # a mapping a union accepts: its fields too
            if dataclasses.is_dataclass(option):
                rows += describe_fields(option, path + ".")
    return rows


def keyed_fields(section=Config, prefix: str = "") -> list[tuple[str, Keyed | None]]:
    """Every config field with its hash marker.

    Parameters
    ----------
    section : type, default Config
        The config dataclass (or one of its sections); sections are descended, and so is a
        mapping a union accepts (the selection of ``data.electrodes``).
    prefix : str, default ""
        Prepended to every path (the section's dotted path and a dot).

    Returns
    -------
    list of (str, Keyed or None)
        (dotted path, its :class:`Keyed` marker, None where it declares none), in field
        order, internal fields left out.
    """
    rows: list[tuple[str, Keyed | None]] = []
    hints = typing.get_type_hints(section)
    for f in dataclasses.fields(section):
        if f.metadata.get("internal"):
            continue
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]) and f.metadata.get("keyed") is None:
            rows += keyed_fields(hints[f.name], path + ".")  # a section
            continue
        rows.append((path, f.metadata.get("keyed")))
        for option in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(option):
                rows += keyed_fields(option, path + ".")
    return rows


def keyed_values(section: Any, stage: Stage) -> dict[str, Any]:
    """The fields of one config section that enter a stage's key, by their markers.

    Parameters
    ----------
    section : dataclass instance
        A section of a config (``cfg.training``, ``cfg.pretrain``, a selection).
    stage : str
        The stage (a :class:`Keyed` marker's ``stage``).

    Returns
    -------
    dict
        Field name -> value of every field marked with `stage`,
        less those whose marker's ``when`` field is false and, with ``omit_none``, those
        that are null.
    """
    out = {}
    for f in dataclasses.fields(section):
        keyed = f.metadata.get("keyed")
        if keyed is None or keyed.stage != stage:
            continue
        value = getattr(section, f.name)
        if keyed.when and not getattr(section, keyed.when):
            continue
        if (keyed.omit_none and value is None) or keyed.omits(value):
            continue
        out[f.name] = value
    return out


def keyed_dict(section: Any, keep: Callable[[Keyed], bool]) -> dict[str, Any]:
    """A config as :meth:`Config.to_dict` gives it, with only the fields a hash takes.

    Parameters
    ----------
    section : dataclass instance
        A config (or a section of one).
    keep : callable
        ``Keyed -> bool``: whether a field with this marker enters the hash.

    Returns
    -------
    dict
        Nested by section like ``to_dict``, the fields `keep` refuses left out; a section
        left with no field is left out too.
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(section):
        if f.metadata.get("internal"):
            continue
        value = getattr(section, f.name)
        keyed = f.metadata.get("keyed")
        if keyed is None:  # a section
            if nested := keyed_dict(value, keep):
                out[f.name] = nested
        elif keep(keyed) and not keyed.omits(value):
            is_mapping = dataclasses.is_dataclass(value)
            out[f.name] = keyed_dict(value, keep) if is_mapping else copy.deepcopy(value)
    return out
