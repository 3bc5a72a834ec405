"""Parity with the reference (hassonlab/podcast-benchmark at e740044): the shipped configs
against a table of the reference's baseline settings, the reference's own sentence and word
tables read as they are, the validity mask at the podcast's end, and `task_params.parity:
reference` changing what it claims (negatives, stopping metric, ensemble, head, batch-mean AUC).
Unit-level: the real transcripts shipped with podbench and small arrays, no training."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics as skm
from flax import nnx
from scipy.special import expit, softmax

from podbench import config, registry
from podbench.data.dataset import Dataset, word_table
from podbench.data.synth import SOURCE
from podbench.errors import ConfigError, DataError
from podbench.features.epochs import geometry, valid_words
from podbench.models.layers import Call
from podbench.tasks import metrics
from podbench.tasks.common import batch_mean, host_batch_mean
from podbench.tasks.scoring import masked_auc, masked_macro_auc, weighted_f1
from podbench.tasks.sentence_onset import sentence_events, sentences

REPO = Path(__file__).resolve().parents[1]
REAL = Dataset(SOURCE)  # the real ds005574 transcripts shipped with podbench

# ------------------------------------------------------------------------ the reference's settings

# configs/baselines/neural_conv_decoder/<name>.yml (time_pooling_model/simple_model.yml,
# controls/llm_decoding/no_brain_data.yml) of hassonlab/podcast-benchmark at e740044; lags as
# (min, max, step) in ms with max excluded; num_average_samples None: one value per window;
# ABSENT: the reference has no such setting (nothing to compare).
ABSENT = "absent"
BASE = {
    "model.name": "pitom",
    "model.members": 10,
    "training.batch_size": 32,
    "training.epochs": 100,
    "training.patience": 10,
    "training.lr": 1e-3,
    "training.weight_decay": 1e-4,
    "training.n_folds": 5,
    "data.window_width": 0.625,
    "data.lags": (-1000, 1000, 200),
    "preprocess.params.num_average_samples": 32,
}
REFERENCE = {
    "gpt2": BASE,
    "glove": BASE,
    "arbitrary": BASE,
    "whisper_embedding": BASE,
    "content_noncontent": {
        **BASE,
        "model.members": 1,
        "training.epochs": 150,
        "training.patience": 100,
        "training.n_folds": 10,
    },
    "pos": {**BASE, "training.patience": 100, "preprocess.params.num_average_samples": 8},
    "gpt_surprise": {
        **BASE,
        "training.epochs": 50,
        "training.patience": 100,
        "training.n_folds": 10,
    },
    "gpt_surprise_multiclass": {
        **BASE,
        "training.epochs": 50,
        "training.patience": 100,
        "training.n_folds": 10,
    },
    "sentence_onset": {**BASE, "training.epochs": 50},
    "iu_boundaries": {**BASE, "training.epochs": 50},
    "simple_model": {
        **BASE,
        "model.name": "time_pool",
        "model.members": 1,
        "training.batch_size": 64,
        "training.epochs": 50,
        "training.lr": 5e-3,
        "data.window_width": 0.2,
        "preprocess.params.num_average_samples": None,
    },
    "llm_two_stage_multi stage 1": {**BASE, "training.weight_decay": 1e-6},
    "llm_two_stage_multi stage 2": {
        **BASE,
        "model.name": "llm_prefix",
        "training.batch_size": 16,
        "training.epochs": 50,
        "training.patience": 15,
        "training.lr": 1e-4,
        "training.weight_decay": 0.0,
    },
    "no_brain_data": {
        **BASE,
        "model.name": "llm_prefix",
        "model.members": ABSENT,
        "training.batch_size": 16,
        "training.epochs": 50,
        "training.patience": 15,
        "training.lr": 0.01,
        "training.weight_decay": 0.0,
        "preprocess.params.num_average_samples": ABSENT,
    },
}
SHIPPED = {  # podbench config -> the reference's baseline it carries
    "reference/gpt2.yml": "gpt2",
    "reference/gpt2_selected.yml": "gpt2",
    "reference/glove.yml": "glove",
    "reference/arbitrary.yml": "arbitrary",
    "tasks/whisper_embedding.yml": "whisper_embedding",
    "tasks/content_word.yml": "content_noncontent",
    "tasks/part_of_speech.yml": "pos",
    "tasks/surprisal.yml": "gpt_surprise",
    "tasks/surprisal_class.yml": "gpt_surprise_multiclass",
    "tasks/sentence_onset.yml": "sentence_onset",
    "tasks/iu_boundary.yml": "iu_boundaries",
    "tasks/loudness.yml": "simple_model",
    "tasks/loudness_reference.yml": "simple_model",
    "tasks/llm_embedding_pretraining.yml": "llm_two_stage_multi stage 1",
    "tasks/llm_decoding.yml": "llm_two_stage_multi stage 2",
    "controls/llm_decoding_no_brain.yml": "no_brain_data",
}
LINEAR = {
    "word_embedding": "gpt2",
    "llm_embedding_pretraining": "llm_two_stage_multi stage 1",
    **{Path(k).stem: v for k, v in SHIPPED.items() if k.startswith("tasks/")},
}
DATA_FIELDS = (
    "training.n_folds",
    "data.window_width",
    "data.lags",
    "preprocess.params.num_average_samples",
)
DECLARED = re.compile(r"^#\s+((?:data|training|model|preprocess)\.[\w.]+): .*\(the reference: ")


def settings(cfg: config.Config) -> dict:
    lags = cfg.data.lags
    return {
        "model.name": cfg.model.name,
        "model.members": cfg.model.members,
        "training.batch_size": cfg.training.batch_size,
        "training.epochs": cfg.training.epochs,
        "training.patience": cfg.training.patience,
        "training.lr": cfg.training.lr,
        "training.weight_decay": cfg.training.weight_decay,
        "training.n_folds": cfg.training.n_folds,
        "data.window_width": cfg.data.window_width,
        "data.lags": (lags.min, lags.max, lags.step),
        "preprocess.params.num_average_samples": cfg.preprocess.params.get("num_average_samples"),
    }


def differences(path: Path, reference: dict, fields) -> tuple[set, set]:
    """(fields where the config differs from the reference, fields its header declares)."""
    got = settings(config.load(path))
    differ = {f for f in fields if reference[f] != ABSENT and got[f] != reference[f]}
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    declared = {m.group(1) for line in header if (m := DECLARED.match(line))}
    return differ, declared


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_carry_the_reference_settings(name, monkeypatch):
    """Each difference from the reference's baseline is declared in the config's header
    (`#   <field>: <value> (the reference: <value>) - why`), and only real ones are."""
    monkeypatch.chdir(REPO)
    differ, declared = differences(REPO / "configs" / name, REFERENCE[SHIPPED[name]], BASE)
    assert differ == declared, f"{name}: differs on {sorted(differ)}, declares {sorted(declared)}"


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs/tasks/linear").glob("*.yml")), ids=lambda p: p.stem
)
def test_linear_twins_share_the_reference_windows_and_folds(path, monkeypatch):
    monkeypatch.chdir(REPO)
    differ, declared = differences(path, REFERENCE[LINEAR[path.stem]], DATA_FIELDS)
    assert differ == declared


def test_every_task_config_is_in_the_table():
    shipped = {f"tasks/{p.name}" for p in (REPO / "configs/tasks").glob("*.yml")}
    assert shipped <= set(SHIPPED)


# --------------------------------------------------------------------------- the reference's tables


def test_the_reference_sentence_table_loads_as_it_is(tmp_path):
    path = tmp_path / "all_sentences_podcast.csv"  # its format: index, text, onset, offset
    path.write_text(
        ",all_sentence,sentence_onset,sentence_offset\n"
        '0,"So there\'s some places.   ",6.592,11.942\n'
        '1,"This act ends up there.",13.092,17.902\n'
    )
    cfg = config.from_dict(
        {
            "task": "sentence_onset",
            "data": {"root": str(SOURCE)},
            "task_params": {"sentences_csv": str(path)},
        }
    )
    sent = sentences(cfg, REAL)
    np.testing.assert_allclose(
        sent[["onset", "end"]].to_numpy(), [[6.592, 11.942], [13.092, 17.902]]
    )
    plain = tmp_path / "plain.csv"
    plain.write_text("onset,offset\n13.092,17.902\n6.592,11.942\n")
    np.testing.assert_allclose(
        sentences(cfg.replace({"task_params.sentences_csv": str(plain)}), REAL)["onset"],
        [6.592, 13.092],
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence_onset,sentence_offset\n6.592,soon\n")
    with pytest.raises(DataError, match=r"bad.csv: column sentence_offset row 2 is 'soon'"):
        sentences(cfg.replace({"task_params.sentences_csv": str(bad)}), REAL)
    bad.write_text("begin,stop\n6.592,11.942\n")
    with pytest.raises(DataError, match="expected columns sentence_onset, sentence_offset"):
        sentences(cfg.replace({"task_params.sentences_csv": str(bad)}), REAL)


def reference_word_table(path: Path, rows: list[tuple[str, float, int, int]]) -> Path:
    """A table in the format of the reference's df_word_onset_with_pos_class.csv."""
    lines = [
        ",Unnamed: 0,index,word,onset,pos,is_content,pos_class,entropy,surprise,surprise_class"
    ]
    for i, (word, onset, content, pos) in enumerate(rows):
        lines.append(f"{i},{i},{i + 6},{word},{float(onset)!r},XX,{content},{pos},5.0,0.1,1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_reference_word_table_labels_content_and_part_of_speech(tmp_path):
    words = word_table(REAL).set_index("word_idx")
    rows = [
        ("monkey", words.loc[2, "start"] - 1e-12, 1, 0),  # float noise: still matched
        ("in", words.loc[3, "start"], 0, 4),
        ("go", words.loc[14, "start"], 1, 1),
        ("nowhere", 0.5, 1, 3),
    ]  # at no transcript word's onset
    path = reference_word_table(tmp_path / "df_word_onset_with_pos_class.csv", rows)
    for task, expected in (("content_word", [1.0, 0.0, 1.0]), ("part_of_speech", [0.0, 4.0, 1.0])):
        cfg = config.from_dict(
            {"task": task, "data": {"root": str(SOURCE)}, "task_params": {"labels_csv": str(path)}}
        )
        table = registry.tasks.get(task)().values(cfg, REAL)
        assert list(table["word_idx"]) == [2, 3, 14]
        assert list(table["word"]) == ["monkey", "in", "go"]  # the transcript's words
        assert list(table["value"]) == expected
        assert table.attrs["note"] == (
            "df_word_onset_with_pos_class.csv: 3 of 4 table words matched by onset; "
            f"{len(words) - 3} transcript words without a label, 1 table words at no "
            "transcript word's onset"
        )
    bad = reference_word_table(tmp_path / "bad.csv", [("in", words.loc[3, "start"], 0, 7)])
    cfg = config.from_dict({"task": "part_of_speech", "task_params": {"labels_csv": str(bad)}})
    with pytest.raises(DataError, match=r"bad.csv: column pos_class row 2 is '7'"):
        registry.tasks.get("part_of_speech")().values(cfg, REAL)
    with pytest.raises(ConfigError, match="task_params.labels_csv = '/no/such.csv': no such"):
        config.from_dict({"task": "content_word", "task_params": {"labels_csv": "/no/such.csv"}})


def test_a_labels_table_enters_the_keys_by_content(standin, tmp_path):
    from podbench.features.keys import stage_keys

    words = word_table(REAL).set_index("word_idx")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = reference_word_table(tmp_path / "a/words.csv", [("in", words.loc[3, "start"], 0, 4)])
    two = reference_word_table(tmp_path / "b/words.csv", [("in", words.loc[3, "start"], 0, 4)])

    def keys(path: Path) -> dict:
        return stage_keys(
            config.from_dict(
                {
                    "task": "content_word",
                    "data": {"root": str(standin)},
                    "task_params": {"labels_csv": str(path)},
                }
            )
        )

    assert keys(one) == keys(two)  # same content elsewhere: same stores and run id
    reference_word_table(two, [("in", words.loc[3, "start"], 1, 4)])
    other, first = keys(two), keys(one)
    assert other["targets"] != first["targets"] and other["epochs"] == first["epochs"]


# --------------------------------------------------------------------------- the validity mask


def test_the_podcasts_last_word_survives_the_standard_grid():
    """The reference's rule ends at the last lag run (800 ms), not the grid's end (1000)."""
    cfg = config.from_dict({"data": {"root": str(SOURCE)}})  # lags -1000..800 ms
    words = word_table(REAL)
    recording = SimpleNamespace(n_times=1800 * 512, sfreq=512.0)  # the podcast's 30 min
    keep = valid_words(words, [recording], cfg, geometry(cfg, 512.0))
    assert keep.sum() == 5134
    court = words.index[words["word"] == "court"][-1]
    last_time = (recording.n_times - 1) / recording.sfreq
    assert keep[court] and words.loc[court, "start"] + 1.0 + 0.3125 - 0.002 > last_time
    assert not keep[court + 1]  # "over": its last window would run past the recording


# --------------------------------------------------------------------------- parity: reference


def test_reference_negatives_are_drawn_per_sentence_with_room(tmp_path):
    path = tmp_path / "short.csv"  # sentences of 1, 1.3, 3 and 12 s
    path.write_text("sentence_onset,sentence_offset\n10,11\n20,21.3\n30,33\n40,52\n")
    cfg = config.from_dict(
        {
            "task": "sentence_onset",
            "data": {"root": str(SOURCE)},
            "task_params": {"sentences_csv": str(path), "parity": "reference"},
        }
    )
    events = sentence_events(cfg, REAL)
    inside = events[events["word"] == "inside"]
    # room = [onset + 0.75, offset - 0.625 - 0.001]: only the 3-s and 12-s sentences
    assert list(np.bincount(inside["sentence"], minlength=4)) == [0, 0, 5, 5]
    rng = np.random.default_rng(0)
    expected = np.sort(np.r_[rng.uniform(30.75, 33 - 0.626, 5), rng.uniform(40.75, 52 - 0.626, 5)])
    np.testing.assert_allclose(inside["start"], expected)
    podbench = sentence_events(cfg.replace({"task_params.parity": "podbench"}), REAL)
    assert (podbench["word"] == "inside").sum() == 5 * 4  # 5 x sentences, drawn over all
    with pytest.raises(DataError, match="no room for negatives"):
        path.write_text("sentence_onset,sentence_offset\n10,11\n")
        sentence_events(cfg, REAL)


def test_reference_stopping_metrics_are_batch_means():
    rng = np.random.default_rng(0)
    n, size = 100, 32  # batches of 32, 32, 32, 4; rows 90.. padded
    mask = (np.arange(n) < 90).astype(np.float32)
    logit = rng.normal(size=n).astype(np.float32)
    label = (rng.random(n) < 0.3).astype(np.float32)
    label[32:64] = 0.0  # a one-class batch counts 0.5, as in the reference
    batches = [slice(i, min(i + size, 90)) for i in range(0, 90, size)]

    def sk_auc(s):
        return 0.5 if len(set(label[s])) < 2 else skm.roc_auc_score(label[s], logit[s])

    expected = np.mean([sk_auc(s) for s in batches])
    got = batch_mean(masked_auc, jnp.asarray(logit), jnp.asarray(label), jnp.asarray(mask), size)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    host = host_batch_mean(metrics.roc_auc, logit[:90, None], label[:90, None], size)
    assert host == pytest.approx(expected, abs=1e-9)
    f1 = [
        skm.f1_score(label[s], logit[s] >= 0, average="weighted", zero_division=0) for s in batches
    ]
    got = batch_mean(weighted_f1, jnp.asarray(logit), jnp.asarray(label), jnp.asarray(mask), size)
    assert float(got) == pytest.approx(np.mean(f1), abs=1e-6)
    k = 5
    classes = rng.integers(0, k, n).astype(np.float32)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    got = batch_mean(
        masked_macro_auc, jnp.asarray(logits), jnp.asarray(classes), jnp.asarray(mask), size
    )
    host = host_batch_mean(metrics.macro_roc_auc, logits[:90], classes[:90, None], size)
    assert float(got) == pytest.approx(host, abs=1e-5)


@pytest.mark.parametrize("task", ["content_word", "part_of_speech", "sentence_onset"])
def test_parity_reference_switches_ensemble_stopping_head_and_keys(task, standin):
    from podbench.features.keys import stage_keys

    t = registry.tasks.get(task)()
    ours = config.from_dict(
        {"task": task, "data": {"root": str(standin)}, "model": {"ensemble": "joint", "members": 3}}
    )
    theirs = ours.replace({"task_params.parity": "reference"})
    rng = np.random.default_rng(1)
    members = rng.normal(size=(3, 40, 5 if task == "part_of_speech" else 1))
    # joint ensemble: the mean of the members' logits, or (reference) of their probabilities
    np.testing.assert_allclose(t.joint_ensemble(members, ours), members.mean(axis=0))
    mixed = t.joint_ensemble(members, theirs)
    if task == "part_of_speech":
        np.testing.assert_allclose(softmax(mixed, -1), softmax(members, -1).mean(0), rtol=1e-9)
    else:
        np.testing.assert_allclose(expit(mixed), expit(members).mean(0), rtol=1e-9)
    traced = t.group_combine(theirs)(jnp.asarray(members, jnp.float32))
    np.testing.assert_allclose(np.asarray(traced), mixed, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(t.group_combine(ours)(jnp.asarray(members))),
        members.mean(axis=0),
        rtol=1e-5,
        atol=1e-7,
    )
    # stopping: whole split by default, the reference's batch means with parity
    assert t.stopping(ours) == t.stop_value and t.stopping(theirs) != t.stop_value
    # head: a LayerNorm before the class softmax for class tasks
    assert t.model_head(ours) == t.head
    assert t.model_head(theirs) == ("classes_norm" if task == "part_of_speech" else t.head)
    # the batch-mean AUC beside the whole-split one
    y = rng.integers(0, members.shape[-1] if task == "part_of_speech" else 2, (40, 1))
    assert t.fold_metrics(members, y, None, None, ours, "test") == {}
    name = "macro_roc_auc" if task == "part_of_speech" else "roc_auc"
    assert list(t.fold_metrics(members, y, None, None, theirs, "test")) == [
        f"test_{name}_batch_mean"
    ]
    # other results, other programs: the switch enters the training key and the program key
    assert t.keying.program(ours) != t.keying.program(theirs)
    keys = stage_keys(ours), stage_keys(theirs)
    assert keys[0]["training"] != keys[1]["training"]
    assert (keys[0]["epochs"] != keys[1]["epochs"]) == (task == "sentence_onset")  # negatives


def test_the_reference_class_head_has_a_layernorm():
    from podbench.models.pitom import pitom

    params = registry.models.spec("pitom").params
    p = config.build_params(params, {"filters": 8}, "model.params")

    def build(head):
        return pitom(p, input_shape=(6, 40), output_dim=5, head=head, rngs=nnx.Rngs(0))

    plain, normed = build("classes"), build("classes_norm")

    def count(m):
        return sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))

    assert count(normed) - count(plain) == 2 * 5  # LayerNorm scale and bias
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6, 40)), jnp.float32)
    out = np.asarray(normed(x, Call(train=False)))
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-5)  # normalised logits
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-2)


def test_parity_is_a_strict_setting():
    with pytest.raises(ConfigError, match="task_params.parity"):
        config.from_dict({"task": "content_word", "task_params": {"parity": "exact"}})
    with pytest.raises(ConfigError, match="takes no parameters"):  # no parity mode of its own
        config.from_dict({"task": "surprisal", "task_params": {"parity": "reference"}})
