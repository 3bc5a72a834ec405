"""The `foundation` preprocessor: a frozen PyTorch model turns each lag window into a vector.

Two kinds of model:

- built-in: podbench's masked autoencoder (podbench/models/foundation), `checkpoint` = the
  pretrain config YAML, the folder `podbench pretrain` wrote, or its checkpoint.pt;
- user: `module: "package.module:function"` returning a torch.nn.Module with
  `forward_features(x)` or `forward_features(x, coords)` (x float32 [batch, channel, time],
  coords float32 [channel, 3] MNI mm; -> [batch, ...] flattened to features), with its weights
  in `state_dict` (optional).

The model runs frozen (eval mode, inference mode, batches of `batch_size`, on the GPU when
there is one) over every lag slice. The checkpoint's sha256 enters the latents key and the
weights file is fingerprinted, so new weights mean new latents. Every configuration error is
raised while the stage keys are computed, before any store is written.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from podbench.config import Config, opt
from podbench.data.recordings import file_digest
from podbench.errors import ConfigError, PodbenchError
from podbench.features.preprocessors import EpochsContext
from podbench.registry import register_preprocessor

PARAM = "preprocess.params"


@dataclass
class FoundationParams:
    checkpoint: str | None = opt(
        None, doc="built-in model: pretrain config YAML, pretrain folder or its checkpoint.pt"
    )
    module: str | None = opt(None, doc="user model: 'package.module:function' -> nn.Module")
    state_dict: str | None = opt(None, doc="weights of the user model (torch.save'd state_dict)")
    pool: Literal["tokens", "electrodes"] = opt(
        "tokens",
        doc="built-in model: average all tokens (width features) or each electrode's "
        "(channels x width)",
    )
    batch_size: int = opt(64, ge=1, doc="windows per forward pass")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", doc="auto: cuda when available")


@dataclass(frozen=True)
class Pretrained:
    """What a built-in checkpoint's config.json (written by `podbench pretrain`) says of its
    model: the masked autoencoder's keyword arguments and the sampling rate (Hz) it was
    pretrained at."""

    architecture: dict
    sfreq: float


@dataclass
class FrozenModel:
    """A loaded model and what identifies it."""

    model: Any  # torch.nn.Module (torch is imported where it is used)
    takes_coords: bool
    files: list[Path]  # weights (and the user module's source): fingerprinted sources
    sha256: str | None  # of the weights file
    label: str
    pretrained: Pretrained | None  # a built-in checkpoint's; None for other models

    @property
    def builtin(self) -> bool:
        """podbench's masked autoencoder (not a user module)."""
        return self.pretrained is not None


_LOADED: dict[tuple, FrozenModel] = {}


def travelling(overrides: tuple[str, ...]) -> tuple[str, ...]:
    """The --set values of data.* and output.*: they reach a named pretrain config too, so
    `--set data.root=...` moves a decoder config and its pretraining together."""
    return tuple(
        o for o in overrides if o.split("=", 1)[0].strip().startswith(("data.", "output."))
    )


def checkpoint_path(spec: str, overrides: tuple[str, ...] = ()) -> Path:
    """checkpoint.pt named by a pretrain config YAML (loaded with the `overrides`), a pretrain
    folder or the file itself."""
    from podbench import config
    from podbench.features.pretrain import is_complete, pretrain_dir

    where = f"{PARAM}.checkpoint = {spec!r}"
    path = Path(spec).expanduser()
    if path.suffix in (".yml", ".yaml"):
        if not path.is_file():
            raise ConfigError(f"{where}: no such pretrain config file")
        try:
            folder = pretrain_dir(config.load(path, overrides))
        except PodbenchError as exc:  # its data, as the pretrain config names it
            raise ConfigError(f"{where}: {exc}") from None
        if not is_complete(folder):
            sets = "".join(f" --set {o}" for o in overrides)
            raise ConfigError(
                f"{where}: this pretraining has not been run ({folder} is missing "
                f"or incomplete); run `podbench pretrain --config {spec}{sets}` "
                "first"
            )
        path = folder
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file {path}")
    return path


def _load_weights(model, path: Path, where: str) -> None:
    """Load a state_dict file into `model`, naming missing, unexpected and misshapen entries."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a config error
        raise ConfigError(f"{where}: cannot read {path} as a PyTorch state_dict ({exc})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{where}: {path} holds a {type(state).__name__}, not a state_dict")
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [
        f"{k} has shape {tuple(v.shape)}, the model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        raise ConfigError(
            f"{where}: {path} does not match the model's architecture: "
            f"{'; '.join(problems[:4])}{more}"
        )
    model.load_state_dict(state)


def _builtin(spec: str, overrides: tuple[str, ...]) -> FrozenModel:
    from podbench.models.foundation.mae import MaskedAutoencoder

    where = f"{PARAM}.checkpoint = {spec!r}"
    path = checkpoint_path(spec, overrides)
    meta_path = path.parent / "config.json"
    try:
        meta = json.loads(meta_path.read_text())
        pretrained = Pretrained(meta["architecture"], float(meta["sfreq"]))
        model = MaskedAutoencoder(**pretrained.architecture)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{where}: {meta_path} does not describe a podbench pretrained model "
            f"({type(exc).__name__}: {exc}); expected a folder written by "
            "`podbench pretrain`"
        ) from None
    _load_weights(model, path, where)
    return FrozenModel(model, True, [path], file_digest(path), path.parent.name, pretrained)


def _takes_coords(method) -> bool:
    """Whether forward_features accepts a second positional argument (the coordinates)."""
    kinds = [p.kind for p in inspect.signature(method).parameters.values()]
    positional = [
        k
        for k in kinds
        if k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or inspect.Parameter.VAR_POSITIONAL in kinds


def _user(spec: str, weights: str | None) -> FrozenModel:
    import torch

    where = f"{PARAM}.module = {spec!r}"
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise ConfigError(f"{where}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({exc})") from None
    build = getattr(module, function, None)
    if not callable(build):
        raise ConfigError(f"{where}: {module_name} has no function {function!r}")
    model = build()
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(
            f"{where}: {function}() returned a {type(model).__name__}, expected a torch.nn.Module"
        )
    if not callable(getattr(model, "forward_features", None)):
        raise ConfigError(
            f"{where}: {type(model).__name__} has no method "
            "forward_features(x) or forward_features(x, coords)"
        )
    files = [Path(file)] if (file := getattr(module, "__file__", None)) else []
    sha = None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"{PARAM}.state_dict = {weights!r}: no such file")
        _load_weights(model, path, f"{PARAM}.state_dict = {weights!r}")
        files.insert(0, path)
        sha = file_digest(path)
    return FrozenModel(model, _takes_coords(model.forward_features), files, sha, spec, None)


def frozen_model(params: dict, overrides: tuple[str, ...] = ()) -> FrozenModel:
    """Load (once per weights file version) the model that `params` names; `overrides`
    (data.* and output.* --set values) reach a named pretrain config."""
    checkpoint, module, weights = params["checkpoint"], params["module"], params["state_dict"]
    if module is not None and checkpoint is not None:
        raise ConfigError(
            f"{PARAM}: set checkpoint (built-in model) or module (user model), "
            f"not both (checkpoint = {checkpoint!r}, module = {module!r})"
        )
    if module is None and weights is not None:
        raise ConfigError(
            f"{PARAM}.state_dict = {weights!r}: only used with {PARAM}.module; "
            f"the built-in model takes {PARAM}.checkpoint"
        )
    if module is None and checkpoint is None:
        raise ConfigError(
            f"{PARAM}.checkpoint is required: the pretrain config YAML, the "
            f"folder written by `podbench pretrain` or its checkpoint.pt (or set "
            f"{PARAM}.module for a user model)"
        )
    if params["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{PARAM}.device = 'cuda': no CUDA device is available")
    overrides = travelling(overrides)
    target = checkpoint_path(checkpoint, overrides) if module is None else weights
    stat = Path(target).stat() if target is not None else None
    key = (module, str(target), stat and (stat.st_size, stat.st_mtime_ns))
    if key not in _LOADED:
        _LOADED[key] = _builtin(checkpoint, overrides) if module is None else _user(module, weights)
    return _LOADED[key]


def _check_window(frozen: FrozenModel, window: int, what: str) -> None:
    """The built-in model takes windows of 1..max_patches patches."""
    if frozen.pretrained is None:
        return
    arch = frozen.pretrained.architecture
    if not arch["patch"] <= window < arch["patch"] * (arch["max_patches"] + 1):
        raise ConfigError(
            f"{what}: {window} samples per window, but "
            f"the checkpoint {frozen.label} takes {arch['patch']}.."
            f"{arch['patch'] * (arch['max_patches'] + 1) - 1} samples "
            f"({arch['max_patches']} patches of {arch['patch']})"
        )


def depends(cfg: Config) -> dict:
    """What the latents depend on beyond the params: the weights' digest and the module.
    Loading here validates everything before any store is written."""
    frozen = frozen_model(cfg.preprocess.params, cfg.overrides)
    if not frozen.builtin and cfg.preprocess.params["pool"] != "tokens":
        raise ConfigError(
            f"{PARAM}.pool = {cfg.preprocess.params['pool']!r}: only the built-in "
            f"model pools by electrode; a user model's forward_features decides "
            f"its own features (leave pool at 'tokens')"
        )
    if frozen.pretrained is not None:
        samples = int(round((cfg.data.window_width - 0.002) * frozen.pretrained.sfreq)) + 1
        _check_window(frozen, samples, f"data.window_width = {cfg.data.window_width}")
    return {"checkpoint_sha256": frozen.sha256, "module": cfg.preprocess.params["module"]}


def sources(cfg: Config) -> list[Path]:
    return frozen_model(cfg.preprocess.params, cfg.overrides).files


class FoundationTransform:
    """Lag slice [word, channel, time] -> [word, feature], counting forward passes."""

    def __init__(
        self,
        frozen: FrozenModel,
        coords: np.ndarray,
        pool: str,
        batch_size: int,
        device: str,
        coords_note: str,
    ):
        import torch

        self.model = frozen.model.to(device).eval()
        self.frozen, self.batch_size, self.device = frozen, batch_size, device
        self.options = {"pool": pool} if frozen.builtin else {}
        self.coords = torch.from_numpy(coords).to(device)
        self.coords_note = coords_note
        self.passes = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for lo in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[lo : lo + self.batch_size])).to(
                    self.device
                )
                args = (batch, self.coords) if self.frozen.takes_coords else (batch,)
                feats = self.model.forward_features(*args, **self.options)
                self.passes += 1
                out.append(feats.reshape(len(batch), -1).float().cpu().numpy())
        return np.concatenate(out)

    def note(self) -> str:
        return (
            f"{self.passes} forward passes of {self.frozen.label} on {self.device}"
            f"{self.coords_note}"
        )


@register_preprocessor(
    "foundation",
    params=FoundationParams,
    dims=("feature",),
    depends=depends,
    sources=sources,
    standardise=lambda p: "train",
)
def foundation(params: dict, ctx: EpochsContext) -> FoundationTransform:
    """A frozen PyTorch foundation model (built-in MAE or a user module) per lag window;
    features are z-scored with training-fold statistics."""
    import torch

    from podbench.data.dataset import channel_coordinates

    frozen = frozen_model(params, ctx.overrides)
    _check_window(frozen, ctx.window, f"epochs at {ctx.sfreq:g} Hz")
    coords, missing = (
        channel_coordinates(ctx.root, ctx.channels)
        if frozen.takes_coords
        else (np.zeros((len(ctx.channels), 3), np.float32), [])
    )
    note = ""
    if missing:
        note = (
            f"; {len(missing)} channel(s) without MNI coordinates use their subject's mean "
            f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})"
        )
    device = params["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return FoundationTransform(frozen, coords, params["pool"], params["batch_size"], device, note)
