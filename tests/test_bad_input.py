"""Bad input through the real CLI: every case exits 2 with one stderr line naming the file,
key or value, no traceback, and nothing written under the output roots.

The cases run concurrently, a group at a time: the config cases fail in well under a second;
the others (values that need the registries, files of the dataset) fail in the checks before
computing, before any store is built, and are marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from .helpers import mirror

PODBENCH = str(Path(sys.executable).parent / "podbench")
TRANSCRIPT = "stimuli/gpt2-xl/transcript.tsv"
FEATURES = "stimuli/gpt2-xl/features.hdf5"
BASE = {
    "trial_name": "bad",
    "data": {
        "subjects": [1],
        "electrodes": "^G[0-9]$",
        "lags": {"min": 0, "max": 200, "step": 200},
    },
    "model": {"members": 1},
    "training": {"epochs": 1},
}


def broken_transcript(src: Path) -> bytes:
    lines = (src / TRANSCRIPT).read_text().splitlines()
    cells = lines[5].split("\t")
    cells[3] = "soon"  # a non-numeric onset
    return "\n".join(lines[:5] + ["\t".join(cells)] + lines[6:]).encode()


USER_MODEL = b"""import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward_features(self, x):
        return x.mean(-1)


def build():
    return Tiny()
"""

# name: (command, config changes | raw config text, --set overrides, dataset files replaced,
#        extra files {name: bytes}, fragment the one stderr line must contain)
CASES = {
    "config missing": ("train", None, [], {}, {}, "does not exist"),
    "config empty": ("train", "", [], {}, {}, "data.root = 'data': no such folder"),
    "config malformed YAML": ("train", "training: [1,\n", [], {}, {}, "not valid YAML"),
    "config not a mapping": ("train", "- 1\n- 2\n", [], {}, {}, "expected a mapping"),
    "config not UTF-8": ("train", b"trial_name: caf\xe9\n", [], {}, {}, "not UTF-8"),
    "config duplicate key": (
        "train",
        "training:\n  lr: 1.0e-3\ntraining:\n  epochs: 2\n",
        [],
        {},
        {},
        "key 'training' appears twice (lines 1 and 3)",
    ),
    "config unknown key": ("train", {"training": {"lrate": 0.1}}, [], {}, {}, "training.lrate"),
    "dropout 1.5": (
        "train",
        {"model": {"params": {"dropout": 1.5}}},
        [],
        {},
        {},
        "model.params.dropout = 1.5",
    ),
    "dropout -0.5": (
        "train",
        {"model": {"params": {"dropout": -0.5}}},
        [],
        {},
        {},
        "model.params.dropout = -0.5",
    ),
    "reg -1": ("train", {"model": {"params": {"reg": -1}}}, [], {}, {}, "model.params.reg = -1"),
    "lr inf": ("train", {"training": {"lr": float("inf")}}, [], {}, {}, "finite"),
    "lr 0 by --set": ("train", {}, ["training.lr=0"], {}, {}, "--set training.lr=0"),
    "filters 0": (
        "train",
        {"model": {"params": {"filters": 0}}},
        [],
        {},
        {},
        "model.params.filters = 0",
    ),
    "lane_chunk 0": (
        "train",
        {"training": {"lane_chunk": 0}},
        [],
        {},
        {},
        "training.lane_chunk = 0",
    ),
    "lane_batch -1": (
        "train",
        {"training": {"lane_batch": -1}},
        [],
        {},
        {},
        "training.lane_batch = -1",
    ),
    "subjects empty": ("train", {"data": {"subjects": []}}, [], {}, {}, "data.subjects = []"),
    "subject absent": ("train", {"data": {"subjects": [1, 12]}}, [], {}, {}, "subject 12"),
    "trial_name empty": ("train", {"trial_name": ""}, [], {}, {}, "trial_name = ''"),
    "trial_name escapes": (
        "train",
        {"trial_name": "../../escaped"},
        [],
        {},
        {},
        "trial_name = '../../escaped'",
    ),
    "override without =": ("train", {}, ["training.lr"], {}, {}, "PATH=VALUE"),
    "override bad type": (
        "build-features",
        {},
        ["data.window_width=wide"],
        {},
        {},
        "--set data.window_width=wide",
    ),
    "pca_dim above dims": (
        "train",
        {"targets": {"pca_dim": 5000}},
        [],
        {},
        {},
        "targets.pca_dim = 5000",
    ),
    "layer beyond the model": (
        "build-features",
        {"targets": {"layer": 99}},
        [],
        {},
        {},
        "targets.layer = 99",
    ),
    "n_folds above words": (
        "train",
        {"training": {"n_folds": 400}},
        [],
        {},
        {},
        "training.n_folds = 400",
    ),
    "glove without a path": (
        "train",
        {"targets": {"kind": "glove"}},
        [],
        {},
        {},
        "targets.glove_path is required",
    ),
    "glove file missing": (
        "train",
        {"targets": {"kind": "glove", "glove_path": "nope.txt"}},
        [],
        {},
        {},
        "nope.txt",
    ),
    "electrodes CSV missing": (
        "train",
        {"data": {"electrodes": "missing.csv"}},
        [],
        {},
        {},
        "missing.csv",
    ),
    "electrodes CSV empty": (
        "train",
        {"data": {"electrodes": "empty.csv"}},
        [],
        {},
        {"empty.csv": b""},
        "empty.csv",
    ),
    "electrodes CSV malformed": (
        "train",
        {"data": {"electrodes": "cols.csv"}},
        [],
        {},
        {"cols.csv": b"who,what\n1,2\n"},
        "cols.csv",
    ),
    "transcript missing": ("train", {}, [], {TRANSCRIPT: None}, {}, "transcript.tsv"),
    "transcript empty": ("train", {}, [], {TRANSCRIPT: b""}, {}, "transcript.tsv"),
    "transcript onset not numeric": (
        "build-features",
        {},
        [],
        {TRANSCRIPT: "broken"},
        {},
        "transcript.tsv",
    ),
    "features file missing": ("train", {}, [], {FEATURES: None}, {}, "features.hdf5"),
    "features file not HDF5": (
        "train",
        {},
        [],
        {FEATURES: b"not hdf5 at all"},
        {},
        "features.hdf5",
    ),
    "recording missing": (
        "train",
        {},
        [],
        {"derivatives/ecogprep/sub-01/ieeg/sub-01_task-podcast_desc-highgamma_ieeg.fif": None},
        {},
        "sub-01",
    ),
    "channels table missing": (
        "train",
        {},
        [],
        {"sub-01/ieeg/sub-01_task-podcast_channels.tsv": None},
        {},
        "channels.tsv",
    ),
    "checkpoint missing": (
        "train",
        {"preprocess": {"name": "foundation", "params": {"checkpoint": "gone.pt"}}},
        [],
        {},
        {},
        "gone.pt",
    ),
    "checkpoint not a state_dict": (
        "train",
        {
            "preprocess": {
                "name": "foundation",
                "params": {"module": "tiny_user_model:build", "state_dict": "junk.pt"},
            }
        },
        [],
        {},
        {"junk.pt": b"junk", "tiny_user_model.py": USER_MODEL},
        "junk.pt",
    ),
    "plugin missing": (
        "train",
        {"plugins": ["no_such_plugin_module"]},
        [],
        {},
        {},
        "no_such_plugin_module",
    ),
    "plugin broken": (
        "train",
        {"plugins": ["broken_plugin"]},
        [],
        {},
        {"broken_plugin.py": b"def oops(:\n"},
        "broken_plugin",
    ),
    "grid missing": ("sweep", {}, [], {}, {}, "grid file"),
    "grid not a mapping": ("sweep", {}, [], {}, {"grid.yml": b"- 1\n"}, "grid.yml"),
    "grid duplicate key": (
        "sweep",
        {},
        [],
        {},
        {"grid.yml": b"training.lr: [0.1]\ntraining.lr: [0.2]\n"},
        "twice",
    ),
    "results root is a file": (
        "train",
        {"output": {"results": "taken"}},
        [],
        {},
        {"taken": b"a file"},
        "output.results",
    ),
}


# Cases refused before any registry is loaded run in well under a second each; the others
# import the model stack (seconds per process) and are marked slow.
FAST = {
    "config missing",
    "config malformed YAML",
    "config not a mapping",
    "config not UTF-8",
    "config duplicate key",
    "config unknown key",
    "lr inf",
    "lr 0 by --set",
    "lane_chunk 0",
    "lane_batch -1",
    "subjects empty",
    "trial_name empty",
    "trial_name escapes",
    "override without =",
    "override bad type",
}


def run_case(name: str, standin: Path, base: Path):
    """Run one case through the CLI: (CompletedProcess, its work folder)."""
    command, body, overrides, replace, extra, _ = CASES[name]
    work = base / name.replace(" ", "-")
    work.mkdir()
    root = standin
    if replace:
        replace = {
            k: broken_transcript(standin) if v == "broken" else v for k, v in replace.items()
        }
        root = mirror(standin, work / "ds", replace)
    for file_name, data in extra.items():
        (work / file_name).write_bytes(data)
    cfg_path = work / "exp.yml"
    if isinstance(body, dict):
        raw = yaml.safe_load(yaml.safe_dump(BASE))
        raw["data"]["root"] = str(root)
        raw["output"] = {
            "stores": str(work / "out" / "stores"),
            "results": str(work / "out" / "results"),
        }
        for section, values in body.items():
            if isinstance(values, dict) and isinstance(raw.get(section), dict):
                raw[section].update(values)
            else:
                raw[section] = values
        cfg_path.write_text(yaml.safe_dump(raw))
    elif isinstance(body, (str, bytes)):
        cfg_path.write_bytes(body.encode() if isinstance(body, str) else body)
    args = [PODBENCH, command, "--config", str(cfg_path)]
    args += [a for o in overrides for a in ("--set", o)]
    if command == "sweep":
        args += ["--grid", str(work / "grid.yml")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        args, cwd=work, capture_output=True, text=True, env=env, timeout=300
    ), work


@pytest.fixture(scope="module")
def outcomes(standin, tmp_path_factory):
    """name -> outcome; the first case asked for of a group (fast, slow) runs its whole group
    concurrently."""
    base = tmp_path_factory.mktemp("bad-input")
    done: dict = {}

    def get(name: str):
        if name not in done:
            group = [n for n in CASES if (n in FAST) == (name in FAST)]
            with ThreadPoolExecutor(max_workers=4) as pool:
                done.update(zip(group, pool.map(lambda n: run_case(n, standin, base), group)))
        return done[name]

    return get


def test_the_table_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in CASES]
)
def test_bad_input_is_one_line_exit_2_nothing_written(outcomes, name):
    result, work = outcomes(name)
    fragment = CASES[name][-1]
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    written = [p for p in (work / "out").rglob("*")] if (work / "out").exists() else []
    assert not written, written
    for default_root in ("stores", "results"):  # relative defaults of an empty config
        assert not (work / default_root).exists()
    shutil.rmtree(work / "ds", ignore_errors=True)


# Values refused before any work, in-process (click's CliRunner): the config's own ranges, then
# the checks before computing. name: (config changes, --set overrides, fragment of the line)
VALUES = {
    "ridge alphas -1": (
        {"model": {"name": "ridge", "params": {"alphas": [-1.0]}}},
        [],
        "model.params.alphas[0] = -1.0: expected a value > 0",
    ),
    "ridge alphas empty": (
        {"model": {"name": "ridge", "params": {"alphas": []}}},
        [],
        "model.params.alphas = []: expected a non-empty value",
    ),
    "linear alphas 0": (
        {"model": {"name": "linear", "params": {"alphas": [1.0, 0]}}},
        [],
        "model.params.alphas[1] = 0.0: expected a value > 0",
    ),
    "mlp hidden -4": (
        {"model": {"name": "mlp", "params": {"hidden": [-4]}}},
        [],
        "model.params.hidden[0] = -4: expected a value >= 1",
    ),
    "permutation_seed -1 shuffled": (
        {"training": {"permutation_seed": -1, "shuffle_targets": True}},
        [],
        "training.permutation_seed = -1: expected a value >= 0",
    ),
    "permutation_seed -1 by --set": (
        {},
        ["training.permutation_seed=-1"],
        "--set training.permutation_seed=-1",
    ),
    "window_rms 0": (
        {"preprocess": {"name": "window_rms", "params": {"num_average_samples": 0}}},
        [],
        "preprocess.params.num_average_samples = 0: expected a value >= 1",
    ),
    "num_average_samples 1000": (
        {"preprocess": {"params": {"num_average_samples": 1000}}},
        [],
        "num_average_samples = 1000: larger than a lag window (320 samples",
    ),
    "hf model missing": (
        {"targets": {"kind": "hf", "hf_model": "/no/such"}},
        [],
        "targets.hf_model = '/no/such': no such file or directory",
    ),
    "hf model not a model": (
        {"targets": {"kind": "hf", "hf_model": "."}},
        [],
        "targets.hf_model = '.': expected a local Hugging Face model folder",
    ),
}


def test_bad_values_are_refused_before_any_work(standin, tmp_path, monkeypatch):
    """Each value: exit 2, one line naming it, and empty store and results roots."""
    from click.testing import CliRunner

    from podbench.cli import main

    monkeypatch.chdir(tmp_path)
    for name, (changes, overrides, fragment) in VALUES.items():
        raw = yaml.safe_load(yaml.safe_dump(BASE))
        raw["data"]["root"] = str(standin)
        raw["data"]["electrodes"] = "^G[0-9]+$"
        raw["output"] = {"stores": str(tmp_path / "stores"), "results": str(tmp_path / "results")}
        for section, values in changes.items():
            raw.setdefault(section, {}).update(values)
        (tmp_path / "exp.yml").write_text(yaml.safe_dump(raw))
        args = [
            "build-features",
            "--config",
            "exp.yml",
            *(a for o in overrides for a in ("--set", o)),
        ]
        result = CliRunner().invoke(main, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, (name, result.output[-1500:])
        assert fragment in lines[0], (name, lines[0])
        for root in ("stores", "results"):
            assert not (tmp_path / root).exists() or not any((tmp_path / root).iterdir()), name
