"""The `braindecode` preprocessor: any braindecode.models class, run frozen over every lag window.

The model is built for the recording: `n_chans` = the epochs' channels, `sfreq` = the model's
rate (`sfreq`, else the rate in the weights' config.json, else the recording's), `n_times` =
the lag window at that rate. Windows are resampled with MNE (mne.filter.resample) when the
model's rate differs from the recording's. Weights come from `from_pretrained`: `weights` is a
local directory written by `save_pretrained` / `push_to_hub` (config.json plus
model.safetensors or pytorch_model.bin) or a Hugging Face repository id, downloaded once with
huggingface_hub (online). Without `weights` the model is randomly initialised from `seed` (a
random-init control). The run reuses the `foundation` preprocessor's frozen-model machinery
(eval mode, inference mode, batches, GPU when there is one); the latents are cached, and the
weights' sha256 enters the latents key, so new weights mean new latents.

Features per window (`features`):
- auto: the model's encoder features where its forward takes `return_features=True` (the
  braindecode foundation models: out["features"]), else the input of its `final_layer` (the
  classification head of most braindecode models); flattened;
- output: the model's output itself.
Features are z-scored with training-fold statistics and decoded by any decoder.

Install with `pip install -e ".[foundation]"`. Intracranial models: of braindecode 1.8.1's
foundation models (BENDR, BIOT, CBraMod, CodeBrain, EEG-DINO, EEGPT, LaBraM, LUNA, Medformer,
MVPFormer, PatchedTransformer, REVE, SignalJEPA, ST-EEGFormer, ZUNA), only MVPFormer (Carzaniga et
al. 2026; 5-s segments at 512 Hz) is documented as a model of intracranial (iEEG) recordings; the
others are documented for scalp EEG (braindecode's model table, models/summary.csv, lists all of
them, MVPFormer included, under modality EEG). MVPFormer's docstring names no Hugging Face
repository of pretrained weights; whether the Hub holds braindecode-format MVPFormer weights was not
verified. BrainBERT and PopT are not in braindecode 1.8.1. Should braindecode add a BrainBERT-style
class with weights on the Hub, `model: <class>` and `weights: <owner/name>` (or the folder
`save_pretrained` wrote) select it, with no podbench change; its native checkpoints run today
through the `foundation` preprocessor's `module:` (a function returning the nn.Module with a
`forward_features`) and `state_dict:`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from podbench.config import Config, opt
from podbench.data.recordings import file_digest
from podbench.errors import ConfigError
from podbench.features.foundation import FoundationTransform, FrozenModel
from podbench.features.preprocessors import EpochsContext
from podbench.registry import register_preprocessor

PARAM = "preprocess.params"
WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


@dataclass
class BraindecodeParams:
    model: str = opt("", doc="a braindecode.models class, e.g. MVPFormer, LaBraM, EEGNeX")
    weights: str | None = opt(
        None,
        doc="from_pretrained source: a local directory or a Hugging Face repository id; "
        "null: random initialisation from seed",
    )
    sfreq: float | None = opt(
        None, doc="the model's sampling rate (Hz); null: its config.json's, else the recording's"
    )
    kwargs: dict = opt(factory=dict, doc="extra constructor arguments of the model class")
    features: Literal["auto", "output"] = opt(
        "auto",
        doc="auto: encoder features (return_features, else the input of final_layer); "
        "output: the model's output",
    )
    chs_info: bool = opt(False, doc="pass channel names and MNI positions (m) as MNE chs_info")
    seed: int = opt(0, ge=0, doc="seed of a randomly initialised model (weights: null)")
    batch_size: int = opt(64, ge=1, doc="windows per forward pass")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", doc="auto: cuda when available")


def _braindecode():
    try:
        import braindecode.models as models
    except (ImportError, OSError) as exc:  # OSError: a torchaudio build that does not load
        raise ConfigError(
            f"preprocess.name = 'braindecode' needs braindecode: pip install -e "
            f'".[foundation]" ({type(exc).__name__}: {exc})'
        ) from None
    return models


def model_class(params: dict):
    models = _braindecode()
    name = params["model"]
    cls = getattr(models, name, None) if name else None
    if not inspect.isclass(cls):
        known = sorted(n for n in dir(models) if inspect.isclass(getattr(models, n)))
        raise ConfigError(
            f"{PARAM}.model = {name!r}: not a braindecode.models class; "
            f"available: {', '.join(known)}"
        )
    return cls


def weights_dir(params: dict) -> Path | None:
    """The local directory of the weights (a Hugging Face id is downloaded once)."""
    spec = params["weights"]
    if spec is None:
        return None
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{PARAM}.weights = {spec!r}: {path} has no config.json; expected "
                "a folder written by save_pretrained"
            )
        return path
    if path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise ConfigError(
            f"{PARAM}.weights = {spec!r}: no such directory (and not a Hugging "
            "Face repository id 'owner/name')"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=spec, allow_patterns=list(WEIGHT_FILES)))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repository, no access
        raise ConfigError(
            f"{PARAM}.weights = {spec!r}: cannot download it from Hugging Face "
            f"({type(exc).__name__}: {exc}); offline, pass a local directory "
            "written by save_pretrained"
        ) from None


def weight_files(folder: Path | None) -> list[Path]:
    return [] if folder is None else [folder / n for n in WEIGHT_FILES if (folder / n).is_file()]


def weights_digest(folder: Path | None) -> str | None:
    """sha256 over the weight files' names and digests."""
    files = weight_files(folder)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.name}:{file_digest(path)}\n".encode())
    return h.hexdigest()


def model_rate(params: dict, folder: Path | None, recording: float) -> float:
    if params["sfreq"] is not None:
        return float(params["sfreq"])
    saved = json.loads((folder / "config.json").read_text()).get("sfreq") if folder else None
    return float(saved) if saved else recording


def depends(cfg: Config) -> dict:
    """The braindecode version, the class and the weights' digest; checks them before any
    store is written."""
    params = cfg.preprocess.params
    model_class(params)
    import braindecode

    folder = weights_dir(params)
    if folder is not None and len(weight_files(folder)) < 2:
        raise ConfigError(
            f"{PARAM}.weights = {params['weights']!r}: {folder} has no "
            "model.safetensors or pytorch_model.bin"
        )
    return {"braindecode": braindecode.__version__, "weights_sha256": weights_digest(folder)}


def sources(cfg: Config) -> list[Path]:
    return weight_files(weights_dir(cfg.preprocess.params))


def _chs_info(ctx: EpochsContext) -> list[dict]:
    """MNE-style channel dicts: name and MNI position in metres (loc[:3])."""
    from mne.io.constants import FIFF

    from podbench.data.dataset import channel_coordinates

    coords, _ = channel_coordinates(ctx.root, ctx.channels)
    return [
        {"ch_name": name, "loc": np.r_[xyz / 1000.0, np.zeros(9)], "kind": int(FIFF.FIFFV_ECOG_CH)}
        for name, xyz in zip(ctx.channels, coords.astype(np.float64))
    ]


def build_model(params: dict, ctx: EpochsContext):
    """The frozen braindecode model for these epochs, and its rate and window length."""
    import torch

    cls = model_class(params)
    folder = weights_dir(params)
    sfreq = model_rate(params, folder, ctx.sfreq)
    n_times = int(round(ctx.window * sfreq / ctx.sfreq))
    shape = {
        "n_chans": len(ctx.channels),
        "n_times": n_times,
        "sfreq": sfreq,
        "input_window_seconds": n_times / sfreq,
        **params["kwargs"],
    }
    if params["chs_info"]:
        shape["chs_info"] = _chs_info(ctx)
    where = f"{PARAM}.model = {params['model']!r}"
    try:
        if folder is None:
            torch.manual_seed(params["seed"])
            model = cls(n_outputs=1, **shape)
        else:
            model = cls.from_pretrained(str(folder), **shape)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{where} (weights {params['weights']!r}) cannot be built for "
            f"{len(ctx.channels)} channels x {n_times} samples at {sfreq:g} Hz: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return model.eval(), sfreq, n_times


def frozen_braindecode(params: dict, ctx: EpochsContext) -> FrozenModel:
    """The model wrapped for FoundationTransform: forward_features(x) resamples and extracts."""
    import torch

    model, sfreq, n_times = build_model(params, ctx)
    takes_flag = "return_features" in inspect.signature(model.forward).parameters
    head = getattr(model, "final_layer", None)
    if params["features"] == "auto" and not takes_flag and not isinstance(head, torch.nn.Module):
        raise ConfigError(
            f"{PARAM}.features = 'auto': {params['model']} has neither "
            "return_features nor a final_layer; use features: output"
        )

    class Features(torch.nn.Module):
        """Lag windows [batch, channel, time] at the recording's rate -> [batch, feature]."""

        def __init__(self):
            super().__init__()
            self.model = model

        def forward_features(self, x):
            if sfreq != ctx.sfreq:
                import mne

                resampled = mne.filter.resample(
                    x.cpu().numpy().astype(np.float64),
                    up=sfreq,
                    down=ctx.sfreq,
                    axis=-1,
                    verbose="error",
                )
                x = torch.from_numpy(resampled.astype(np.float32)).to(x.device)
            if x.shape[-1] != n_times:
                raise ConfigError(
                    f"{PARAM}: windows of {x.shape[-1]} samples at {sfreq:g} Hz, "
                    f"the model was built for {n_times}"
                )
            if params["features"] == "output":
                return self.model(x)
            if takes_flag:
                out = self.model(x, return_features=True)
                return out["features"] if isinstance(out, dict) else out
            captured = []
            hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
            try:
                self.model(x)
            finally:
                hook.remove()
            return captured[0]

    folder = weights_dir(params)
    source = params["weights"] or f"random, seed {params['seed']}"
    label = f"{params['model']}({source})"
    return FrozenModel(Features(), False, weight_files(folder), weights_digest(folder), label, None)


@register_preprocessor(
    "braindecode",
    params=BraindecodeParams,
    dims=("feature",),
    depends=depends,
    sources=sources,
    standardise=lambda p: "train",
)
def braindecode(params: dict, ctx: EpochsContext) -> FoundationTransform:
    """A frozen braindecode model per lag window; features z-scored with training-fold
    statistics."""
    import torch

    device = params["device"]
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{PARAM}.device = 'cuda': no CUDA device is available")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    frozen = frozen_braindecode(params, ctx)
    zeros = np.zeros((len(ctx.channels), 3), np.float32)
    return FoundationTransform(frozen, zeros, "tokens", params["batch_size"], device, "")
