"""Word-embedding target sources (gpt2, glove, arbitrary, hf) and the PCA that follows them.

A source is registered with `@register_target_source(name, params=Dataclass, sources=fn)`,
whose keywords are the fields of its spec (podbench.specs.SourceSpec): `params` its parameters
(`targets.params`, validated against the dataclass; they enter the targets key),
`sources(cfg, dataset)` lists the files it reads (fingerprinted). Optional: `fields`, the
dotted config paths it reads besides (the built-in sources read the flat `targets` fields and
declare no params), `required`, config paths that must be set, and `dims(cfg, dataset)`, its
vector width read cheaply (checked against targets.pca_dim before anything is built). It
returns one vector per word it embeds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from podbench.config import Config
from podbench.data.dataset import GPT2_FEATURES, Dataset, glove_key, normalise_label
from podbench.errors import ConfigError, DataError
from podbench.registry import register_target_source


@dataclass
class SourceResult:
    """Vectors for the words a source could embed (rows follow `word_idx`)."""

    word_idx: np.ndarray
    vectors: np.ndarray
    dropped: list[int] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _check_path(value: str | None, key: str, kind: str) -> Path:
    if not value:
        raise ConfigError(f"{key} is required for targets.kind: {kind}")
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{key} = {value!r}: no such file or directory")
    return path


def gpt2_dims(cfg: Config, dataset: Dataset) -> int:
    """Width of the configured layer of features.hdf5 (read from its header); a missing file
    or layer is an error."""
    import h5py

    path = dataset.gpt2_features_path
    name = f"layer-{cfg.targets.layer}"
    try:
        with h5py.File(path, "r") as f:
            if name not in f:
                layers = sorted(f.keys(), key=lambda k: (len(k), k))
                raise ConfigError(
                    f"targets.layer = {cfg.targets.layer}: {path} has no {name!r} "
                    f"(it has {', '.join(layers)})"
                )
            shape = f[name].shape
    except OSError as exc:
        raise DataError(f"{path}: cannot read it as HDF5 ({exc})") from None
    if len(shape) != 2:
        raise DataError(f"{path}: {name} has shape {shape}, expected (tokens, dims)")
    return int(shape[1])


def glove_dims(cfg: Config, dataset: Dataset) -> int:
    """Values per line of the GloVe file (from its first line)."""
    path = _check_path(cfg.targets.glove_path, "targets.glove_path", "glove")
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n").split(" ")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as a GloVe text file ({exc})") from None
    if len(first) < 2:
        raise DataError(f"{path} line 1: expected a word and its values separated by spaces")
    return len(first) - 1


@register_target_source(
    "gpt2",
    fields=("targets.layer",),
    dims=gpt2_dims,
    sources=lambda cfg, ds: [ds.transcript_path, ds.gpt2_features_path],
    dataset_files=(GPT2_FEATURES,),
)
def gpt2(cfg: Config, dataset: Dataset, words: pd.DataFrame) -> SourceResult:
    """GPT-2 XL layer L of stimuli/gpt2-xl/features.hdf5, averaged over each word's tokens."""
    import h5py

    path = dataset.gpt2_features_path
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    tokens = dataset.token_table()
    name = f"layer-{cfg.targets.layer}"
    with h5py.File(path, "r") as f:
        if name not in f:
            raise DataError(
                f"{path}: no dataset {name!r} (targets.layer = "
                f"{cfg.targets.layer}); it has {sorted(f.keys())}"
            )
        layer = f[name][()]
    if layer.shape[0] != len(tokens):
        raise DataError(
            f"{path}: {name} has {layer.shape[0]} rows but {dataset.transcript_path} "
            f"has {len(tokens)} tokens"
        )
    groups = tokens["word_idx"].to_numpy()
    order, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(order), layer.shape[1]), np.float64)
    np.add.at(sums, inverse, layer.astype(np.float64))
    counts = np.bincount(inverse, minlength=len(order))[:, None]
    return SourceResult(
        order.astype(np.int64),
        (sums / counts).astype(np.float32),
        info={"layer": cfg.targets.layer},
    )


@register_target_source(
    "glove",
    fields=("targets.glove_path",),
    required=("targets.glove_path",),
    dims=glove_dims,
    dataset_files=(),
    sources=lambda cfg, ds: [ds.transcript_path, Path(cfg.targets.glove_path).expanduser()],
)
def glove(cfg: Config, dataset: Dataset, words: pd.DataFrame) -> SourceResult:
    """GloVe vectors from a text file; out-of-vocabulary words are dropped (and recorded)."""
    path = _check_path(cfg.targets.glove_path, "targets.glove_path", "glove")
    keys = [glove_key(w) for w in words["word"]]
    wanted = set(keys)
    table: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            head, _, rest = line.rstrip("\n").partition(" ")
            if head not in wanted:
                continue
            vec = np.array(rest.split(" "), dtype=np.float32)
            if dim is None:
                dim = len(vec)
            if len(vec) != dim:
                raise DataError(f"{path} line {line_no}: {len(vec)} values, expected {dim}")
            table[head] = vec
    keep = np.array([k in table for k in keys])
    if not keep.any():
        raise DataError(f"{path}: none of the transcript's words is in this GloVe file")
    vectors = np.stack([table[k] for k, ok in zip(keys, keep) if ok])
    idx = words["word_idx"].to_numpy()
    return SourceResult(
        idx[keep].astype(np.int64), vectors, dropped=idx[~keep].astype(int).tolist()
    )


def arbitrary_vector(label: str, seed: int, dim: int) -> np.ndarray:
    """uniform[-1, 1]^dim, determined by the seed and the label alone."""
    digest = hashlib.sha256(f"{seed}\0{label}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return rng.uniform(-1.0, 1.0, dim).astype(np.float32)


@register_target_source(
    "arbitrary",
    fields=("targets.dim", "targets.seed", "data.label_normalisation"),
    dims=lambda cfg, ds: cfg.targets.dim,
    sources=lambda cfg, ds: [ds.transcript_path],
    dataset_files=(),
)
def arbitrary(cfg: Config, dataset: Dataset, words: pd.DataFrame) -> SourceResult:
    """One random vector per word type (type = normalised label), shared by its occurrences."""
    mode = cfg.data.label_normalisation
    vectors = np.stack(
        [
            arbitrary_vector(normalise_label(w, mode), cfg.targets.seed, cfg.targets.dim)
            for w in words["word"]
        ]
    )
    return SourceResult(words["word_idx"].to_numpy().astype(np.int64), vectors)


def _hf_model_files(cfg: Config, ds: Dataset) -> list[Path]:
    """The transcript and the model folder's files (a folder with config.json, checked here,
    before any store is built)."""
    root = _check_path(cfg.targets.hf_model, "targets.hf_model", "hf")
    if not (root / "config.json").is_file():
        raise ConfigError(
            f"targets.hf_model = {cfg.targets.hf_model!r}: expected a local "
            "Hugging Face model folder (with config.json)"
        )
    return [ds.transcript_path] + sorted(p for p in root.glob("*") if p.is_file())


@register_target_source(
    "hf",
    fields=("targets.hf_model", "targets.layer"),
    required=("targets.hf_model",),
    sources=_hf_model_files,
    dataset_files=(),
)
def hf(cfg: Config, dataset: Dataset, words: pd.DataFrame) -> SourceResult:
    """Hidden states of a local Hugging Face model over the transcript, averaged per word."""
    from podbench.tasks.hf import word_hidden_states

    path = _check_path(cfg.targets.hf_model, "targets.hf_model", "hf")
    vectors = word_hidden_states(path, words["word"].tolist(), cfg.targets.layer)
    return SourceResult(
        words["word_idx"].to_numpy().astype(np.int64),
        vectors,
        info={"hf_model": str(path.resolve()), "layer": cfg.targets.layer},
    )


def fit_pca(vectors: np.ndarray, dim: int, fit_rows: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """PCA (exact SVD) fitted on `fit_rows`, applied to every row."""
    from sklearn.decomposition import PCA

    n_fit = len(fit_rows)
    if dim > min(n_fit, vectors.shape[1]):
        raise ConfigError(
            f"targets.pca_dim = {dim}: larger than the {vectors.shape[1]} target "
            f"dimensions or the {n_fit} words it is fitted on"
        )
    pca = PCA(n_components=dim, svd_solver="full").fit(vectors[fit_rows].astype(np.float64))
    out = pca.transform(vectors.astype(np.float64)).astype(np.float32)
    return out, pca.explained_variance_ratio_.astype(float).tolist()
