"""The benchmark: suites, null targets as lanes, permutation p/q-values, cell.json against its
schema, the leaderboard, resuming after SIGKILL, and the HTML report in a real browser."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from cli import main
from podbench.errors import ConfigError
from podbench.experiments.benchmark import benchmark, load_suite
from podbench.experiments.published import published_for
from podbench.experiments.records import SCHEMA_PATH
from podbench.experiments.significance import (
    bh_qvalues,
    paired_by_lag,
    paired_comparison,
    permutation_pvalues,
)
from podbench.tasks.folds import make_folds
from podbench.tasks.nulls import null_targets
from podbench.train.lanes import lane_point
from podbench.train.run import programs_of

from .helpers import MLP, RIDGE, small_defaults, write_suite

REPO = Path(__file__).resolve().parent.parent
QUIET = dict(log=lambda s: None)
PLANTED_MS = 250


# --------------------------------------------------------------------------- statistics


def test_null_targets_move_only_training_rows():
    labels = np.array([f"w{i % 7}" for i in range(60)])
    folds = make_folds(labels, 3, "sequential", 0.25, 0)
    y = np.arange(60, dtype=np.float32).reshape(1, 60, 1)
    for mode in ("words", "circular"):
        out = null_targets(y, folds, mode, seed=5)
        assert out.shape == (3, 60, 1)
        for fold in folds:
            moved = out[fold.number - 1, :, 0]
            np.testing.assert_array_equal(moved[fold.test], y[0, fold.test, 0])
            rows = np.sort(np.concatenate([fold.train, fold.val]))
            assert sorted(moved[rows]) == sorted(y[0, rows, 0])  # the same targets, moved
            assert np.mean(moved[rows] != y[0, rows, 0]) > 0.5
        if mode == "circular":  # neighbours stay neighbours (one break where the roll wraps)
            fold = folds[0]
            rows = np.sort(np.concatenate([fold.train, fold.val]))
            steps = np.diff(out[0, rows, 0])
            assert np.sum(steps != 1) <= 2
    assert not np.array_equal(
        null_targets(y, folds, "words", 1), null_targets(y, folds, "words", 2)
    )


def test_pvalues_and_benjamini_hochberg():
    observed = np.array([0.9, 0.5, 0.55])
    null = np.array([[0.5, 0.6, 0.5], [0.4, 0.4, 0.56], [0.45, 0.5, 0.5], [0.5, 0.3, 0.6]])
    p = permutation_pvalues(observed, null)
    np.testing.assert_allclose(p, [1 / 5, 3 / 5, 3 / 5])
    pooled = permutation_pvalues(observed, null, pooled=True)
    np.testing.assert_allclose(pooled, [1 / 13, 9 / 13, 4 / 13])
    np.testing.assert_allclose(
        bh_qvalues([0.01, 0.04, 0.03, 0.5]), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5]
    )


def test_null_points_pack_with_the_real_cell_and_keep_its_lane_seeds(standin, tmp_path):
    path = write_suite(
        tmp_path / "s.yml",
        [{"name": "a", "config": str(REPO / "configs/demo.yml")}],
        {
            **small_defaults(standin, tmp_path, None, {"min": 0, "max": 400, "step": 200}),
            "significance": {"refit": 4, "seed": 10},
        },
    )
    cell = load_suite(path).cells[0]
    assert len(cell.points) == 5 and len(programs_of(cell.points)) == 1
    assert {lane_point(c) for c in cell.points} == {lane_point(cell.config)}
    assert [c.training.permutation_seed for c in cell.nulls] == [10, 11, 12, 13]
    assert all(c.training.shuffle_targets for c in cell.nulls)


def _paired_record(name, val, test, mode="max"):
    return {
        "cell": name,
        "headline": "test_x",
        "headline_mode": mode,
        "folds": [1, 2, 3],
        "per_lag": [
            {"lag": lag, "val": list(v), "test": list(t)} for lag, v, t in zip((0, 200), val, test)
        ],
    }


def test_paired_comparison_at_the_lag_chosen_on_validation():
    from scipy import stats

    # validation favours lag 200 (mean of both cells), test differs most at lag 0: the
    # comparison is made at 200, never at the lag where test looks best
    val_a, val_b = [[0.5, 0.5, 0.5], [0.7, 0.8, 0.75]], [[0.5, 0.52, 0.5], [0.6, 0.62, 0.6]]
    a_test = np.array([[0.9, 0.95, 0.9], [0.65, 0.7, 0.68]])
    b_test = np.array([[0.5, 0.52, 0.5], [0.6, 0.61, 0.66]])
    a, b = _paired_record("a", val_a, a_test), _paired_record("b", val_b, b_test)
    result = paired_comparison(a, b)
    diff = a_test[1] - b_test[1]
    assert result.lag == 200 and result.n_folds == 3 and result.a_better == 3
    assert result.difference == pytest.approx(diff.mean())
    assert result.p_value == pytest.approx(stats.ttest_rel(a_test[1], b_test[1]).pvalue)
    assert result.ci_low <= result.difference <= result.ci_high
    assert diff.min() - 1e-12 <= result.ci_low and result.ci_high <= diff.max() + 1e-12
    # lower is better (perplexity): the shared lag is the lowest validation mean
    low = paired_comparison(
        _paired_record("a", val_a, a_test, "min"), _paired_record("b", val_b, b_test, "min")
    )
    assert low.lag == 0
    by_lag = paired_by_lag(a, b)
    assert [r["lag"] for r in by_lag] == [0, 200]
    assert [r["q_value"] for r in by_lag] == pytest.approx(
        list(bh_qvalues([r["p_value"] for r in by_lag]))
    )
    with pytest.raises(ConfigError, match="different headline"):
        paired_comparison(a, {**b, "headline": "test_y"})


# --------------------------------------------------------------------------- suite files


@pytest.mark.parametrize(
    "suite, message",
    [
        ({"version": 1, "cells": []}, "missing key 'name'"),
        ({"name": "x y", "version": 1, "cells": [{}]}, "name = 'x y'"),
        (
            {"name": "x", "version": 1, "cells": [{"name": "a"}]},
            r"cells\[0\]: missing key 'config'",
        ),
        (
            {"name": "x", "version": 1, "cells": [{"name": "a", "config": "nope.yml"}]},
            "does not exist",
        ),
        ({"name": "x", "version": 1, "cellz": []}, "unknown key 'cellz'; did you mean 'cells'"),
        ({"name": "..", "version": 1, "cells": [{}]}, r"name = '\.\.': expected one folder name"),
        ({"name": ".", "version": 1, "cells": [{}]}, r"name = '\.': expected one folder name"),
        (
            {"name": "x", "version": 1, "cells": [{"name": "..", "config": "DEMO"}]},
            r"cells\[0\].name = '\.\.'",
        ),
        # raw text: what a mapping cannot hold
        (
            "name: x\nversion: 1\nname: y\ncells: []\n",
            r"key 'name' appears twice \(lines 1 and 3\)",
        ),
        (
            "name: x\nversion: 1\ncells:\n- name: a\n  config: DEMO\n  set: {model.members: 1}\n"
            "  set: {model.members: 2}\n",
            r"key 'set' appears twice \(lines 6 and 7\)",
        ),
        (
            "name: x\nversion: 1\ndefaults:\n  set:\n    model.members: 1\n    model.members: 2\n"
            "cells: []\n",
            r"key 'model.members' appears twice \(lines 5 and 6\)",
        ),
        ("name: x\nversion: 1\ncells: [\n", r"bad.yml:4:1: not valid YAML"),
        (b"name: caf\xe9\nversion: 1\ncells: []\n", "not UTF-8 text"),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "significance": {"permutations": -1}}],
            },
            "permutations = -1",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "significance": {"mode": "roll"}}],
            },
            "mode = 'roll'",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "significance": {"permutations": 10**8}}],
            },
            "permutations = 100000000: expected an integer between 0 and 100,000",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "significance": {"seed": -5}}],
            },
            "seed = -5",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [
                    {"name": "a", "config": "DEMO", "significance": {"refit": 2, "mode": "blocks"}}
                ],
            },
            "retrained nulls",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "needs": ["training.lrr"]}],
            },
            "not a field",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "LLM", "significance": {"permutations": 10}}],
            },
            "no score-level null",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "set": {"training.lrr": 1}}],
            },
            "training.lrr",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO", "subjects": [0.5]}],
            },
            r"subjects\[0\] = 0.5",
        ),
        (
            {
                "name": "x",
                "version": 1,
                "cells": [{"name": "a", "config": "DEMO"}, {"name": "a", "config": "DEMO"}],
            },
            "appears twice",
        ),
    ],
)
def test_suite_errors_name_the_file_and_key(tmp_path, suite, message):
    """One line naming the file, exit 2, nothing written (a dict is dumped; text and bytes are
    written as they are)."""
    demo = str(REPO / "configs/demo.yml")
    llm = str(REPO / "configs/controls/llm_decoding_no_brain.yml")
    if isinstance(suite, bytes):
        text = suite
    else:
        text = (
            (suite if isinstance(suite, str) else yaml.safe_dump(suite))
            .replace("DEMO", demo)
            .replace("LLM", llm)
        )
        text = text.encode()
    path = tmp_path / "bad.yml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(path)
    result = CliRunner().invoke(main, ["benchmark", "--suite", str(path)])
    assert result.exit_code == 2 and "bad.yml" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "results").exists()


def test_cell_scoped_overrides_and_needs(standin, tmp_path):
    cells = [
        {"name": "glove_a", "config": str(REPO / "configs/demo.yml")},
        {
            "name": "other",
            "config": str(REPO / "configs/demo.yml"),
            "needs": ["data.root", "task_params.lm_dir"],
        },
    ]
    path = write_suite(
        tmp_path / "s.yml",
        cells,
        small_defaults(standin, tmp_path, None, {"min": 0, "max": 400, "step": 200}),
    )
    with pytest.raises(ConfigError, match="not a field"):  # demo's task has no lm_dir
        load_suite(path)
    cells[1]["needs"] = ["data.root", "output.results"]
    write_suite(
        path, cells, small_defaults(standin, tmp_path, None, {"min": 0, "max": 400, "step": 200})
    )
    suite = load_suite(path, ["glove_*:training.lr=0.5", "training.epochs=3"])
    assert [c.id for c in suite.skipped] == ["other"]  # output.results does not exist yet
    assert "output.results" in suite.skipped[0].missing
    (glove,) = suite.cells
    assert glove.config.training.lr == 0.5 and glove.config.training.epochs == 3
    assert suite.skipped[0].config.training.lr != 0.5
    with pytest.raises(ConfigError, match="no cell of .* is named like 'gpt_\\*'"):
        load_suite(path, ["gpt_*:training.lr=0.5"])


def test_shipped_suites_resolve():
    quick = load_suite(REPO / "configs/suites/quick.yml")
    reference = load_suite(REPO / "configs/suites/reference.yml")
    assert quick.name == "quick" and reference.name == "reference"
    for suite in (quick, reference):
        assert all(
            c.significance.permutations == 1000 and c.significance.null == "score" and c.nulls == []
            for c in suite.cells
        )
    assert {c.significance.permutations for c in reference.skipped} == {0, 1000}
    tasks = {c.config.task for c in reference.cells}
    assert tasks == {
        "word_embedding",
        "whisper_embedding",
        "content_word",
        "part_of_speech",
        "surprisal",
        "surprisal_class",
        "sentence_onset",
        "loudness",
        "iu_boundary",
    }
    # the LLM cells need a local GPT-2 (models/gpt2, absent here): skipped, saying why
    assert [(c.id, c.missing) for c in reference.skipped] == [
        (name, "task_params.lm_dir = 'models/gpt2' does not exist")
        for name in (
            "llm_embedding_pretraining_pitom",
            "llm_decoding_pitom",
            "llm_decoding_no_brain",
        )
    ]
    kinds = {c.config.targets.kind for c in reference.cells if c.config.task == "word_embedding"}
    assert kinds == {"gpt2", "glove", "arbitrary"}
    assert {c.config.model.name for c in reference.cells} == {
        "pitom",
        "ridge",
        "linear",
        "time_pool",
    }
    linear = {c.config.task for c in reference.cells if c.config.model.name == "linear"}
    assert linear == tasks  # every task has its linear baseline


def test_reference_published_values_belong_to_the_reference_cells():
    reference = load_suite(REPO / "configs/suites/reference.yml")
    cells = {c.id: c.config for c in [*reference.cells, *reference.skipped]}
    found = {
        cell: published_for(dataclasses.asdict(cfg), cfg.task == "llm_decoding")
        for cell, cfg in cells.items()
    }
    # the PITOM cells the reference published (not GPT-2: its "gpt2" baseline decodes GloVe;
    # no PITOM on loudness, no stage 1 alone), its two loudness baselines and both LLM-decoding
    # runs; no linear cell and no other ridge cell
    absent = {"gpt2_pitom", "loudness_pitom", "llm_embedding_pretraining_pitom"}
    expected = {c for c in cells if c.endswith("_pitom") and c not in absent} | {
        "loudness_time_pool",
        "loudness_ridge",
        "llm_decoding_no_brain",
    }
    assert {c for c, p in found.items() if p is not None} == expected
    glove = found["glove_pitom"]
    assert glove.metric == "test_word_avg_auc_roc" and glove.best == (
        400,
        pytest.approx(0.6046, abs=1e-4),
    )
    assert found["sentence_onset_pitom"].best == (0, pytest.approx(0.88, abs=1e-4))
    assert found["llm_decoding_pitom"].best == (200, pytest.approx(60.40, abs=0.01))
    assert found["llm_decoding_no_brain"].best == (-200, pytest.approx(67.22, abs=0.01))
    shuffled = dataclasses.asdict(cells["glove_pitom"])
    shuffled["training"]["shuffle_targets"] = True
    assert published_for(shuffled) is None  # a control is never compared with the reference


# --------------------------------------------------------------------------- results


def test_cells_leaderboard_and_schema(small_suite):
    import jsonschema

    path, result = small_suite
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    cells = sorted(result.folder.glob("cells/*/*/cell.json"))
    assert len(cells) == 2
    for cell_json in cells:
        record = json.loads(cell_json.read_text())
        jsonschema.validate(record, schema)
        assert record["suite"]["id"] == result.folder.name
        assert record["lags"] == [0, 200] and len(record["per_lag"][0]["test"]) == 5
        run = cell_json.parent
        assert (
            yaml.safe_load((run / "config.yml").read_text())["training"]["shuffle_targets"] is False
        )
        sig = record["significance"]
        nulls = sorted((run.parent / "null").iterdir()) if sig["refit"] else []
        assert len(nulls) == sig["refit"] and sig["null"] == ("refit" if sig["refit"] else "score")
        assert {n.name for n in nulls} == set(sig["null_runs"])
        assert all(0 < r["p_score"] <= 1 for r in record["per_lag"])  # both nulls are kept
        assert all(("p_refit" in r) == bool(sig["refit"]) for r in record["per_lag"])
        assert (run / "test_predictions.npz").is_file()
        if record["decoder"]["model"] == "mlp":  # nulls keep no model; the real cell does
            assert (run / "checkpoints").is_dir()
            assert not any((n / "checkpoints").exists() for n in nulls)
        best = max(record["per_lag"], key=lambda r: r["val_mean"])
        assert record["selected"]["lag"] == best["lag"]  # chosen on validation
        assert record["selected"]["test_mean"] == best["test_mean"]
    board = pd.read_csv(result.folder / "leaderboard.csv")
    assert list(board["cell"]) == ["ridge", "mlp"]
    assert list(board["decoder"]) == ["ridge", "mlp"] and set(board["subjects"]) == {"all"}
    assert list(board["null"]) == [
        "score-level, 300 re-pairings (words)",
        "retrained, 2 refits (circular)",
    ]
    assert (result.folder / "report" / "index.html").is_file()
    again = benchmark(path, **QUIET)  # complete: nothing trained
    assert again.trained_cells == [] and again.skipped_cells == ["ridge", "mlp"]


def test_the_log_has_a_closing_table_per_real_point_and_nothing_per_null_point(small_suite):
    """The suite's log: each cell's real point prints its closing table and results line, its
    two retrained null points print nothing; one progress line follows each program, its time
    left from the lanes left at the pace so far (the plan has no estimate for the MLP cell:
    nothing calibrated or measured it there when its program started)."""
    path, result = small_suite
    log = (path.parent / "benchmark.log").read_text().splitlines()
    tables = [line for line in log if line.startswith("task ")]
    assert len(tables) == 2, tables  # ridge and mlp; not the mlp cell's 2 nulls
    assert not any("/null/" in line for line in log)
    programs = [line for line in log if re.match(r"program \d+/\d+: ", line)]
    progress = [line for line in log if line.startswith("progress: ")]
    assert len(progress) == len(programs)
    assert all(line.endswith("left (by lanes at the pace so far)") for line in progress[:-1])
    assert progress[-1].endswith("about 0.0 min left (nothing left to run)")
    assert len(log) < 120  # the two closing tables, leaderboard and a few lines per program


def test_a_bad_schema_record_is_rejected(small_suite):
    import jsonschema

    _, result = small_suite
    record = json.loads(next(result.folder.glob("cells/ridge/*/cell.json")).read_text())
    record["per_lag"][0]["p"] = 0.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))


def test_each_subject_cells(standin, tmp_path):
    path = write_suite(
        tmp_path / "s.yml",
        [
            {
                "name": "r",
                "config": str(REPO / "configs/demo.yml"),
                "set": RIDGE,
                "subjects": ["all", "each"],
            }
        ],
        small_defaults(standin, tmp_path, None, {"min": 0, "max": 400, "step": 200}),
    )
    cells = load_suite(path).cells
    assert [c.id for c in cells] == ["r.all", "r.sub-01", "r.sub-03"]
    assert [c.config.data.subjects for c in cells] == ["all", [1], [3]]
    assert cells[1].config.trial_name == "r.sub-01"
    assert cells[1].config.output.results.endswith("cells")


# --------------------------------------------------------------------------- significance


@pytest.mark.slow
def test_planted_lag_is_significant_and_controls_are_not(decoding_standin, tmp_path):
    root, csv = decoding_standin
    # content words (planted on the stand-in's content channels at 250 ms): 999 score-level
    # re-pairings per lag, no pooling, four lags
    defaults = small_defaults(
        root, tmp_path, str(csv), {"min": -750, "max": 1000, "step": 500}, **{"training.n_folds": 5}
    )
    defaults["significance"] = {"permutations": 999}
    control = {**RIDGE, "training.shuffle_targets": True, "training.permutation_seed": 1000}
    config = str(REPO / "configs/tasks/content_word.yml")
    path = write_suite(
        tmp_path / "s.yml",
        [
            {"name": "planted", "config": config, "set": RIDGE},
            {"name": "control", "config": config, "set": control},
        ],
        defaults,
    )
    result = benchmark(path, **QUIET)
    records = {
        p.parent.parent.name: json.loads(p.read_text())
        for p in result.folder.glob("cells/*/*/cell.json")
    }
    planted = {r["lag"]: r for r in records["planted"]["per_lag"]}
    assert planted[PLANTED_MS]["q"] < 0.05 and planted[PLANTED_MS]["significant"]
    assert planted[PLANTED_MS]["p"] == pytest.approx(1 / 1000)
    # the planted lag stands out; neighbouring lags may be significant too (their windows
    # hold the responses to the previous or next words, whose content-ness is not
    # independent of this word's), and 999 permutations have the power to see it
    assert max(planted, key=lambda lag: planted[lag]["test_mean"]) == PLANTED_MS
    assert all(
        planted[lag]["test_mean"] < planted[PLANTED_MS]["test_mean"] - 0.1
        for lag in planted
        if lag != PLANTED_MS
    )
    assert records["planted"]["selected"]["lag"] == PLANTED_MS
    assert not any(r["significant"] for r in records["control"]["per_lag"]), records["control"][
        "per_lag"
    ]
    board = pd.read_csv(result.folder / "leaderboard.csv").set_index("cell")
    assert board.loc["planted", "n_significant"] >= 1 and board.loc["control", "n_significant"] == 0
    pairs = pd.read_csv(result.folder / "comparisons.csv")
    # planted beats its control at the shared lag chosen on validation, in every fold
    assert len(pairs) == 1 and pairs.loc[0, "lag_ms"] == PLANTED_MS
    assert pairs.loc[0, "p_value"] < 0.05 and pairs.loc[0, "a_better"] == pairs.loc[0, "n_folds"]
    assert 0 < pairs.loc[0, "ci_low"] <= pairs.loc[0, "difference"] <= pairs.loc[0, "ci_high"]
    by_lag = pd.read_csv(result.folder / "comparisons_by_lag.csv")
    assert sorted(by_lag["lag_ms"]) == sorted(planted)
    assert by_lag.set_index("lag_ms").loc[PLANTED_MS, "q_value"] < 0.05


# --------------------------------------------------------------------------- resume


def _run_json_stamps(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.glob("cells/**/run.json")
    }


@pytest.mark.slow
def test_a_suite_killed_midway_resumes_without_training_a_cell_twice(standin, tmp_path):
    defaults = small_defaults(
        standin,
        tmp_path,
        "^(G[1-3][0-9]|LGA[1-3][0-9])$",
        {"min": 0, "max": 400, "step": 200},
        **{"targets.pca_dim": 8, "targets.min_train_freq": 2},
    )
    defaults["significance"] = {"refit": 2}
    cells = [
        {
            "name": f"mlp{e}",
            "config": str(REPO / "configs/demo.yml"),
            "set": {**MLP, "training.epochs": e},
        }
        for e in (2, 3, 4, 5)
    ]  # 4 programs
    path = write_suite(tmp_path / "s.yml", cells, defaults)
    suite = load_suite(path)
    cmd = [sys.executable, "-m", "podbench.cli", "benchmark", "--suite", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if list(suite.folder.glob("cells/*/*/cell.json")):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.parent.name for p in suite.folder.glob("cells/*/*/cell.json")}
    assert 1 <= len(done_before) < len(cells), (done_before, proc.stderr.read()[-2000:])
    stamps = _run_json_stamps(suite.folder)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _run_json_stamps(suite.folder)
    assert {k: after[k] for k in stamps} == stamps  # nothing finished before was trained again
    for cell in done_before:
        assert f"cell {cell}: complete" in rerun.stdout

    def folders(path: Path) -> list[Path]:  # a killed write leaves a dot-named temporary
        return [p for p in path.iterdir() if not p.name.startswith(".")]

    for cell in suite.cells:
        assert (cell.run_dir() / "cell.json").is_file()
        assert sorted(folders(cell.run_dir().parent / "null")) == sorted(cell.null_dirs())
        assert [p for p in folders(cell.run_dir().parent) if p.name != "null"] == [cell.run_dir()]
    assert len(after) == len(cells) * 3


# --------------------------------------------------------------------------- report


def browser():
    """A headless Chromium driven by Selenium, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install 'podbench[dev]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(
            "chromium and chromedriver are not installed "
            "(apt-get install -y chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1600",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


def check_page(driver, page: Path) -> None:
    driver.get(page.resolve().as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], errors
    images = driver.find_elements("css selector", "img.figure")
    assert images
    for img in images:
        assert (
            driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
            > 100
        )


def test_report_in_a_headless_browser(small_suite, tmp_path):
    from PIL import Image

    _, result = small_suite
    driver = browser()
    try:
        index = result.folder / "report" / "index.html"
        check_page(driver, index)
        rows = driver.find_elements("css selector", "#leaderboard tbody tr")
        assert len(rows) == 2
        lag_figures = driver.find_elements("css selector", "img[alt^='lag curves of']")
        assert len(lag_figures) == 1  # one task
        header = driver.find_element("xpath", "//table[@id='leaderboard']//th[text()='cell']")
        header.click()
        first = [
            r.find_element("css selector", "td").text
            for r in driver.find_elements("css selector", "#leaderboard tbody tr")
        ]
        assert first == sorted(first)
        header.click()
        assert [
            r.find_element("css selector", "td").text
            for r in driver.find_elements("css selector", "#leaderboard tbody tr")
        ] == first[::-1]
        # the leaderboard fits a 1,280-px window: no horizontal scrolling; each task's best
        # cell (on validation) highlighted; secondary columns behind "show all columns"
        assert driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        assert len(driver.find_elements("css selector", "#leaderboard tr.best")) == 1
        secondary = driver.find_element("css selector", "#leaderboard th.secondary")
        assert not secondary.is_displayed()
        driver.find_element("id", "show-all").click()
        assert secondary.is_displayed()
        # every figure has a vector twin with readable labels (text kept as text)
        twins = [
            a.get_attribute("href")
            for a in driver.find_elements("css selector", "figcaption a[href$='.svg']")
        ]
        assert len(twins) == len(driver.find_elements("css selector", "img.figure"))
        for twin in twins:
            svg = Path(twin.removeprefix("file://")).read_text()
            assert "lag relative to the event onset (ms)" in svg and "(test)" in svg
            assert "test_" not in svg and "val_" not in svg
        shot = tmp_path / "index.png"
        driver.save_screenshot(str(shot))
        for link in [
            a.get_attribute("href") for a in driver.find_elements("css selector", "#leaderboard a")
        ]:
            check_page(driver, Path(link.removeprefix("file://")))
    finally:
        driver.quit()
    image = np.asarray(Image.open(shot).convert("L"), float)
    assert image.shape[0] >= 800 and image.shape[1] >= 1000
    assert image.std() > 10 and (image < 128).mean() > 0.01  # not blank


def test_report_figures_have_a_panel_per_subject_set_and_readable_labels():
    from podbench.experiments.report import Figures, lag_figure

    def record(cell, subjects, model, shift):
        return {
            "cell": cell,
            "subjects": {"set": subjects},
            "decoder": {"model": model},
            "headline": "test_roc_auc",
            "chance": 0.5,
            "lags": [0, 200],
            "per_lag": [
                {"lag": 0, "test_mean": 0.6 + shift, "test_std": 0.01, "significant": True},
                {"lag": 200, "test_mean": 0.55, "test_std": 0.02},
            ],
            "selected": {"lag": 0},
        }

    figures = Figures()
    page = lag_figure(
        [
            record("r.all", "all", "ridge", 0),
            record("m.all", "all", "mlp", 0.1),
            record("r.sub-01", "sub-01", "ridge", 0),
            record("r.sub-03", "sub-03", "ridge", 0.05),
        ],
        "content_word",
        figures,
        "task-content_word",
    )
    png, svg = figures.files["task-content_word"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 'href="figures/task-content_word.svg"' in page
    text = svg.decode()
    assert [f"subjects: {s}" in text for s in ("all", "sub-01", "sub-03")] == [True] * 3
    assert "ROC-AUC (test)" in text and "lag relative to the event onset (ms)" in text
    assert "test_roc_auc" not in text


def test_report_of_one_run_and_of_a_sweep(small_suite, tmp_path):
    from podbench.experiments.report import write_report
    from podbench.experiments.sweep import sweep

    _, result = small_suite
    run = next(p for p in (result.folder / "cells" / "ridge").iterdir() if p.is_dir())
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert CliRunner().invoke(main, ["report", str(copy)]).exit_code == 0
    assert "ridge" in (copy / "report" / "index.html").read_text()
    assert len(list((copy / "report").glob("cell-*.html"))) == 1
    from podbench import config

    base = config.from_dict(yaml.safe_load((run / "config.yml").read_text()))
    base = base.replace(
        {
            "trial_name": "sw",
            "training.shuffle_targets": False,
            "output.results": str(tmp_path / "results"),
        }
    )
    grid = tmp_path / "grid.yml"
    grid.write_text(yaml.safe_dump({"model.params.alphas": [[1.0], [100.0]]}))
    swept = sweep(base, grid, **QUIET)
    index = write_report(swept.folder, **QUIET)
    assert index.read_text().count("cell-point-") >= 2
    bad = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "neither a benchmark folder" in bad.output


def test_report_reads_the_manifest_and_refuses_to_lie(small_suite, tmp_path):
    """A copy of the benchmark folder: a leftover temporary copy of a cell's results folder is
    never read; a deleted cell is refused naming it (--partial: reported, said at the top); a
    truncated cell.json is one line naming it."""
    _, result = small_suite
    folder = tmp_path / "bench"
    shutil.copytree(result.folder, folder)
    (ridge,) = (folder / "cells" / "ridge").glob("*/cell.json")
    shutil.copytree(ridge.parent, ridge.parent.with_name(f"{ridge.parent.name}.tmp-99-abcdef"))
    runner = CliRunner()
    ok = runner.invoke(main, ["report", str(folder)])
    assert ok.exit_code == 0, ok.output
    index = (folder / "report" / "index.html").read_text()
    assert index.count('href="cell-ridge.html"') == 1
    podbench = Path(sys.executable).parent / "podbench"
    full = subprocess.run(
        ["bash", "-c", f"ulimit -f 16; exec {podbench} report {folder}"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # a full disk
    assert (
        full.returncode == 1
        and full.stderr.startswith("error: writing the report: disk full while writing")
        and full.stderr.count("\n") == 1
    )
    assert (folder / "report" / "index.html").read_text() == index  # the old pages, whole
    assert not [p for p in (folder / "report").iterdir() if ".tmp-" in p.name]
    shutil.rmtree(folder / "cells" / "mlp")
    refused = runner.invoke(main, ["report", str(folder)])
    lines = refused.stderr.strip().splitlines()
    assert refused.exit_code == 2 and len(lines) == 1, refused.output
    assert "1 of 2 cells" in lines[0] and "mlp (no results folder" in lines[0], lines[0]
    partial = runner.invoke(main, ["report", str(folder), "--partial"])
    assert partial.exit_code == 0 and "mlp" in partial.stderr, partial.output
    index = (folder / "report" / "index.html").read_text()
    assert "partial: 1 of 2 cells" in index and 'href="cell-mlp.html"' not in index
    ridge.write_text(ridge.read_text()[:100])
    damaged = runner.invoke(main, ["report", str(folder)])
    lines = damaged.stderr.strip().splitlines()
    assert damaged.exit_code == 2 and len(lines) == 1 and "Traceback" not in damaged.output
    assert f"{ridge}: damaged cell record" in lines[0], lines[0]
    compare = runner.invoke(main, ["compare", str(ridge), str(ridge)])
    assert compare.exit_code == 2 and f"{ridge}: damaged cell record" in compare.stderr


# --------------------------------------------------------------------------- the reference suite


@pytest.mark.slow
def test_every_reference_cell_runs_on_a_stand_in(standin, tmp_path, capsys):
    """The whole reference suite, reduced (two lags, three folds, one member, one epoch), runs
    end to end on the small stand-in with only the overrides the documentation gives
    (docs/user_guide/benchmarking.md), through the benchmark
    script that times it (benchmarks/reference_suite.py --reduced); every cell has its
    score-level p-values and the LLM cells, without a local GPT-2, are skipped in one line."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import reference_suite

    reference_suite.main(["--reduced", "--data", str(standin), "--work", str(tmp_path)])
    out = capsys.readouterr().out
    assert sum("skipped, task_params.lm_dir" in line for line in out.splitlines()) == 3
    assert "total_s=" in out.splitlines()[-1]
    overrides = [
        *reference_suite.standin_overrides(standin),
        f"output.stores={tmp_path / 'reduced' / 'stores'}",
        f"output.results={tmp_path / 'reduced' / 'results'}",
        *reference_suite.REDUCED,
    ]
    suite = load_suite(reference_suite.SUITE, overrides)
    board = pd.read_csv(suite.folder / "leaderboard.csv")
    # every cell, grouped by task in the order the suite first names each task
    assert sorted(board["cell"]) == sorted(c.id for c in suite.cells) and len(board) == 29
    tasks = list(dict.fromkeys(c.config.task for c in suite.cells))
    assert list(board["task"]) == sorted(board["task"], key=tasks.index)
    # the reference's published value beside every cell it published (real-data numbers)
    published = {c.id for c in suite.cells if published_for(dataclasses.asdict(c.config))}
    assert published == set(board.loc[board["reference"].notna(), "cell"])
    assert {"glove_pitom", "content_word_pitom", "loudness_time_pool"} <= published
    for cell in suite.cells:
        record = json.loads((cell.run_dir() / "cell.json").read_text())
        assert record["significance"]["null"] == "score", record["cell"]
        assert all(0 < row["p"] <= 1 for row in record["per_lag"]), record["cell"]
        assert f"score-level null of {cell.id}: 1000 permutations" in out
    programs = pd.read_csv(tmp_path / "reduced" / "programs.csv")
    assert programs["lanes"].sum() == sum(len(c.points) * 2 * 3 for c in suite.cells)
    assert programs["estimate_s"].notna().sum() >= 1  # later programs are estimated
    # the plan replayed against the programs just timed estimates each as it did then, and
    # the peak memory of those after the first (the runs record their programs' memory)
    import plan_replay

    plan_replay.main(["--reduced", "--data", str(standin), "--work", str(tmp_path)])
    replay = capsys.readouterr().out.splitlines()
    rows = [
        [v.strip() for v in line.strip("|").split("|")] for line in replay if line[:5] == "| 1 |"
    ]
    assert len(rows) == len(programs)
    assert all(row[4].split()[0] == row[5].split()[0] for row in rows), rows
    last = re.fullmatch(
        r"within_now=(\d+) within_then=\1 estimated=(\d+) memory_within=\d+ "
        r"memory_estimated=(\d+)",
        replay[-1],
    )
    # the runs record their memory: programs after a decoder's first have a memory estimate
    # (a closed-form fit priced by another decoder's runs has a time estimate only)
    assert last and 1 <= int(last.group(3)) <= int(last.group(2)), replay[-1]
    # and each program against the plan from every other cell's runs
    plan_replay.main(
        ["--reduced", "--data", str(standin), "--work", str(tmp_path), "--leave-one-out"]
    )
    loo = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("| ") for line in loo) == 1 + len(programs.drop_duplicates("cells"))
    assert re.fullmatch(r"loo_within=\d+ loo_estimated=(\d+)", loo[-1]), loo[-1]


def ridge_and_mlp_suite(standin: Path, tmp_path: Path, mlp_epochs: int = 2) -> Path:
    """A suite of a ridge and an MLP cell on the small stand-in, 3 lags, nothing run."""
    cells = [
        {"name": "ridge", "config": str(REPO / "configs/demo.yml"), "set": RIDGE},
        {
            "name": "mlp",
            "config": str(REPO / "configs/demo.yml"),
            "set": {**MLP, "training.epochs": mlp_epochs},
        },
    ]
    return write_suite(
        tmp_path / "p.yml",
        cells,
        small_defaults(standin, tmp_path, None, {"min": 0, "max": 600, "step": 200}),
    )


def test_plan_prints_lanes_and_stores_and_writes_nothing(standin, tmp_path, small_suite):
    path = ridge_and_mlp_suite(standin, tmp_path)
    result = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[2:4]}
    assert rows["ridge"][1:4] == ["1", "1", "15"]  # program, points, lanes (3 lags x 5 folds)
    assert rows["mlp"][1:5] == ["2", "1", "15", "30"]  # and lane-epochs (2 epochs)
    assert (
        "epochs, targets, latents" in result.output and "no estimate for 2 cell(s)" in result.output
    )
    assert not (tmp_path / "stores").exists() and not (tmp_path / "results").exists()
    # the results root of a finished suite measures the decoders: estimates follow
    _, done = small_suite
    root = done.folder.parents[1]
    again = CliRunner().invoke(
        main, ["benchmark", "--suite", str(path), "--plan", "--set", f"output.results={root}"]
    )
    assert again.exit_code == 0 and "no estimate" not in again.output, again.output
    assert "ridge: " in again.output and "mlp: " in again.output
    assert "unknown" not in again.output and "peak memory about" in again.output
    # an input with four times the bins (a quarter of the block) is planned at four times the
    # cost per lane-epoch and event; the measured stores give the exact input size
    from podbench.experiments.plan import measured_rates, plan_cells

    wide = write_suite(
        tmp_path / "w.yml",
        [
            {
                "name": f"mlp{block}",
                "config": str(REPO / "configs/demo.yml"),
                "set": {**MLP, "preprocess.params": {"num_average_samples": block}},
            }
            for block in (320, 80)
        ],
        small_defaults(standin, tmp_path, None, {"min": 0, "max": 600, "step": 200}),
    )
    plans = plan_cells(load_suite(wide, [f"output.results={root}"]).cells, measured_rates(root))
    assert plans[1].estimate_s == pytest.approx(4 * plans[0].estimate_s)
    # and at a larger peak: the same lanes on four times the input elements
    assert plans[1].peak_bytes > plans[0].peak_bytes > 0


def test_calibrated_plan_prices_each_program_at_its_own_shapes(standin, tmp_path, small_suite):
    """`--plan --calibrate` builds each program's stores and times a few of its lanes at the
    program's own shapes (epochs after the first, compiling one; a closed-form fit after its
    compilation), keeps that under the results root by program and machine, and prices the
    cells by it: the fixed part once, the lanes at the timed cost each, every lane to its
    epoch budget where no run tells when early stopping ends them. Its memory too: the process
    before the program, the program's inputs, the timed lanes' temporaries and every lane's
    holding. A second plan calibrates nothing again (but a calibration of version 1, which
    measured no memory); no results folder is written."""
    from podbench.experiments.benchmark import load_suite
    from podbench.experiments.plan import input_shape, measured_rates, plan_cells, rates_of
    from podbench.features.context import resolve
    from podbench.features.keys import stage_keys
    from podbench.train.calibrate import CALIBRATIONS, calibrations

    path = ridge_and_mlp_suite(standin, tmp_path, mlp_epochs=6)  # patience 1: lanes stop
    first = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan", "--calibrate"])
    assert first.exit_code == 0, first.output
    assert first.output.count("calibrating its program") == 2, first.output
    assert "calibrating mlp on word_embedding: 4 of its 15 lanes, 3 epochs each" in (first.output)
    assert "2 cell(s) priced by their program's calibration" in first.output
    assert "no estimate" not in first.output and "unknown" not in first.output
    assert "peak memory about" in first.output
    table = first.output[first.output.index("\nsuite ") :].splitlines()[3:5]
    assert [line.split()[0] for line in table] == ["ridge", "mlp"], table
    assert "<=" in table[1] and "<=" not in table[0], table
    root = tmp_path / "results"
    kept = calibrations(root)
    assert len(kept) == 2 and not list(root.rglob("run.json"))
    by_epochs = {c.epochs: c for c in kept.values()}
    assert by_epochs[3].lanes == 4 and by_epochs[0].lanes == 4  # mlp; ridge (one fit each)
    assert all(c.lane_s > 0 and c.fixed_s > 0 for c in kept.values())
    plans = {p.cell: p for p in plan_cells(load_suite(path).cells, {}, kept)}
    mlp, ridge = by_epochs[3], by_epochs[0]
    assert plans["mlp"].estimate_s == pytest.approx(mlp.fixed_s + 15 * 6 * mlp.lane_s)
    assert plans["ridge"].estimate_s == pytest.approx(ridge.fixed_s + 15 * ridge.lane_s)
    assert plans["mlp"].upper_bound and plans["mlp"].calibrated
    # memory: an MLP lane holds its parameters four times (them, Adam's two moments, the best
    # copy), twice over an epoch; a ridge lane its predictions of every event
    mlp_cfg = load_suite(path).cells[1].config
    ctx = resolve(mlp_cfg)
    (channels, bins) = input_shape(ctx, stage_keys(ctx)["latents"])
    hidden = mlp_cfg.model.params["hidden"]
    weights = channels * bins * hidden[0]  # its first layer's
    assert mlp.lane_bytes > 2 * 4 * 4 * weights and ridge.lane_bytes >= plans["ridge"].events * 4
    for cell, c in (("mlp", mlp), ("ridge", ridge)):
        inputs = plans[cell].events * 3 * channels * bins * 4  # float32, 3 lags
        assert c.memory_base > 1e8 and c.memory_temp >= 0  # a Python process with JAX
        assert plans[cell].peak_bytes == pytest.approx(c.peak_bytes(15, inputs))
    # runs of the decoder that could stop early tell the expected epochs
    _, done = small_suite
    rates = measured_rates(done.folder.parents[1])
    expected = rates["mlp"].epochs(mlp_cfg)  # best epoch + 1 + patience (1) of lanes of 2
    assert expected is not None and 2 <= expected <= 3
    plans = {p.cell: p for p in plan_cells(load_suite(path).cells, rates, kept)}
    assert not plans["mlp"].upper_bound and plans["mlp"].calibrated
    assert plans["mlp"].estimate_s == pytest.approx(mlp.fixed_s + 15 * expected * mlp.lane_s)
    # a run whose budget is no more than its patience could stop no lane early: it tells none
    (mlp_run,) = [
        p for p in done.folder.rglob("run.json") if "null" not in p.parts and "mlp" in p.parts
    ]
    short = tmp_path / "short"
    shutil.copytree(mlp_run.parent, short)
    raw = yaml.safe_load((short / "config.yml").read_text())
    raw["training"]["patience"] = raw["training"]["epochs"]
    (short / "config.yml").write_text(yaml.safe_dump(raw))
    (rate,) = rates_of([short / "run.json"]).values()
    assert rate.runs == 1 and rate.best_epoch == {} and rate.epochs(mlp_cfg) is None
    # nothing is calibrated again
    again = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan", "--calibrate"])
    assert again.exit_code == 0 and "calibrating" not in again.output, again.output
    # a calibration of version 1 (times only) prices the cell, its memory unknown, until
    # --calibrate measures the program again
    (old,) = [k for k, c in kept.items() if c is ridge]
    old_file = root / CALIBRATIONS / f"{old}.json"
    raw = json.loads(old_file.read_text())
    for name in ("memory_base", "memory_temp", "lane_bytes"):
        del raw[name]
    old_file.write_text(json.dumps({**raw, "version": 1}))
    plans = {p.cell: p for p in plan_cells(load_suite(path).cells, {}, calibrations(root))}
    assert plans["ridge"].estimate_s == pytest.approx(ridge.fixed_s + 15 * ridge.lane_s)
    assert plans["ridge"].peak_bytes is None and plans["mlp"].peak_bytes is not None
    third = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan", "--calibrate"])
    assert third.exit_code == 0 and third.output.count("calibrating its program") == 1
    assert calibrations(root)[old].memory_base is not None
    # --to-stop: the MLP's program is calibrated again, a few of its lanes trained as the run
    # will train them, until early stopping ends each; their mean epochs price its cell (no
    # longer a bound); the ridge's closed-form fit is kept
    stop = CliRunner().invoke(
        main, ["benchmark", "--suite", str(path), "--plan", "--calibrate", "--to-stop"]
    )
    assert stop.exit_code == 0 and stop.output.count("calibrating its program") == 1, stop.output
    assert "4 of its 15 lanes, each until early stopping ends it" in stop.output
    (mlp_key,) = [k for k, c in kept.items() if c is mlp]
    pilot = calibrations(root)[mlp_key]
    assert pilot.stop_epochs is not None and 2 <= pilot.stop_epochs <= 6
    plans = {p.cell: p for p in plan_cells(load_suite(path).cells, {}, calibrations(root))}
    assert not plans["mlp"].upper_bound and "<=" not in stop.output
    assert plans["mlp"].estimate_s == pytest.approx(
        pilot.fixed_s + 15 * pilot.stop_epochs * pilot.lane_s
    )
    # this task's own runs, where there are some, come before the calibration's lanes
    plans = {p.cell: p for p in plan_cells(load_suite(path).cells, rates, calibrations(root))}
    assert plans["mlp"].estimate_s == pytest.approx(pilot.fixed_s + 15 * expected * pilot.lane_s)
    again = CliRunner().invoke(
        main, ["benchmark", "--suite", str(path), "--plan", "--calibrate", "--to-stop"]
    )
    assert again.exit_code == 0 and "calibrating" not in again.output, again.output
    # the run tells the time left by the plan of the cells left (the ridge cell's run tells
    # nothing of where the MLP's lanes stop: the calibration's lanes do)
    ran = CliRunner().invoke(main, ["benchmark", "--suite", str(path)])
    assert ran.exit_code == 0, ran.output
    progress = [line for line in ran.output.splitlines() if line.startswith("progress: ")]
    assert len(progress) == 2, ran.output
    left = float(re.search(r"about ([0-9.]+) min left \(by the plan\)$", progress[0])[1])
    assert left == pytest.approx(
        (pilot.fixed_s + 15 * pilot.stop_epochs * pilot.lane_s) / 60, abs=0.051
    )
    assert progress[1].endswith("about 0.0 min left (nothing left to run)")
    # the calibration's lanes trained as the run trained the same lanes (4 spread over 15)
    (run_json,) = [p for p in root.rglob("run.json") if "mlp" in p.parts]
    lanes = json.loads(run_json.read_text())["lane_table"]
    sample = [lanes[i]["epochs"] for i in (0, 5, 9, 14)]
    assert pilot.stop_epochs == pytest.approx(np.mean(sample)), [x["epochs"] for x in lanes]
    # a damaged calibration is named, not read
    damaged = sorted((root / CALIBRATIONS).glob("*.json"))[0]
    damaged.write_text(json.dumps({"version": 1, "lane_s": 1.0}))
    bad = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan"])
    assert bad.exit_code == 2 and damaged.name in bad.output, bad.output
    alone = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--calibrate"])
    assert alone.exit_code == 2 and "--calibrate goes with --plan" in alone.output
    bare = CliRunner().invoke(main, ["benchmark", "--suite", str(path), "--plan", "--to-stop"])
    assert bare.exit_code == 2 and "--to-stop goes with --calibrate" in bare.output


def test_time_left_scales_the_programs_not_done_by_the_pace_of_those_done():
    """Programs weighed 10, 90 and 20 (seconds the plan expects, or lanes): the first done in
    20 s runs at twice the plan, so 220 s are left; with the first two done in 150 s, 30 s."""
    from podbench.experiments.benchmark import time_left

    assert time_left([10.0, 90.0, 20.0], [0], 20.0) == pytest.approx(220.0)
    assert time_left([10.0, 90.0, 20.0], [1, 0], 150.0) == pytest.approx(30.0)
    assert time_left([10.0, 90.0, 20.0], [0, 1, 2], 150.0) == 0.0
    assert math.isnan(time_left([10.0, 90.0], [], 5.0))


def test_expected_epochs_come_from_the_task_then_its_calibration_then_other_tasks():
    """A lane whose patience is at least its budget trains its budget (an estimate, not a
    bound); otherwise the epochs come from the task's runs here, else from the lanes its
    program's calibration trained to their stop, else from other tasks' runs; else none (every
    lane to its budget: the plan marks an upper bound)."""
    from podbench import api
    from podbench.experiments.plan import Rate, expected_epochs
    from podbench.train.calibrate import Calibration

    cfg = api.load_config(
        REPO / "configs/demo.yml", ["training.epochs=30", "training.patience=5"]
    )  # task word_embedding
    patient = api.load_config(
        REPO / "configs/demo.yml", ["training.epochs=30", "training.patience=30"]
    )

    def rate(best_epoch: dict[str, float]) -> Rate:
        return Rate(1e-9, {}, {}, best_epoch, 1, model="mlp")

    stopped = Calibration(0.1, 1.0, 4, 12, {}, stop_epochs=9.5)
    unstopped = Calibration(0.1, 1.0, 4, 3, {})
    assert expected_epochs(patient, None, None) == 30.0
    assert expected_epochs(cfg, None, None) is None
    assert expected_epochs(cfg, None, unstopped) is None
    assert expected_epochs(cfg, None, stopped) == 9.5
    own, other = rate({"word_embedding": 3.0}), rate({"content_word": 10.0})
    assert expected_epochs(cfg, own, stopped) == 3.0 + 1 + 5  # best epoch + 1 + patience
    assert expected_epochs(cfg, other, stopped) == 9.5
    assert expected_epochs(cfg, other, None) == 16.0
    assert expected_epochs(cfg, rate({"content_word": 40.0}), None) == 30.0  # the budget


@pytest.mark.parametrize("channels,bins", [(183, 10), (153, 40)])
def test_pitom_declares_the_arithmetic_that_xla_counts(channels, bins):
    """The plan scales measured runs by each decoder's declared work: PITOM's (per event and
    member, a third of it the forward pass) is the forward pass's floating-point operations
    as XLA counts them in the compiled model, within 5 %, across channels and bins."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from podbench import config, registry
    from podbench.models.layers import Call
    from podbench.specs import Workload

    params = config.from_dict({"model": {"name": "pitom"}}).model.params
    model = registry.models.entry("pitom", "model.name").obj(
        params, input_shape=(channels, bins), output_dim=50, head="vector", rngs=nnx.Rngs(0)
    )
    graph, state = nnx.split(model)

    def forward(state, x):
        return nnx.merge(graph, state)(x, Call(train=False))

    cost = jax.jit(forward).lower(state, jnp.zeros((32, channels, bins))).compile()
    analysis = cost.cost_analysis()
    counted = (analysis[0] if isinstance(analysis, list) else analysis)["flops"]
    spec = registry.models.spec("pitom")
    declared = spec.work(Workload(32, (channels, bins), 1, "vector", params)) / 3
    assert declared == pytest.approx(counted, rel=0.05)


def test_a_task_without_runs_of_its_own_is_planned_from_decoders_doing_the_same_work():
    """A closed-form "linear" fit is a ridge fit for vectors and scalars and an L-BFGS
    logistic fit for binary and class targets, at very different cost per unit of work: a
    task with no runs of its own takes the rate of tasks with its head, then of heads the
    decoder does the same work for (its declared `work` agrees), then of another decoder that
    does that work (ridge, for linear on a vector), and only then any task's. The steps a
    closed-form lane's fit is expected to make come from the same runs as its rate (a ridge
    fit's one solve, a logistic fit's evaluations)."""
    from podbench import config
    from podbench.experiments.plan import Rate, seconds_per_unit, task_classes, task_head

    linear = Rate(
        1.0,
        {"word_embedding": 2.0},
        {"vector": 3.0, "binary": 5.0},
        {},
        3,
        model="linear",
        fit_steps={"word_embedding": 1.0, "content_word": 300.0},
    )
    ridge = Rate(
        7.0, {"loudness": 11.0}, {"scalar": 11.0}, {}, 1, model="ridge", fit_steps={"loudness": 1}
    )

    def cost(task: str, rates: dict) -> tuple[float, float] | None:
        """Seconds per unit and the expected steps of a lane's fit, from the same runs."""
        cfg = config.from_dict({"task": task, "model": {"name": "linear", "members": 1}})
        found = seconds_per_unit(rates, cfg, 1)
        return None if found is None else (found[0], found[1].steps(cfg))

    def seconds(task: str, rates: dict) -> float | None:
        found = cost(task, rates)
        return None if found is None else found[0]

    both = {"linear": linear, "ridge": ridge}
    assert seconds("word_embedding", both) == 2.0  # its own runs
    assert task_head("whisper_embedding") == "vector" and seconds("whisper_embedding", both) == 3.0
    assert task_head("content_word") == "binary" and seconds("content_word", both) == 5.0
    assert task_head("part_of_speech") == "classes"
    assert seconds("part_of_speech", both) == 5.0  # binary: the same logistic work
    assert task_head("loudness") == "scalar"
    assert seconds("loudness", both) == 3.0  # vector: the same ridge fit
    only_logistic = {"linear": Rate(1.0, {}, {"binary": 5.0}, {}, 1, model="linear")}
    assert seconds("loudness", {**only_logistic, "ridge": ridge}) == 11.0  # ridge's own
    assert seconds("loudness", only_logistic) == 1.0  # nothing alike: any task's
    assert seconds("loudness", {"ridge": ridge}) == 11.0  # linear never ran: ridge does it
    assert seconds("loudness", {}) is None
    assert task_head("no_such_task") is None
    # steps: its own task's, else its head's, else heads of the same work; another decoder's
    # rate brings that decoder's steps (a ridge fit is one step, whatever logistic fits took)
    assert cost("content_word", both) == (5.0, 300.0)
    assert cost("part_of_speech", both) == (5.0, 300.0)  # binary: the same logistic work
    assert cost("loudness", both) == (3.0, 1.0)  # vector: the same ridge fit
    logistic_only = Rate(
        1.0, {}, {"binary": 5.0}, {}, 1, model="linear", fit_steps={"content_word": 300}
    )
    assert cost("loudness", {"linear": logistic_only, "ridge": ridge}) == (11.0, 1.0)
    # a logistic evaluation's work grows with the classes
    assert task_classes("part_of_speech") == 5 and task_classes("content_word") == 1
