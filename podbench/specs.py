"""Typed, frozen specs of registry entries: everything a consumer may ask about a decoder,
preprocessor, target source or task, declared where the entry is registered.

A spec is built from the keywords of its decorator (`@register_model(name, params=...,
input_dims=...)`) or declaration (`Registry.declare`) by `Spec.of`, which refuses an unknown
keyword, so a misspelt one is an error at import rather than a setting silently ignored. This
module imports no JAX: validating a config reads specs only.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from podbench.errors import ConfigError

if TYPE_CHECKING:
    from podbench.config import Config

S = TypeVar("S", bound="Spec")


@dataclass(frozen=True)
class Spec:
    """Base of the specs (and the spec of entries that declare nothing, such as metrics)."""

    @classmethod
    def of(cls: type[S], where: str, keywords: dict[str, Any]) -> S:
        """The spec of the entry at `where` from its registration keywords, strictly.

        Parameters
        ----------
        where : str
            The entry, for errors (e.g. ``model 'pitom'``).
        keywords : dict
            The keywords of its decorator or declaration: the spec's fields.

        Returns
        -------
        Spec
            The spec (of the class `of` is called on).

        Raises
        ------
        podbench.errors.ConfigError
            An unknown keyword, naming the closest field.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        for name in keywords:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                allowed = ", ".join(known) or "none"
                raise ConfigError(
                    f"{where}: unknown keyword {name!r}{hint} ({cls.__name__} declares: {allowed})"
                )
        try:
            return cls(**keywords)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _check_params(params: type | None) -> None:
    if params is not None and not dataclasses.is_dataclass(params):
        raise ValueError(f"params = {params!r}: expected a dataclass (or None: no parameters)")


def _field_names(params: type | None) -> list[str]:
    return [f.name for f in dataclasses.fields(params)] if params is not None else []


# ----------------------------------------------------------------------------------- decoders


class TrainedNetwork(Protocol):
    """What a trained decoder's constructor returns (an nnx.Module): called as
    `network(x, call)` (`network(x, call, y)` if it takes targets) on a lane's batch
    [batch, *latent dims] with a `podbench.models.layers.Call`, and `penalty()`: its L2 term
    added to the loss (a zero array if it has none)."""

    def __call__(self, x: Any, call: Any, *y: Any) -> Any: ...

    def penalty(self) -> Any: ...


class BuildTrained(Protocol):
    """A trained decoder's constructor (`kind="trained"`). A decoder with `uses_frozen` is
    also passed `frozen=`, the task's frozen pytree."""

    def __call__(
        self,
        params: dict[str, Any],
        *,
        input_shape: tuple[int, ...],
        output_dim: int,
        head: str,
        rngs: Any,
    ) -> TrainedNetwork: ...


class BuildClosedForm(Protocol):
    """A closed-form decoder's constructor (`kind="closed_form"`): its `(fit, predict)`.
    `fit(x_train, y_train, train_mask, x_val, y_val, val_mask, alphas, score_fn)` gives
    (weights, bias, x_mean, x_std, alpha, score, steps) of the penalty in `alphas` (the params
    field of that name) that scores best on validation, `steps` the units of its declared
    `work` the fit did (a direct solve: 1; an iterative fit: its steps, e.g. L-BFGS's
    loss-and-gradient evaluations); `predict(x, weights, bias, x_mean, x_std)`."""

    def __call__(
        self, params: dict[str, Any], *, head: str, output_dim: int
    ) -> tuple[Callable[..., Any], Callable[..., Any]]: ...


@dataclass(frozen=True)
class Workload:
    """What one lane of a decoder computes, for the plan's time estimates.

    A program's cost is its lanes x epochs (closed form: a fit's steps) x the decoder's work
    (:class:`DecoderSpec`'s ``work`` of this workload), at the seconds per unit of work that
    this machine's measured runs of the decoder took (``podbench.experiments.plan``).

    Parameters
    ----------
    events : int
        The program's events (a lane trains on some and scores the rest).
    input_shape : tuple of int
        One event's decoder input at one lag (PITOM: channels, bins).
    members : int
        Networks a lane trains (a joint ensemble's members share one lane).
    head : str
        The task's head: ``"vector"``, ``"scalar"``, ``"binary"``, ``"classes"``, ...
    params : mapping
        The decoder's ``model.params``.
    classes : int, default 1
        The logits of a class head (its classes); 1 for every other head.
    """

    events: int
    input_shape: tuple[int, ...]
    members: int
    head: str
    params: Mapping[str, Any]
    classes: int = 1

    @property
    def elements(self) -> int:
        """Input elements of one event at one lag."""
        return math.prod(self.input_shape)


def dense_work(load: Workload) -> float:
    """The work of one lane's epoch for a decoder that declares none.

    Parameters
    ----------
    load : Workload
        What the lane computes on.

    Returns
    -------
    float
        Events x input elements x members: a network whose arithmetic grows with its input,
        as a dense first layer's does.
    """
    return float(load.events * load.elements * load.members)


@dataclass(frozen=True, kw_only=True)
class DecoderSpec(Spec):
    """What a decoder declares: its kind, parameters, the latents it takes and the extras the
    trainer gives it.

    Parameters
    ----------
    kind : {"trained", "closed_form"}, default "trained"
        Trained over epochs as lanes of a compiled program (a :class:`BuildTrained`), or
        fitted in one solve per lane (a :class:`BuildClosedForm`: ridge, linear).
    params : type, optional
        The dataclass validating ``model.params`` (None: no parameters).
    input_dims : tuple of str, optional
        The latents' dims per lag it takes, e.g. ``("channel", "bin")`` (None: any).
    takes_targets : bool, default False
        Called as ``model(x, call, y)`` with the batch's target columns (trained only).
    uses_frozen : bool, default False
        Built with ``frozen=`` the task's frozen pytree (``Task.frozen``; trained only).
    init_from : mapping of str to str, default {}
        Parameter naming a finished run -> the submodule that starts from that run's
        parameters (``podbench.train.warm``; trained only).
    dropout : str, optional
        The parameter that is each lane's dropout rate, so sweeps over it share a program
        (trained only).
    classifier : bool, default False
        A closed-form decoder that gives one logit per class (logistic regression).
    work : callable, default dense_work
        The arithmetic of one lane's epoch (closed form: of one step of a lane's fit, which
        reports its steps) for a :class:`Workload`, in floating-point operations or any unit
        its time is proportional to; the plan's time estimates scale measured runs by it.

    Raises
    ------
    ValueError
        A field that is not one of ``params``' fields, or an option of the other kind.
    """

    kind: Literal["trained", "closed_form"] = "trained"
    params: type | None = None  # dataclass validating model.params (None: no parameters)
    input_dims: tuple[str, ...] | None = None  # latent dims per lag it takes (None: any)
    takes_targets: bool = False  # called as model(x, call, y) with the batch's target columns
    uses_frozen: bool = False  # built with frozen= the task's frozen pytree (Task.frozen)
    # parameter naming a finished run -> submodule that starts from that run (train.warm)
    init_from: Mapping[str, str] = field(default_factory=dict)
    dropout: str | None = None  # the parameter that is each lane's dropout rate (a lane value)
    classifier: bool = False  # closed form: gives one logit per class (logistic regression)
    work: Callable[[Workload], float] = dense_work  # a lane's epoch (closed form: fit step)

    def __post_init__(self) -> None:
        if self.kind not in ("trained", "closed_form"):
            raise ValueError(f"kind = {self.kind!r}: expected 'trained' or 'closed_form'")
        _check_params(self.params)
        if self.input_dims is not None:
            object.__setattr__(self, "input_dims", tuple(self.input_dims))
        object.__setattr__(self, "init_from", MappingProxyType(dict(self.init_from)))
        fields = _field_names(self.params)
        for name in [*self.init_from, *([self.dropout] if self.dropout else [])]:
            if name not in fields:
                raise ValueError(f"{name!r} is not a field of params ({', '.join(fields)})")
        trained_only = {
            "takes_targets": self.takes_targets,
            "uses_frozen": self.uses_frozen,
            "init_from": bool(self.init_from),
            "dropout": self.dropout is not None,
        }
        if self.closed_form and any(trained_only.values()):
            wrong = ", ".join(k for k, v in trained_only.items() if v)
            raise ValueError(f"a closed-form decoder declares none of {wrong}")
        if self.classifier and not self.closed_form:
            raise ValueError(
                "classifier is declared by closed-form decoders (a trained one "
                "gives whatever the task's head asks)"
            )

    @property
    def closed_form(self) -> bool:
        """Fitted in one solve per lane (ridge, linear), not trained over epochs."""
        return self.kind == "closed_form"

    def lane_dropout(self, params: dict[str, Any]) -> float:
        """Each lane's dropout rate under model.params `params`.

        Parameters
        ----------
        params : dict
            The lane's ``model.params``.

        Returns
        -------
        float
            The value of the parameter named by `dropout`, 0 when the decoder declares none.
        """
        return float(params[self.dropout]) if self.dropout else 0.0


# ------------------------------------------------------------------------------ preprocessors


def _no_standardisation(params: dict[str, Any]) -> None:
    return None


def _no_files(cfg: Config) -> list[Path]:
    return []


def _no_key_inputs(cfg: Config) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, kw_only=True)
class PreprocessorSpec(Spec):
    """What a preprocessor declares: a factory ``(params, context) -> transform`` whose
    ``transform(x)`` maps one lag slice ``[word, channel, time]`` to ``[word, *dims]``.

    Parameters
    ----------
    dims : tuple of str
        The names of its output dims after the event, e.g. ``("channel", "bin")``.
    params : type, optional
        The dataclass validating ``preprocess.params`` (None: no parameters).
    standardise : callable, optional
        ``params -> None | "all" | "train"``: per-channel z-scoring of the output with
        statistics over all events (kept with the latents) or over each training fold (by the
        trainer); default: none.
    sources : callable, optional
        ``cfg -> list of paths``: the files it reads (fingerprinted into the latents key).
    depends : callable, optional
        ``cfg -> dict``: extra inputs of the latents key (e.g. a checkpoint's digest); it may
        validate the config.
    """

    dims: tuple[str, ...]  # names of the output dims after word
    params: type | None = None  # dataclass validating preprocess.params
    # params -> None | "all" | "train": per-channel z-scoring of the output with statistics
    # over all words (kept with the latents) or over each training fold (by the trainer)
    standardise: Callable[[dict[str, Any]], Literal["all", "train"] | None] = _no_standardisation
    sources: Callable[[Config], list[Path]] = _no_files  # files it reads (fingerprinted)
    # extra inputs of the latents key (e.g. a checkpoint digest); may validate the config
    depends: Callable[[Config], dict[str, Any]] = _no_key_inputs

    def __post_init__(self) -> None:
        _check_params(self.params)
        object.__setattr__(self, "dims", tuple(self.dims))


# ----------------------------------------------------------------------------- target sources


def _unknown_width(cfg: Config, dataset: Any) -> int | None:
    return None


@dataclass(frozen=True, kw_only=True)
class SourceSpec(Spec):
    """What a word-embedding target source declares; the source itself is
    `(cfg, dataset, words) -> SourceResult` (podbench.tasks.sources).

    Parameters
    ----------
    sources : callable
        ``(cfg, dataset) -> list of paths``: the files it reads (fingerprinted).
    params : dataclass type, optional
        Its parameters: ``targets.params`` is validated against it (an unknown key or a wrong
        value is an error naming ``targets.params.<key>``) and enters the targets key. None:
        it takes none, and refuses a non-empty ``targets.params``.
    fields : tuple of str, default ()
        Dotted config paths it reads besides its parameters (the built-in sources' flat
        ``targets`` settings): they enter the targets key.
    required : tuple of str, default ()
        Dotted config paths that must be set.
    dims : callable, optional
        ``(cfg, dataset) -> int or None``: its vector width, read cheaply (checked against
        ``targets.pca_dim``).
    dataset_files : tuple of str, optional
        Files of ds005574 it reads besides the words (paths inside the dataset, for
        ``podbench download``); None: not declared, so a download by config refuses it.
    """

    sources: Callable[[Config, Any], list[Path]]  # (cfg, dataset) -> files read (fingerprinted)
    params: type | None = None  # targets.params is validated against it (None: it takes none)
    fields: tuple[str, ...] = ()  # dotted config paths it reads: they enter the targets key
    required: tuple[str, ...] = ()  # dotted config paths that must be set
    # (cfg, dataset) -> its vector width, read cheaply (checked against targets.pca_dim)
    dims: Callable[[Config, Any], int | None] = _unknown_width
    # files of ds005574 it reads besides the words (paths inside the dataset, for `podbench
    # download`); None: not declared, so a download by config refuses it
    dataset_files: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check_params(self.params)
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "required", tuple(self.required))
        if self.dataset_files is not None:
            object.__setattr__(self, "dataset_files", tuple(self.dataset_files))


# -------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True, kw_only=True)
class TaskSpec(Spec):
    """What a task declares besides its class's hooks (podbench.tasks.base.Task).

    Parameters
    ----------
    params : type, optional
        The dataclass validating ``task_params`` (None: no parameters).
    dataset_files : callable, optional
        ``cfg -> list of str``: the files of ds005574 it reads (paths inside the dataset, for
        ``podbench download``); None: not declared, so a download by config refuses it.
    """

    params: type | None = None  # dataclass validating task_params
    # cfg -> the files of ds005574 it reads (paths inside the dataset, for `podbench download`;
    # podbench.data.dataset names the stimulus files); None: not declared, so a download by
    # config refuses it
    dataset_files: Callable[[Config], list[str]] | None = None

    def __post_init__(self) -> None:
        _check_params(self.params)
