"""The benchmark's other tasks: targets checked by hand, metrics against scikit-learn / scipy,
end-to-end decoding of the planted stand-in (and chance with shuffled targets), a plugin task,
the multimodal summary and the shipped task configs."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import sklearn.metrics as skm
import yaml
from scipy.special import expit, softmax

from podbench import api, config, registry
from podbench.data.annotations import word_surprisal, word_tags
from podbench.data.audio import envelope_at_rate, loudness_db, open_wav
from podbench.data.dataset import Dataset, word_table
from podbench.data.synth import GROUND_TRUTH, SOURCE
from podbench.errors import ConfigError
from podbench.tasks import metrics
from podbench.tasks.part_of_speech import CLASSES, pos_class
from podbench.tasks.scoring import masked_auc, masked_macro_auc
from podbench.tasks.sentence_onset import sentence_events, sentences
from podbench.tasks.surprisal import surprisal_classes

from .helpers import make_config

REPO = Path(__file__).resolve().parents[1]
PLANTED_MS = 250
QUIET = {"log": lambda s: None}
REAL = Dataset(SOURCE)  # the real ds005574 transcripts shipped with podbench


# --------------------------------------------------------------------------- metrics


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


def test_binary_metrics_equal_sklearn(rng):
    y = (rng.uniform(size=300) < 0.3).astype(float)
    logit = np.round(rng.normal(size=300) + y, 1)  # rounded: ties on purpose
    pred, target = logit[:, None], np.stack([y, rng.uniform(size=300)], axis=1)  # 2nd col: weights
    assert metrics.roc_auc(pred, target) == pytest.approx(skm.roc_auc_score(y, logit), abs=1e-9)
    assert metrics.f1(pred, target) == pytest.approx(skm.f1_score(y, logit > 0), abs=1e-9)
    assert metrics.balanced_accuracy(pred, target) == pytest.approx(
        skm.balanced_accuracy_score(y, logit > 0), abs=1e-9
    )
    assert metrics.accuracy(pred, target) == pytest.approx(
        skm.accuracy_score(y, logit > 0), abs=1e-9
    )
    assert metrics.bce(pred, target) == pytest.approx(skm.log_loss(y, expit(logit)), abs=1e-9)
    assert np.isnan(metrics.roc_auc(pred, np.zeros((300, 1))))
    assert metrics.f1(np.full((4, 1), -1.0), np.zeros((4, 1))) == 0.0  # sklearn's zero_division


def test_class_metrics_equal_sklearn(rng):
    k = 5
    y = rng.integers(0, k, 400)
    logits = rng.normal(size=(400, k)) + np.eye(k)[y]
    target = y[:, None].astype(float)
    probs = softmax(logits, axis=1)
    assert metrics.macro_roc_auc(logits, target) == pytest.approx(
        skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-9
    )
    assert metrics.macro_f1(logits, target) == pytest.approx(
        skm.f1_score(y, logits.argmax(1), average="macro"), abs=1e-9
    )
    assert metrics.balanced_accuracy(logits, target) == pytest.approx(
        skm.balanced_accuracy_score(y, logits.argmax(1)), abs=1e-9
    )
    assert metrics.cross_entropy(logits, target) == pytest.approx(
        skm.log_loss(y, probs, labels=range(k)), abs=1e-9
    )
    np.testing.assert_array_equal(
        metrics.confusion_counts(logits, target, k),
        skm.confusion_matrix(y, logits.argmax(1), labels=range(k)),
    )
    # a class absent from the split: mean of the other classes' one-vs-rest AUCs
    absent = y != 2
    expected = np.mean([skm.roc_auc_score(y[absent] == c, probs[absent, c]) for c in (0, 1, 3, 4)])
    assert metrics.macro_roc_auc(logits[absent], target[absent]) == pytest.approx(
        expected, abs=1e-9
    )
    with pytest.warns(UserWarning):  # sklearn warns about the predicted class absent from y
        balanced = skm.balanced_accuracy_score(y[absent], logits[absent].argmax(1))
    assert metrics.balanced_accuracy(logits[absent], target[absent]) == pytest.approx(
        balanced, abs=1e-9
    )
    assert metrics.macro_f1(logits[absent], target[absent]) == pytest.approx(
        skm.f1_score(y[absent], logits[absent].argmax(1), average="macro"), abs=1e-9
    )


def test_regression_metrics_equal_scipy_and_sklearn(rng):
    y = rng.normal(size=(200, 1))
    pred = 0.5 * y + rng.normal(size=(200, 1))
    assert metrics.pearson_r(pred, y) == pytest.approx(
        scipy.stats.pearsonr(pred[:, 0], y[:, 0])[0], abs=1e-9
    )
    assert metrics.r2(pred, y) == pytest.approx(skm.r2_score(y, pred), abs=1e-9)
    assert metrics.mse(pred, y) == pytest.approx(skm.mean_squared_error(y, pred), abs=1e-9)
    assert np.isnan(metrics.pearson_r(np.ones((5, 1)), y[:5]))


def test_early_stopping_scores_equal_the_host_metrics(rng):
    n, k = 120, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + np.eye(k)[y]
    mask = (np.arange(n) < 100).astype(np.float32)  # padded rows are ignored
    binary = (y == 1).astype(np.float32)
    got = masked_auc(jnp.asarray(logits[:, 0]), jnp.asarray(binary), jnp.asarray(mask))
    assert float(got) == pytest.approx(skm.roc_auc_score(binary[:100], logits[:100, 0]), abs=1e-6)
    got = masked_macro_auc(
        jnp.asarray(logits, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(mask)
    )
    assert float(got) == pytest.approx(metrics.macro_roc_auc(logits[:100], y[:100, None]), abs=1e-5)


def test_ensembles_average_probabilities(rng):
    binary = registry.tasks.get("content_word")()
    members = rng.normal(size=(3, 10, 1))
    logit = binary.ensemble(members)
    np.testing.assert_allclose(expit(logit), expit(members).mean(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(binary.ensemble(members[:1]), members[0])
    classes = registry.tasks.get("part_of_speech")()
    members = rng.normal(size=(3, 10, 5))
    np.testing.assert_allclose(
        softmax(classes.ensemble(members), axis=-1),
        softmax(members, axis=-1).mean(axis=0),
        rtol=1e-9,
    )
    vector = registry.tasks.get("word_embedding")()
    np.testing.assert_array_equal(vector.ensemble(members), members.mean(axis=0))  # unchanged


# --------------------------------------------------------------------------- targets by hand


def test_surprisal_sums_the_subtokens():
    tokens = pd.read_csv(
        SOURCE / "stimuli/gpt2-xl/transcript.tsv", sep="\t", index_col=0, keep_default_na=False
    )
    table = word_surprisal(REAL).set_index("word_idx")
    assert len(table) == 5136
    # "one," = "Ġone" (0.00034219088) + "," (0.05952017)
    assert table.loc[1, "value"] == pytest.approx(-math.log(0.00034219088) - math.log(0.05952017))
    chivvis = tokens[tokens["word"] == "Chivvis"]
    assert list(chivvis["hftoken"]) == ["ĠCh", "iv", "vis"]
    word = int(chivvis["word_idx"].iloc[0])
    assert table.loc[word, "value"] == pytest.approx(-np.log(chivvis["true_prob"]).sum())
    # classes: bounds from the mean and sd given (a training fold's)
    np.testing.assert_array_equal(
        surprisal_classes(np.array([0.0, 0.9, 1.0, 3.0, 3.1]), 2.0, 1.0), [0, 0, 1, 1, 2]
    )


def test_content_and_part_of_speech_tags_by_hand():
    tags = word_tags(REAL).set_index("word_idx")
    assert len(tags) == 5136
    hand = {  # word_idx: (word, tag of the first non-punctuation token, content, class)
        0: ("Act", "NNP", True, "noun"),
        1: ("one,", "CD", False, "other"),  # "one" + ","
        2: ("monkey", "NN", True, "noun"),
        3: ("in", "IN", False, "other"),
        5: ("middle.", "NN", True, "noun"),  # "middle" + "."
        7: ("there's", "EX", False, "other"),  # "there" + "'s"
        10: ("where", "WRB", False, "other"),  # WRB does not start with RB
        12: ("almost", "RB", True, "adverb"),
        14: ("go", "VBP", True, "verb"),
        16: ("that", "WDT", False, "other"),
    }
    content = (
        registry.tasks.get("content_word")()
        .values(config.from_dict({"task": "content_word"}), REAL)
        .set_index("word_idx")
    )
    pos = (
        registry.tasks.get("part_of_speech")()
        .values(config.from_dict({"task": "part_of_speech"}), REAL)
        .set_index("word_idx")
    )
    for idx, (word, tag, is_content, cls) in hand.items():
        assert tags.loc[idx, "word"] == word and tags.loc[idx, "tag"] == tag, idx
        assert content.loc[idx, "value"] == float(is_content), idx
        assert CLASSES[int(pos.loc[idx, "value"])] == cls, idx
    didnt = tags.index[tags["word"] == "didn't"][0]  # "did" + "n't"
    assert tags.loc[didnt, "tag"] == "VBD" and content.loc[didnt, "value"] == 1.0
    assert pos_class("JJR") == 2 and pos_class("NNPS") == 0 and pos_class("PRP") == 4
    assert 0.45 < content["value"].mean() < 0.6


def test_sentence_events_respect_margin_ratio_and_seed():
    cfg = config.from_dict({"task": "sentence_onset", "data": {"root": str(SOURCE)}})
    events = sentence_events(cfg, REAL).drop(columns="sentence")
    sent = sentences(cfg, REAL)
    onsets, inside = events[events["word"] == "onset"], events[events["word"] == "inside"]
    p = cfg.task_params
    assert len(onsets) == len(sent) == 374  # capitals rule on the real transcript
    assert len(inside) == p["negatives_per_positive"] * len(onsets)
    np.testing.assert_array_equal(events["word_idx"], np.arange(len(events)))
    assert np.all(np.diff(events["start"]) >= 0)
    gap = np.abs(inside["start"].to_numpy()[:, None] - sent["onset"].to_numpy()[None, :]).min(1)
    assert gap.min() >= p["margin"] - 1e-9  # never within the margin of any sentence onset
    full = sentence_events(cfg, REAL)  # with the sentence each event belongs to
    k = full.loc[full["word"] == "inside", "sentence"].to_numpy()
    t = inside["start"].to_numpy()
    assert np.all(t >= sent["onset"].to_numpy()[k] + p["margin"] - 1e-9)
    assert np.all(t <= sent["end"].to_numpy()[k] - p["margin"] + 1e-9)
    pd.testing.assert_frame_equal(full.drop(columns="sentence"), events)  # deterministic
    other = sentence_events(cfg.replace({"task_params.seed": 1}), REAL)
    assert not np.allclose(other["start"], events["start"])
    np.testing.assert_array_equal(other.loc[other["word"] == "onset", "start"], onsets["start"])
    # punctuation only: the real transcript keeps just two sentence-final marks
    assert len(sentences(cfg.replace({"task_params.boundaries": "punctuation"}), REAL)) == 2
    with pytest.raises(ConfigError, match="sentences_csv"):
        cfg.replace({"task_params.sentences_csv": "/no/such.csv"})


def _write_wav(path: Path, left: np.ndarray, right: np.ndarray, sr: int = 44100) -> None:
    frames = np.stack([left, right], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.round(frames * 32767).astype(np.int16).tobytes())


def test_loudness_of_an_amplitude_step(tmp_path):
    sr = 44100
    t = np.arange(6 * sr) / sr
    amplitude = np.where(t < 3.0, 0.1, 0.5)
    tone = amplitude * np.sin(2 * np.pi * 1000 * t)
    _write_wav(tmp_path / "step.wav", tone, tone)
    db = loudness_db(tmp_path / "step.wav", rate=512, lowpass_hz=8.0)
    assert db.shape == (6 * 512,)
    times = np.arange(len(db)) / 512
    quiet, loud = db[(times > 0.5) & (times < 2.5)], db[(times > 3.5) & (times < 5.5)]
    np.testing.assert_allclose(quiet, 20 * np.log10(0.1), atol=0.05)  # envelope of A sin = A
    np.testing.assert_allclose(loud, 20 * np.log10(0.5), atol=0.05)
    # zero-phase: the smoothed step crosses the linear midpoint at the step itself
    crossing = times[np.argmax(db > 20 * np.log10(0.3))]
    assert abs(crossing - 3.0) < 0.01
    # the stereo mix is the mean of the channels
    _write_wav(tmp_path / "half.wav", tone, np.zeros_like(tone))
    half = loudness_db(tmp_path / "half.wav")
    np.testing.assert_allclose(half[512:1024], quiet[:512] - 20 * np.log10(2), atol=0.05)
    # blocks (with context) join seamlessly
    sr_, data = open_wav(tmp_path / "step.wav")
    whole = envelope_at_rate(data, sr_, 512, block_s=100.0)
    blocks = envelope_at_rate(data, sr_, 512, block_s=0.5)
    np.testing.assert_allclose(blocks[256:-256], whole[256:-256], rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("tasks")


SMALL = {"lags": {"min": PLANTED_MS, "max": PLANTED_MS + 1, "step": 250}}


def small_config(root: Path, csv: Path, work: Path, task: str, **sections):
    """One lag (the planted one), 3 folds, one small PITOM member, a few epochs."""
    base = {
        "task": task,
        "trial_name": task,
        "data": {"electrodes": str(csv), **SMALL},
        "model": {"members": 1, "params": {"filters": 32}},
        "training": {"epochs": 5, "patience": 5, "n_folds": 3},
    }
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(base.get(name), dict):
            base[name] = {**base[name], **values}
        else:
            base[name] = values
    return make_config(root, work, **base)


def train_pair(cfg):
    """The planted run and its shuffled-target control (same program, compiled once)."""
    planted = api.train(cfg, **QUIET).performance.set_index("lags")
    control = api.train(cfg.replace({"training.shuffle_targets": True}), **QUIET).performance
    return planted, control.set_index("lags")


def report(name: str, planted, control, key: str) -> None:
    print(
        f"\n{name}: {key} at {PLANTED_MS} ms planted {planted.loc[PLANTED_MS, key]:.3f}, "
        f"shuffled {control.loc[PLANTED_MS, key]:.3f}"
    )


@pytest.mark.slow
def test_content_words_are_decoded_at_the_planted_lag(decoding_standin, work):
    root, csv = decoding_standin
    cfg = small_config(root, csv, work, "content_word")
    planted, control = train_pair(cfg)
    report("content_word", planted, control, "test_roc_auc_mean")
    assert planted.loc[PLANTED_MS, "test_roc_auc_mean"] >= 0.7
    assert abs(control.loc[PLANTED_MS, "test_roc_auc_mean"] - 0.5) < 0.06
    for key in ("test_f1", "test_balanced_accuracy", "val_roc_auc", "test_bce"):
        assert f"{key}_mean" in planted.columns


@pytest.mark.slow
def test_loudness_is_decoded_at_the_planted_lag(decoding_standin, work):
    root, csv = decoding_standin
    cfg = small_config(root, csv, work, "loudness", task_params={"step": 0.5})
    planted, control = train_pair(cfg)
    report("loudness", planted, control, "test_pearson_r_mean")
    assert planted.loc[PLANTED_MS, "test_pearson_r_mean"] >= 0.5
    assert planted.loc[PLANTED_MS, "test_r2_mean"] > 0
    assert abs(control.loc[PLANTED_MS, "test_pearson_r_mean"]) < 0.1
    events = api.open_store(cfg, "epochs")
    np.testing.assert_allclose(np.diff(events["onset"].values), 0.5)  # the grid, not words
    assert set(events["label"].values) == {"grid"}


@pytest.mark.slow
def test_whisper_embeddings_are_decoded_at_the_planted_lag(decoding_standin, work):
    root, csv = decoding_standin
    cfg = small_config(
        root,
        csv,
        work,
        "whisper_embedding",
        model={"name": "ridge", "params": {}},
        targets={"pca_dim": 10, "min_train_freq": 3},
    )
    planted, control = train_pair(cfg)
    report("whisper_embedding", planted, control, "test_pairwise_accuracy_mean")
    assert planted.loc[PLANTED_MS, "test_pairwise_accuracy_mean"] >= 0.58
    assert abs(control.loc[PLANTED_MS, "test_pairwise_accuracy_mean"] - 0.5) < 0.03
    assert "test_word_avg_auc_roc_mean" in planted.columns
    targets = api.open_store(cfg, "targets")
    missing = sorted(set(word_table(Dataset(root))["word_idx"]) - set(targets["word"].values))
    assert missing == targets.attrs["dropped_words"] == [1561]  # 4314 is after 600 s
    # word-task epochs are shared with every other word task
    assert (
        api.open_store(cfg, "epochs").attrs["key"]
        == api.open_store(cfg.replace({"task": "word_embedding"}), "epochs").attrs["key"]
    )


@pytest.mark.parametrize(
    "task, columns",
    [
        ("part_of_speech", ("macro_roc_auc", "macro_f1", "balanced_accuracy", "cross_entropy")),
        ("surprisal", ("pearson_r", "r2", "mse")),
        ("surprisal_class", ("macro_roc_auc", "macro_f1")),
        ("sentence_onset", ("roc_auc", "f1", "balanced_accuracy")),
    ],
)
@pytest.mark.slow
def test_unplanted_tasks_train_and_report(decoding_standin, work, task, columns):
    root, csv = decoding_standin
    cfg = small_config(
        root,
        csv,
        work,
        task,
        model={"name": "mlp", "params": {"hidden": [16]}},
        training={"epochs": 3},
    )
    result = api.train(cfg, **QUIET)
    perf = result.performance
    headline = registry.tasks.get(task)().headline
    print(f"\n{task}: {headline} at {PLANTED_MS} ms {perf[headline + '_mean'].iloc[0]:.3f}")
    for split in ("train", "val", "test"):
        for col in columns:
            assert f"{split}_{col}_mean" in perf.columns
    assert np.isfinite(perf[f"{headline}_mean"]).all()
    if task in ("part_of_speech", "surprisal_class"):
        confusion = pd.read_csv(result.run_dir / "confusion_matrix.csv")
        classes = registry.tasks.get(task)().class_names
        assert list(confusion["true"]) == list(classes)
        n_test = api.open_store(cfg, "latents").sizes["word"]
        assert confusion[[f"pred_{c}" for c in classes]].to_numpy().sum() == n_test
    if task == "surprisal_class":  # thresholds from each training fold: targets per fold
        assert api.open_store(cfg, "targets")["target"].dims == ("fold", "word", "dim")
    if task == "sentence_onset":  # binary tasks write a confusion matrix too
        confusion = pd.read_csv(result.run_dir / "confusion_matrix.csv")
        assert list(confusion["true"]) == ["negative", "positive"]
        n_test = api.open_store(cfg, "latents").sizes["word"]
        assert confusion[["pred_negative", "pred_positive"]].to_numpy().sum() == n_test
        labels = api.open_store(cfg, "epochs")["label"].values
        assert 4.5 <= (labels == "inside").sum() / (labels == "onset").sum() <= 5.5


def test_balanced_class_weights_come_from_the_training_fold(decoding_standin, work):
    root, csv = decoding_standin
    cfg = small_config(root, csv, work, "content_word", task_params={"class_weight": "balanced"})
    api.build_features(cfg, **QUIET)
    targets = api.open_store(cfg, "targets")["target"].values  # [fold, word, (label, weight)]
    from podbench.features.build import build_features
    from podbench.train.inputs import prepare

    inputs = prepare(cfg, build_features(cfg, **QUIET))
    assert targets.shape[0] == 3 and targets.shape[2] == 2
    for fold in inputs.folds:
        label, weight = inputs.y[fold.number - 1][:, 0], inputs.y[fold.number - 1][:, 1]
        train = label[fold.train]
        expected = np.where(
            label == 1,
            len(train) / (2 * train.sum()),
            len(train) / (2 * (len(train) - train.sum())),
        )
        np.testing.assert_allclose(weight, expected, rtol=1e-6)
        np.testing.assert_allclose(
            np.sum(weight[fold.train] * (train == 1)),
            np.sum(weight[fold.train] * (train == 0)),
            rtol=1e-5,
        )


PLUGIN = '''
"""A task in one module: the number of letters of each word (regression)."""
import numpy as np

from podbench.data.dataset import word_table
from podbench.registry import register_task
from podbench.tasks.common import RegressionTask


@register_task("word_length")
class WordLength(RegressionTask):
    def target_sources(self, cfg, dataset):
        return [dataset.transcript_path]

    def values(self, cfg, dataset):
        words = word_table(dataset)
        letters = words["word"].map(lambda w: sum(ch.isalpha() for ch in w))
        return words[["word_idx", "word"]].assign(value=letters.astype(float))
'''


def test_a_task_is_one_module_plus_one_yaml(decoding_standin, work, tmp_path, monkeypatch):
    root, csv = decoding_standin
    (tmp_path / "word_length_task.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yml = tmp_path / "word_length.yml"
    yml.write_text(
        yaml.safe_dump(
            {
                "plugins": ["word_length_task"],
                "task": "word_length",
                "trial_name": "word_length",
                "data": {"root": str(root), "electrodes": str(csv), **SMALL},
                "model": {"name": "mlp", "params": {"hidden": [16]}, "members": 1},
                "training": {"epochs": 3, "patience": 5, "n_folds": 3},
                "output": {"stores": str(work / "stores"), "results": str(work / "results")},
            }
        )
    )
    cfg = config.load(yml)
    perf = api.train(cfg, **QUIET).performance
    assert {"test_pearson_r_mean", "test_r2_mean", "val_mse_mean"} <= set(perf.columns)
    assert "word_length" in registry.tasks.names()


EVENTS_PLUGIN = '''
"""A task with events of its own in one module: every other word, keyed by its keying."""
from podbench.data.dataset import word_table
from podbench.registry import register_task
from podbench.tasks.common import EventTargetsKeying, RegressionTask


class EveryOtherWordKeying(EventTargetsKeying):
    def events(self, cfg):
        return {"kind": "every_other_word"}


@register_task("every_other_word")
class EveryOtherWord(RegressionTask):
    word_events = False
    keying_class = EveryOtherWordKeying

    def events(self, cfg, dataset):
        return word_table(dataset).iloc[::2]

    def target_sources(self, cfg, dataset):
        return [dataset.transcript_path]

    def values(self, cfg, dataset):
        words = self.events(cfg, dataset)
        return words[["word_idx", "word"]].assign(value=words["start"].diff().fillna(0.0))
'''


def test_a_task_keys_its_own_events_from_its_module(decoding_standin, work, tmp_path, monkeypatch):
    """The keying a task's module names is what the store layer hashes: its own events get
    an epochs store of their own, built from them; the word tasks share theirs."""
    from podbench.features.keys import stage_keys

    root, csv = decoding_standin
    (tmp_path / "every_other_word_task.py").write_text(EVENTS_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    raw = {
        "plugins": ["every_other_word_task"],
        "data": {"root": str(root), "electrodes": str(csv), **SMALL},
        "output": {"stores": str(work / "stores"), "results": str(work / "results")},
    }
    own = config.from_dict({**raw, "task": "every_other_word"})
    word_tasks = {
        stage_keys(config.from_dict({**raw, "task": task}))["epochs"]
        for task in ("content_word", "surprisal")
    }
    assert len(word_tasks) == 1 and stage_keys(own)["epochs"] not in word_tasks
    features = api.build_features(own, **QUIET)
    words = word_table(Dataset(root))
    built = set(features.open("epochs")["word"].values)
    assert built and built <= set(words["word_idx"].iloc[::2])


# --------------------------------------------------------------------------- several tasks


@pytest.mark.slow
def test_several_tasks_share_features_and_pack_where_shapes_allow(decoding_standin, work):
    """word_embedding and whisper_embedding (vector heads of width 8) train as lanes of one
    program, content_word (a binary head) in its own; each result equals its task alone."""
    from podbench.train.run import program_signature

    root, csv = decoding_standin
    cfg = small_config(
        root,
        csv,
        work,
        ["word_embedding", "whisper_embedding", "content_word"],
        trial_name="multi",
        model={"name": "mlp", "params": {"hidden": [16]}},
        targets={"pca_dim": 8, "min_train_freq": 3},
        training={"epochs": 3},
        task_params={"content_word": {"class_weight": "balanced"}},
    )
    singles = cfg.task_configs()
    assert [c.task for c in singles] == cfg.task
    assert (
        singles[2].task_params
        == {"class_weight": "balanced", "labels_csv": None, "parity": "podbench"}
        and singles[0].task_params == {}
    )
    signatures = [program_signature(c) for c in singles]
    assert signatures[0] == signatures[1] != signatures[2]
    lines = []
    results = api.train(cfg, log=lines.append)
    assert "3 tasks in 2 program(s): word_embedding + whisper_embedding; content_word" in lines
    assert [r.run_dir.parent.name for r in results] == ["multi"] * 3
    for name, result in zip(cfg.task, results):  # one closing table and results line per task
        assert sum(line.startswith(f"task {name} (") for line in lines) == 1
        assert f"results ({name}): {result.run_dir}" in lines
    assert "test_pairwise_accuracy_mean" in results[1].performance
    assert "test_roc_auc_mean" in results[2].performance
    assert sum(line.startswith("epochs") and "built" in line for line in lines) <= 1
    alone = api.train(singles[1].replace({"trial_name": "alone"}), **QUIET).performance
    packed = results[1].performance
    for col in ("test_pairwise_accuracy_mean", "test_cosine_sim_mean", "val_cosine_sim_mean"):
        np.testing.assert_allclose(packed[col], alone[col], rtol=0, atol=1e-5)
    again = api.train(cfg, **QUIET)
    assert all(r.skipped for r in again)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task": []}, "non-empty list"),
        ({"task": ["content_word", "content_word"]}, "listed twice"),
        ({"task": ["content_word", "nope"]}, "task\\[1\\]"),
        ({"task": ["content_word"], "task_params": {"surprisal": {}}}, "not a listed task"),
        (
            {
                "task": ["content_word", "surprisal"],
                "task_params": {"content_word": {"class_weight": 1}},
            },
            "task_params.content_word.class_weight",
        ),
    ],
)
def test_task_list_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict(raw)


# --------------------------------------------------------------------------- multimodal


def _performance(path: Path, lags, values, val=None) -> Path:
    path.mkdir(parents=True)
    pd.DataFrame(
        {
            "lags": lags,
            "test_pairwise_accuracy_mean": values,
            "val_pairwise_accuracy_mean": values if val is None else val,
            "test_cosine_sim_mean": 0.1,
        }
    ).to_csv(path / "lag_performance.csv", index=False)
    return path


def test_multimodal_harmonic_mean_by_lag(tmp_path):
    from click.testing import CliRunner

    from podbench import cli
    from podbench.experiments.multimodal import chosen_lag, multimodal_score

    word = _performance(tmp_path / "word", [-200, 0, 200, 400], [0.50, 0.51, 0.50, 0.5116])
    whisper = _performance(tmp_path / "whisper", [0, 200, 400, 600], [0.60, 0.70, 0.7074, 0.65])
    table = multimodal_score(word, whisper)
    assert list(table["lags"]) == [0, 200, 400]
    a, b = np.array([0.51, 0.50, 0.5116]), np.array([0.60, 0.70, 0.7074])
    np.testing.assert_allclose(table["multimodal_score"], 2 * a * b / (a + b))
    # validation equal to test here, so the reference's number is the one chosen
    assert chosen_lag(table)[:2] == (400, pytest.approx(0.5938, abs=1e-4))
    out = tmp_path / "mm.csv"
    result = CliRunner().invoke(
        cli.main, ["multimodal", str(word), str(whisper), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "lag chosen on validation: 400 ms" in result.output
    pd.testing.assert_frame_equal(pd.read_csv(out), table)
    (tmp_path / "bad").mkdir()
    pd.DataFrame({"lags": [0], "test_roc_auc_mean": [0.6]}).to_csv(
        tmp_path / "bad" / "lag_performance.csv", index=False
    )
    result = CliRunner().invoke(cli.main, ["multimodal", str(word), str(tmp_path / "bad")])
    assert result.exit_code == 2 and "test_pairwise_accuracy_mean" in result.output


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs/tasks").glob("*.yml")), ids=lambda p: p.stem
)
def test_task_configs_load(path):
    cfg = config.load(path)  # <task>.yml, or a variant <task>_<name>.yml
    assert path.stem.startswith(cfg.task) and cfg.task in registry.tasks.names()
    assert cfg.data.root == "data/podcast-standin-demo"
    assert cfg.data.electrodes == "responsive"  # the stand-in's ground truth, wherever it lies


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"task": "content_word", "task_params": {"class_weight": "yes"}},
            "task_params.class_weight",
        ),
        ({"task": "surprisal", "task_params": {"x": 1}}, "takes no parameters"),
        ({"task": "sentence_onset", "task_params": {"margin": -1}}, "task_params.margin"),
        ({"task": "loudness", "task_params": {"lowpass_hz": 300}}, "lowpass_hz"),
        ({"task": "loudness", "training": {"fold_type": "zero_shot"}}, "zero_shot"),
        ({"task": "part_of_speech", "model": {"name": "ridge"}}, "one logit per class"),
        ({"task": "content_word", "training": {"loss": "cosine"}}, "training.loss"),
    ],
)
def test_task_config_errors(raw, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict(raw)


def test_every_task_has_a_config():
    """Every built-in task (registered by podbench's own modules: plugin tasks that other
    tests register stay out) has its config in configs/tasks."""
    built_in = {
        name
        for name in registry.tasks.names()
        if registry.tasks.entry(name, "task").obj.__module__.startswith("podbench.")
    }
    shipped = {p.stem for p in (REPO / "configs/tasks").glob("*.yml") if p.stem in built_in}
    assert "content_word" in shipped and shipped == built_in - {"word_embedding"}


def test_ground_truth_content_labels_equal_the_task_targets(decoding_standin):
    root, _ = decoding_standin
    truth = json.loads((root / GROUND_TRUTH).read_text())
    content = registry.tasks.get("content_word")().values(
        config.from_dict({"task": "content_word"}), Dataset(root)
    )
    assert int(content["value"].sum()) == truth["n_content_words"]


def test_a_plugin_target_source_reads_its_validated_params(standin, tmp_path, monkeypatch):
    """The recipe of docs/extending.md ("Adding a target source"), from a tmp folder: its
    `targets.params` are validated against the dataclass it declares (an unknown key names
    the closest one, a value out of range its path), enter the targets key (two values, two
    keys) and reach the source; a built-in source, which declares none, refuses them."""
    import re

    from podbench.features.keys import stage_keys
    from podbench.tasks.base import task_for

    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()
    code = re.search(r"```python\n# letter_targets\.py\n(.*?)```", page, re.S)
    assert code, "docs/extending.md has no letter_targets.py block"
    (tmp_path / "letter_targets.py").write_text(code.group(1))
    monkeypatch.syspath_prepend(str(tmp_path))
    lags = {"lags": {"min": 0, "max": 400, "step": 200}}
    cfg = make_config(
        standin,
        tmp_path,
        plugins=["letter_targets"],
        data=lags,
        targets={"kind": "letters", "pca_dim": None, "params": {"dim": 8}},
    )
    assert cfg.targets.params == {"dim": 8, "seed": 0}  # defaults filled in
    other = cfg.replace({"targets.params.seed": 1})
    keys, other_keys = stage_keys(cfg), stage_keys(other)
    assert keys["targets"] != other_keys["targets"]
    assert keys["epochs"] == other_keys["epochs"]
    assert stage_keys(cfg.replace({"targets.params": {"dim": 8, "seed": 0}})) == keys
    with pytest.raises(
        ConfigError, match=r"targets\.params\.dimm'; did you mean 'targets\.params\.dim'"
    ):
        cfg.replace({"targets.params": {"dimm": 8}})
    with pytest.raises(ConfigError, match=r"targets\.params\.dim = 0: expected a value > 0"):
        cfg.replace({"targets.params.dim": 0})
    with pytest.raises(ConfigError, match=r"targets\.params = .*takes no parameters"):
        cfg.replace({"targets.kind": "arbitrary"})
    ds, _ = task_for(cfg).target_dataset(cfg, Dataset(standin), None)
    assert ds["target"].shape[1] == 8
