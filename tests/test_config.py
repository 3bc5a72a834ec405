"""Strict configs, --set overrides, registries, plugins, CLI usage errors and stage keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from podbench import config, registry
from podbench.errors import ConfigError, DataError
from podbench.features.keys import stage_keys
from podbench.tasks.base import config_value

from .helpers import REPO, make_config

PODBENCH = str(Path(sys.executable).parent / "podbench")


def run_cli(*args, cwd):
    return subprocess.run([PODBENCH, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (
            {"data": {"window_widht": 0.5}},
            "unknown key 'data.window_widht'; did you mean 'data.window_width'",
        ),
        ({"data": {"window_width": "wide"}}, "data.window_width = 'wide': expected a number"),
        ({"data": {"window_width": 0}}, "data.window_width = 0.0: expected a value > 0"),
        ({"training": {"batch_size": 3.5}}, "training.batch_size = 3.5: expected an integer"),
        (
            {"training": {"fold_type": "random"}},
            "training.fold_type = 'random': expected 'sequential' | 'zero_shot'",
        ),
        (
            {"model": {"name": "pitomm"}},
            "model.name = 'pitomm': unknown model; registered: "
            "linear, llm_prefix, mlp, pitom, ridge, time_pool",
        ),
        (
            {"model": {"params": {"droput": 0.1}}},
            "unknown key 'model.params.droput'; did you mean 'model.params.dropout'",
        ),
        ({"preprocess": {"name": "fft"}}, "preprocess.name = 'fft': unknown preprocessor"),
        ({"targets": {"kind": "bert"}}, "targets.kind = 'bert': unknown target source"),
        ({"task": "syntax"}, "task = 'syntax': unknown task"),
        ({"data": {"lags": {"min": 100, "max": 0}}}, "expected max > min"),
        ({"tarets": {}}, "unknown key 'tarets'; did you mean 'targets'"),
    ],
)
def test_invalid_configs_name_the_path_and_value(raw, fragment):
    with pytest.raises(ConfigError) as err:
        config.from_dict(raw, "exp.yml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("exp.yml: ")


@pytest.mark.parametrize(
    "text, overrides, fragment",
    [
        ("training:\n  lr: [1,\n", [], "exp.yml:3:1: not valid YAML (expected the node content"),
        ("training:\n  lr: 1\n  lr: 2\n", [], "exp.yml: key 'lr' appears twice (lines 2 and 3)"),
        (b"trial_name: caf\xe9\n", [], "exp.yml: not UTF-8 text (byte 0xe9 at offset 15)"),
        (
            "{}",
            ["model.params={hidden: [1], hidden: [2]}"],
            "--set model.params={hidden: [1], hidden: [2]}: key 'hidden' appears twice",
        ),
        ("{}", ["training.lr=[1,"], "--set training.lr=[1, (column 4): not valid YAML"),
    ],
)
def test_yaml_problems_are_one_line_naming_file_line_and_column(
    tmp_path, text, overrides, fragment
):
    path = tmp_path / "exp.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as err:
        config.load(path, overrides)
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_every_shipped_yaml_reads_the_same_on_both_parsers():
    """parse_yaml reads with libyaml's parser where PyYAML has it, and only a document that
    one refuses with the pure-Python one (its marks point precisely): every shipped YAML file
    (configs, suites, grids, the package's own) reads the same on both."""
    assert yaml.__with_libyaml__  # PyYAML's wheels: the fast path is the one tested
    shipped = sorted(
        p for folder in ("configs", "podbench") for p in (REPO / folder).rglob("*.y*ml")
    )
    assert len(shipped) >= 10
    for path in shipped:
        text = path.read_text()
        assert config.parse_yaml(text, str(path)) == yaml.load(text, Loader=config.StrictLoader)


def test_defaults_are_the_reference_settings():
    cfg = config.from_dict({})
    assert cfg.data.window_width == 0.625
    assert cfg.data.lags.values() == list(range(-1000, 1000, 200))
    assert (cfg.targets.layer, cfg.targets.pca_dim, cfg.targets.min_train_freq) == (24, 50, 5)
    assert (cfg.training.batch_size, cfg.training.lr, cfg.training.weight_decay) == (32, 1e-3, 1e-4)
    assert (cfg.training.patience, cfg.training.n_folds, cfg.model.members) == (10, 5, 10)
    assert cfg.model.params["filters"] == 128 and cfg.model.params["dropout"] == 0.2


def test_overrides_are_yaml_typed(tmp_path):
    path = tmp_path / "exp.yml"
    path.write_text("training:\n  lr: 1e-3\n")  # YAML 1.1 reads this as a string; still a float
    cfg = config.load(
        path,
        [
            "training.lr=3e-4",
            "data.subjects=[1, 3]",
            "training.shuffle_targets=true",
            "model.params.filters=64",
        ],
    )
    assert cfg.training.lr == 3e-4 and cfg.data.subjects == [1, 3]
    assert cfg.training.shuffle_targets is True and cfg.model.params["filters"] == 64
    with pytest.raises(
        ConfigError, match="--set training.lr: expected PATH=VALUE|expected PATH=VALUE"
    ):
        config.load(path, ["training.lr"])
    with pytest.raises(ConfigError, match="training.patiense"):
        config.load(path, ["training.patiense=3"])


def test_resolved_config_round_trips_through_safe_load():
    cfg = config.from_dict({"data": {"subjects": [1, 2]}, "training": {"lr": 3e-4}})
    again = config.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()


def test_plugin_registers_a_model_without_touching_podbench(tmp_path, monkeypatch):
    (tmp_path / "my_decoder.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        from podbench.registry import register_model
        from podbench.models.mlp import Mlp

        @dataclass
        class Params:
            width: int = 8

        @register_model("tiny_mlp", params=Params, input_dims=None)
        def tiny_mlp(params, *, input_shape, output_dim, head, rngs):
            p = {"hidden": [params["width"]], "dropout": 0.0, "final_norm": False,
                 "output_activation": "none", "init": "torch"}
            import math
            return Mlp(math.prod(input_shape), output_dim, p, head, rngs)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = config.from_dict(
        {"plugins": ["my_decoder"], "model": {"name": "tiny_mlp", "params": {"width": 4}}}
    )
    assert cfg.model.params == {"width": 4}
    assert "tiny_mlp" in registry.models.names()
    with pytest.raises(ConfigError, match=r"plugins\[0\] = 'no_such_module'"):
        config.from_dict({"plugins": ["no_such_module"]})


def test_cli_config_errors_exit_2_and_write_nothing(tmp_path, standin):
    work = tmp_path / "work"
    cases = {
        "misspelt.yml": ("data:\n  window_widht: 0.5\n", "data.window_widht"),
        "type.yml": ("training:\n  epochs: many\n", "training.epochs = 'many'"),
        "model.yml": ("model:\n  name: transformer9000\n", "unknown model"),
        "subject.yml": (f"data:\n  root: {standin}\n  subjects: [1, 12]\n", "subject 12"),
    }
    for name, (body, fragment) in cases.items():
        path = tmp_path / name
        path.write_text(body + f"output:\n  stores: {work}/stores\n  results: {work}/results\n")
        for command in ("build-features", "train"):
            result = run_cli(command, "--config", str(path), cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert fragment in result.stderr
    bad_set = run_cli(
        "train", "--config", str(tmp_path / "type.yml"), "--set", "nonsense", cwd=tmp_path
    )
    assert bad_set.returncode == 2 and "PATH=VALUE" in bad_set.stderr
    assert not work.exists()
    assert run_cli("train", cwd=tmp_path).returncode == 2  # missing --config: usage error


def test_every_command_has_help(tmp_path):
    for args in (
        [],
        ["synth"],
        ["demo"],
        ["build-features"],
        ["train"],
        ["stores"],
        ["stores", "ls"],
        ["stores", "info"],
        ["stores", "verify"],
        ["stores", "gc"],
    ):
        result = run_cli(*args, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout


def test_stage_keys_change_exactly_with_their_inputs(standin, tmp_path):
    base = make_config(standin, tmp_path)
    keys = stage_keys(base)
    assert len(set(keys.values())) == 4

    def changed(**overrides):
        new = stage_keys(base.replace(overrides))
        return {stage for stage in keys if new[stage] != keys[stage]}

    assert changed(
        **{
            "model.params.filters": 64,
            "training.lr": 3e-4,
            "model.members": 3,
            "training.lane_chunk": 8,
        }
    ) == {"training"}
    assert changed(**{"training.checkpoints": False}) == set()  # an output detail
    assert changed(**{"data.window_width": 0.5}) == {"epochs", "latents", "training"}
    assert changed(**{"targets.layer": 12}) == {"targets", "training"}
    assert changed(**{"preprocess.params.num_average_samples": 16}) == {"latents", "training"}
    assert changed(**{"data.lags.step": 100}) == {"epochs", "latents", "training"}
    # glove ignores targets.layer: only the fields a source reads enter its key
    (tmp_path / "g.txt").write_text("the 0.1 0.2\n")
    glove = base.replace({"targets.kind": "glove", "targets.glove_path": str(tmp_path / "g.txt")})
    assert (
        stage_keys(glove)["targets"] == stage_keys(glove.replace({"targets.layer": 3}))["targets"]
    )
    # fold-fitted PCA depends on the folds and the epochs' word set
    train_pca = base.replace({"targets.pca_fit": "train"})
    assert (
        stage_keys(train_pca)["targets"]
        != stage_keys(train_pca.replace({"training.n_folds": 4}))["targets"]
    )
    assert (
        stage_keys(train_pca)["targets"]
        != stage_keys(train_pca.replace({"data.window_width": 0.5}))["targets"]
    )


def test_every_config_field_declares_where_it_is_hashed():
    """A new config field cannot be keyed or left out of the keys silently: each declares its
    marker (opt(..., keyed=Keyed(...))), and a marker's `when` names a boolean field beside it."""
    rows = config.keyed_fields()
    assert len(rows) > 60
    unmarked = [path for path, keyed in rows if keyed is None]
    assert not unmarked, f"config fields without a keyed= marker: {unmarked}"
    paths = dict(rows)
    for path, keyed in rows:
        if keyed is not None and keyed.when:
            sibling = f"{path.rsplit('.', 1)[0]}.{keyed.when}"
            assert paths[sibling] is not None and isinstance(
                config_value(config.Config(), sibling), bool
            ), f"{path}: when={keyed.when!r} is not a boolean field beside it"


def _other_value(value, hint, meta):
    """A valid value of a scalar config field other than `value` (None: not a scalar this
    test varies: names, paths, mappings, lists)."""
    import typing

    options = [o for o in typing.get_args(hint) if o is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return next((o for o in options if o != value), None)
    if len(options) == 1 and typing.get_args(hint)[-1] is type(None):  # int | None
        hint = options[0]
    if hint is bool:
        return not value
    if hint is int:
        if value is None:
            return 7
        return value - 1 if meta.get("le") is not None and value + 1 > meta["le"] else value + 1
    if hint is float:
        return value * 0.8
    if hint is str:  # a folder name (a registry name that is not one is refused, skipped)
        return None if value is None else value + "2"
    return 4 if value == "auto" else None  # lanes per chunk or per device


def test_keys_follow_each_fields_marker(standin, tmp_path):
    """Every scalar config field, changed alone, changes exactly what its marker says: the
    key of its stage (a training field no feature store's key), no stage key when it has no
    stage, the program signature when it is shared by a program's points and never when it
    is per lane or per point (podbench.config.Keyed)."""
    import dataclasses
    import typing

    from podbench.features.pretrain import pretrain_dir
    from podbench.train.run import program_signature

    def keys_of(cfg):
        return {**stage_keys(cfg), "pretrain": pretrain_dir(cfg).name}

    fields = {}

    def walk(section, prefix):
        hints = typing.get_type_hints(section)
        for f in dataclasses.fields(section):
            path = prefix + f.name
            options = (hints[f.name], *typing.get_args(hints[f.name]))
            for option in (o for o in options if dataclasses.is_dataclass(o)):
                walk(option, path + ".")
            if f.metadata.get("keyed"):
                fields[path] = (hints[f.name], f.metadata)

    walk(config.Config, "")
    lags = {"data.lags": {"min": 0, "max": 400, "step": 200}}
    # a null-target seed of their own keeps training.seed per lane when the targets shuffle
    plain = make_config(standin, tmp_path).replace({**lags, "training.permutation_seed": 0})
    selected = plain.replace({"data.electrodes": {"select": "encoding", "fit": "all"}})
    checked = []
    for path, (hint, meta) in fields.items():
        keyed = meta["keyed"]
        base = selected if path.startswith("data.electrodes.") else plain
        sources = [
            name
            for name in registry.target_sources.names()
            if path in registry.target_sources.spec(name).fields
        ]
        new = _other_value(config_value(base, path), hint, meta)
        if new is None:
            continue
        try:
            if path.startswith("targets.") and sources and base.targets.kind not in sources:
                base = base.replace({"targets.kind": sources[0]})
            if keyed.when:
                base = base.replace({f"{path.rsplit('.', 1)[0]}.{keyed.when}": True})
            changed = base.replace({path: new})
            before, after = keys_of(base), keys_of(changed)
        except (ConfigError, DataError):  # a value this stand-in cannot take (most it can)
            continue
        moved = {stage for stage in before if before[stage] != after[stage]}
        if keyed.stage is None:
            assert not moved, f"{path} has no stage, yet changes the keys of {moved}"
        elif keyed.stage == "training":
            assert moved == {"training"}, f"{path}: training, yet changes {moved}"
        else:
            assert keyed.stage in moved, f"{path}: {keyed.stage}, yet changes {moved}"
        same = program_signature(base) == program_signature(changed)
        if keyed.program == "shared":
            assert not same, f"{path} is shared by a program's points, not in its signature"
        elif keyed.program in ("lane", "point"):
            assert same, f"{path} is per {keyed.program}, yet in the program signature"
        checked.append(path)
    assert len(checked) >= 50, checked


@pytest.mark.parametrize(
    "sets, digest",
    [
        ({}, "9f0d7332c7c40e7f"),
        (
            {
                "training.shuffle_targets": True,
                "training.permutation_seed": 3,
                "training.lane_chunk": 8,
                "training.checkpoints": False,
            },
            "4a77f95b7cf5fd39",
        ),
        ({"model.name": "ridge", "model.params": {}, "training.lr": 0.5}, "8512852c86761421"),
        (
            {
                "data.electrodes": {"select": "encoding", "fit": "all"},
                "targets.pca_dim": 20,
                "trial_name": "x",
            },
            "61927d8c3cc58fa3",
        ),
    ],
    ids=["defaults", "null points", "closed form", "selection"],
)
def test_program_signatures_are_those_before_the_field_markers(sets, digest):
    """Deriving the signature from the fields' markers changed none (digests of the signatures
    the hand-kept lists gave): points still pack as before."""
    import hashlib

    from podbench.train.run import program_signature

    raw: dict = {"data": {"root": "nowhere"}}
    for path, value in sets.items():
        config.set_path(raw, path, value)
    signature = program_signature(config.from_dict(raw))
    assert hashlib.sha256(signature.encode()).hexdigest()[:16] == digest


def test_suite_ids_are_those_before_the_field_markers(tmp_path):
    """A suite's id (its results folder) derived from the fields' markers is the one the
    hand-kept list gave, so a suite run before finds its results."""
    from podbench.experiments.benchmark import load_suite

    (tmp_path / "a.yml").write_text(
        yaml.safe_dump({"data": {"root": "nowhere"}, "model": {"members": 2}})
    )
    cells = [
        {"name": "a", "config": "a.yml"},
        {
            "name": "b",
            "config": "a.yml",
            "set": {"model.name": "ridge", "model.params": {}},
            "significance": {"permutations": 10, "refit": 2},
        },
    ]
    suite = {"name": "s", "version": 1, "defaults": {"set": {"training.epochs": 3}}}
    (tmp_path / "s.yml").write_text(yaml.safe_dump({**suite, "cells": cells}))
    assert load_suite(tmp_path / "s.yml", ["output.results=elsewhere"]).id == "ef54d1f21d76"


def test_docs_document_every_config_field():
    """The configuration reference (docs/configuration.md) is generated from describe_fields
    while the site builds (docs/_ext/podbench_docs.py); every field has its doc text."""
    repo = Path(__file__).resolve().parents[1]
    assert "```{podbench-config}" in (repo / "docs" / "configuration.md").read_text()
    undocumented = [path for path, _, doc in config.describe_fields() if not doc]
    assert not undocumented, f"config fields without doc=: {undocumented}"


def shipped_configs() -> list[Path]:
    """The configs the repository ships (tracked by git; a plugin config a user adds to
    configs/ by following the documentation is not policed), or every one without git."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        names = subprocess.run(
            ["git", "ls-files", "configs"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return sorted((repo / "configs").rglob("*.yml"))
    return sorted(repo / n for n in names if n.endswith(".yml")) or sorted(
        (repo / "configs").rglob("*.yml")
    )


@pytest.mark.parametrize(
    "path", [p for p in shipped_configs() if "suites" not in p.parts], ids=lambda p: p.name
)  # suites: tests/test_benchmark.py
def test_shipped_configs_are_valid(path):
    config.load(path)


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_configs_say_how_long_they_take(path):
    header = "".join(
        line for line in path.read_text().splitlines(keepends=True) if line.startswith("#")
    )
    assert "Time:" in header and "2 CPU cores" in header and "GPU: not measured" in header


def test_electrode_csv_paths_are_relative_to_the_data_root(standin, tmp_path, monkeypatch):
    import shutil

    from podbench.data.dataset import Dataset
    from podbench.data.recordings import resolve_electrodes
    from podbench.data.synth import ELECTRODE_CSV, responsive_electrode_csv
    from podbench.errors import DataError

    moved = tmp_path / "moved"
    shutil.copytree(standin, moved)
    monkeypatch.chdir(tmp_path)
    stores = tmp_path / "stores"
    before = sorted(p.relative_to(moved) for p in moved.rglob("*"))
    csv = resolve_electrodes(Dataset(moved), "responsive", stores)  # the ground truth's
    assert Path(csv).parent == (stores / "electrodes").resolve()  # written into the stores,
    assert sorted(p.relative_to(moved) for p in moved.rglob("*")) == before  # not the data
    assert resolve_electrodes(Dataset(moved), "responsive", stores) == csv
    responsive_electrode_csv(moved)  # the user's own table beside the ground truth
    assert Path(csv).read_text() == (moved / ELECTRODE_CSV).read_text()
    assert resolve_electrodes(Dataset(moved), str(ELECTRODE_CSV), stores) == str(
        (moved / ELECTRODE_CSV).resolve()
    )  # relative to data.root
    (tmp_path / "mine.csv").write_text(Path(csv).read_text())
    assert resolve_electrodes(Dataset(moved), "mine.csv", stores) == str(tmp_path / "mine.csv")
    with pytest.raises(DataError, match="nope.csv.*looked for"):
        resolve_electrodes(Dataset(moved), "nope.csv", stores)
    (moved / "derivatives/podbench-synth/ground_truth.json").unlink()  # like the real dataset
    with pytest.raises(DataError, match="'responsive'.*ground_truth.json"):
        resolve_electrodes(Dataset(moved), "responsive", stores)
    # --set data.root alone moves a shipped config: its keys follow the data, not the folder
    shipped = Path(__file__).resolve().parents[1] / "configs/tasks/content_word.yml"
    sets = [f"data.root={standin}", f"output.stores={tmp_path}/stores"]
    assert stage_keys(config.load(shipped, sets))["epochs"]


def test_command_line_data_and_output_reach_a_named_pretrain_config(standin, tmp_path):
    from podbench.features.foundation import checkpoint_path

    pretrain = tmp_path / "pretrain.yml"
    pretrain.write_text("trial_name: pt\ndata:\n  root: /nonexistent/standin\n")
    with pytest.raises(ConfigError, match="/nonexistent/standin"):
        checkpoint_path(str(pretrain))
    sets = (
        f"data.root={standin}",
        f"output.results={tmp_path}/res",
        f"output.stores={tmp_path}/stores",
    )
    with pytest.raises(
        ConfigError, match=f"{tmp_path}/stores/pretrain/.*--set data.root={standin}"
    ):
        checkpoint_path(str(pretrain), sets)
    decoder = tmp_path / "decoder.yml"
    decoder.write_text(f"preprocess:\n  name: foundation\n  params: {{checkpoint: {pretrain}}}\n")
    cfg = config.load(decoder, [*sets, "training.lr=3e-4"])
    assert cfg.overrides == (*sets, "training.lr=3e-4")
    with pytest.raises(ConfigError, match=f"{tmp_path}/stores/pretrain/"):
        stage_keys(cfg)  # the decoder's --set data.root reached the pretrain config


def test_nothing_follows_a_refusal_on_stderr(tmp_path):
    """Work a library left pending at a refusal (an asyncio task, as zarr's reads leave) is not
    printed after the one error line at exit."""
    script = tmp_path / "refuse.py"
    script.write_text(
        textwrap.dedent("""
        import asyncio
        from podbench.cli import reports_errors
        from podbench.errors import ConfigError

        async def pending():
            await asyncio.sleep(3600)

        @reports_errors
        def refuse():
            loop = asyncio.new_event_loop()
            refuse.task = loop.create_task(pending())
            loop.run_until_complete(asyncio.sleep(0))
            raise ConfigError("refused")

        refuse()
    """)
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == "error: refused\n", result.stderr
