"""LLM decoding: the Flax GPT-2 against transformers' PyTorch forward, the token targets built
by hand, perplexity and top-k against an independent computation, stage 1 -> stage 2 warm
starts, keys that follow the language model's files, and end-to-end training of the brain
prefix and the no-brain control on stand-ins (tiny GPT-2s saved locally).

Why the planted-lag comparison uses its own language model (`copy_gpt2`) and stand-in: with a
random 2-layer GPT-2 and a BPE vocabulary the brain prefix never beat the control (600-s
stand-in, 3 subjects, 3 folds, 20 epochs, uniform perplexity 300: brain 301.3 against 298.9 at
250 ms, with 8 prefix embeddings), for two reasons. A random LM has no path that carries an
early embedding to later positions' predictions, and its token embeddings are unrelated to
what the brain carries. Besides, the default stand-in's responses carry about 36 random
directions of a 1,600-d embedding, so even an LM with the right embeddings could read little
of it. `copy_gpt2` has a copy head (layer 0 attends to the prefix) and token embeddings made
from the stand-in's token vectors; the stand-in has 16-d embeddings. Measured so by the test
below (921 tokens; stage 1 12 epochs, stage 2 10), test mean over 3 folds:

    lag       stage 1 cosine   perplexity: brain   no-brain
    -750 ms   0.037            1363.6              1355.9
     250 ms   0.122             978.9              1366.3

With 20 epochs in each stage the brain prefix reached 619.8 against 1374.4 at 250 ms (1389.1
against 1370.4 at -750 ms). The control is above the uniform 921: the model's own path keeps
predicting the last token. An earlier version of the fixture, whose position marker shifted
LayerNorm's mean, gave a stage-1 cosine of 0.05 at PITOM's default dropout 0.2 against 0.18
at dropout 0, hence dropout 0 in stage 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podbench import api
from podbench.data.dataset import Dataset, word_table
from podbench.errors import ConfigError

from .helpers import VOCAB, make_config, tiny_gpt2

QUIET = {"log": lambda s: None}
PLANTED_MS = 250


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    """Weights drawn with sd 0.2: at GPT-2's 0.02 a 32-wide model's logits stay within about
    +-0.6, so no prefix can move its predictions far from uniform."""
    return tiny_gpt2(tmp_path_factory.mktemp("gpt2"), init=0.2)


# --------------------------------------------------------------------------- the language model


def test_flax_gpt2_equals_transformers(tmp_path):
    """Logits equal transformers' GPT2LMHeadModel (weights scaled up so the logits are far
    from zero), also with masked padding: real positions keep their logits."""
    import jax.numpy as jnp
    import torch
    from transformers import GPT2LMHeadModel

    from podbench.tasks.gpt2 import load_gpt2

    path = tiny_gpt2(tmp_path, init=0.3)
    ref = GPT2LMHeadModel.from_pretrained(path).eval()
    ids = np.random.default_rng(0).integers(0, VOCAB, size=(3, 40))
    with torch.no_grad():
        expected = ref(torch.tensor(ids)).logits.numpy()
    assert np.abs(expected).max() > 5
    lm = load_gpt2(path)
    np.testing.assert_allclose(np.asarray(lm(jnp.asarray(ids))), expected, atol=1e-4, rtol=0)

    # 5 padded slots in front of row 0: its real tokens see the same positions and context
    padded = np.concatenate([np.zeros((3, 5), np.int64), ids], axis=1)
    valid = np.ones(padded.shape, bool)
    valid[0, :5] = False
    states = lm.hidden(lm.embed(jnp.asarray(padded)), jnp.asarray(valid))
    np.testing.assert_allclose(np.asarray(lm.logits(states))[0, 5:], expected[0], atol=1e-4, rtol=0)


def test_gpt2_directory_errors_and_torch_checkpoints(tmp_path, lm_dir):
    import torch
    from transformers import GPT2LMHeadModel

    from podbench.tasks.gpt2 import load_gpt2

    with pytest.raises(ConfigError, match="no config.json"):
        load_gpt2(tmp_path)
    (tmp_path / "config.json").write_text((lm_dir / "config.json").read_text())
    with pytest.raises(ConfigError, match="neither model.safetensors nor pytorch_model.bin"):
        load_gpt2(tmp_path)
    # the same weights as pytorch_model.bin (the older Hugging Face format: a torch state dict)
    torch.save(GPT2LMHeadModel.from_pretrained(lm_dir).state_dict(), tmp_path / "pytorch_model.bin")
    ids = np.arange(20)[None] % VOCAB
    np.testing.assert_array_equal(
        np.asarray(load_gpt2(tmp_path)(ids)), np.asarray(load_gpt2(lm_dir)(ids))
    )


# --------------------------------------------------------------------------- targets and metrics


def test_word_tokens_by_hand():
    from podbench.tasks.llm_decoding import word_tokens

    word_idx = np.array([0, 1, 1, 2, 4])
    ids = [[5], [6, 7], [8], [], [9]]  # word 2's one transcript token has no LM token
    cols, counts = word_tokens(word_idx, ids, np.array([0, 1, 2, 4]), n_context=3, n_target=2)
    np.testing.assert_array_equal(counts, [1, 3, 0, 1])
    np.testing.assert_array_equal(
        cols[[0, 1, 3]],
        [
            [-1, -1, -1, 5, -1],
            [-1, -1, 5, 6, 7],  # 8 is cut (2 targets)
            [6, 7, 8, 9, -1],
        ],
    )


def test_targets_are_the_transcript_tokens(standin, tmp_path, lm_dir):
    """Every word's target ids re-encode to its tokens' text; contexts are the ids before."""
    from transformers import AutoTokenizer

    cfg = llm_config(standin, tmp_path, lm_dir)
    api.build_features(cfg, log=lambda s: None)
    targets = api.open_store(cfg, "targets")
    cols = targets["target"].values.astype(np.int64)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    tokens = Dataset(standin).token_table()
    tokens["hftoken"] = pd.read_csv(
        Dataset(standin).transcript_path, sep="\t", index_col=0, dtype={"hftoken": str}
    )["hftoken"]
    text = tokens.groupby("word_idx")["hftoken"].apply(
        lambda t: tokenizer.convert_tokens_to_string(list(t))
    )
    history, n_before = "", 0
    for r, w in enumerate(targets["word"].values):
        target = [i for i in cols[r, 32:] if i >= 0]
        context = [i for i in cols[r, :32] if i >= 0]
        assert 1 <= len(target) < 16  # no word of the stand-in is cut
        assert tokenizer.decode(target) == text.loc[w]
        assert len(context) == min(32, n_before)
        assert np.all(cols[r, : 32 - len(context)] == -1)
        assert history.endswith(tokenizer.decode(context))
        history, n_before = history + text.loc[w], n_before + len(target)
    assert len(targets["word"]) == len(word_table(Dataset(standin)))
    assert targets.attrs["dropped_words"] == [] and targets.attrs["cut_words"] == 0


def test_perplexity_is_exp_of_token_cross_entropy():
    """Split metrics from per-token outputs equal an independent log-softmax computation."""
    import jax
    import jax.numpy as jnp
    from scipy.special import log_softmax

    from podbench.models.llm_prefix import token_scores
    from podbench.tasks.llm_decoding import LlmDecoding

    rng = np.random.default_rng(0)
    n, t, vocab = 50, 4, 40
    states = rng.normal(size=(n, t, 8)).astype(np.float32)
    wte = rng.normal(size=(vocab, 8)).astype(np.float32)
    ids = rng.integers(0, vocab, size=(n, t))
    lengths = rng.integers(1, t + 1, size=n)
    valid = np.arange(t)[None] < lengths[:, None]

    class Head:
        def logits(self, h):
            return h @ jnp.asarray(wte).T

    nll, rank = jax.jit(lambda s, i: token_scores(Head(), s, i))(
        jnp.asarray(states), jnp.asarray(ids)
    )
    pred = np.concatenate([np.where(valid, nll, 0), np.where(valid, rank, 0)], axis=1)
    y = np.concatenate([np.full((n, 3), 7), np.where(valid, ids, -1)], axis=1).astype(np.float32)
    got = LlmDecoding().split_metrics(pred, y)

    log_p = log_softmax((states.astype(np.float64) @ wte.T.astype(np.float64)), axis=-1)
    true = np.take_along_axis(log_p, ids[..., None], axis=-1)[..., 0]
    ce = -true[valid].mean()
    assert got["cross_entropy"] == pytest.approx(ce, rel=1e-5)
    assert got["perplexity"] == pytest.approx(np.exp(ce), rel=1e-5)
    order = np.argsort(-log_p, axis=-1, kind="stable")
    for k in (1, 5, 10):
        hit = (order[..., :k] == ids[..., None]).any(axis=-1)
        assert got[f"top{k}_accuracy"] == pytest.approx(hit[valid].mean(), abs=1e-12)


# --------------------------------------------------------------------------- end to end


def llm_config(root: Path, work: Path, lm_dir: Path, csv: Path | None = None, **sections):
    base = {
        "task": "llm_decoding",
        "trial_name": "llm_decoding",
        "task_params": {"lm_dir": str(lm_dir)},
        "data": {
            "lags": {"min": PLANTED_MS, "max": PLANTED_MS + 1, "step": 250},
            **({"electrodes": str(csv)} if csv else {}),
        },
        "model": {
            "name": "llm_prefix",
            "members": 1,
            "params": {"encoder": "pitom", "encoder_params": {"filters": 16}},
        },
        "training": {"epochs": 2, "patience": 2, "n_folds": 3, "batch_size": 32},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values} if isinstance(values, dict) else values
    return make_config(root, work, **base)


def test_llm_decoding_trains_and_reports(standin, tmp_path, lm_dir):
    cfg = llm_config(standin, tmp_path, lm_dir)
    perf = api.train(cfg, **QUIET).performance
    for key in (
        "test_perplexity",
        "test_cross_entropy",
        "test_top1_accuracy",
        "test_top5_accuracy",
        "test_top10_accuracy",
        "val_perplexity",
    ):
        assert f"{key}_mean" in perf.columns
    np.testing.assert_allclose(
        perf["test_perplexity_fold_1"], np.exp(perf["test_cross_entropy_fold_1"]), rtol=1e-6
    )
    assert np.isfinite(perf["test_perplexity_mean"]).all()
    top = perf[[f"test_top{k}_accuracy_mean" for k in (1, 5, 10)]].to_numpy()
    assert (np.diff(top, axis=1) >= 0).all() and (top[:, -1] > 0).all()


def test_a_saved_llm_decoding_run_predicts_what_it_scored(standin, tmp_path, lm_dir):
    """api.load_run restores the brain prefix with the task's frozen language model: the
    restored model's test predictions are the ones the run wrote."""
    result = api.train(llm_config(standin, tmp_path, lm_dir, training={"epochs": 1}), **QUIET)
    run = api.load_run(result.run_dir)
    preds = run.model.predict()  # [lane, member, word, out]
    saved = run.predictions("test")["prediction"]
    folds = {f.number: f for f in run.model.inputs.folds}
    for i, lane in run.model.lanes.iterrows():
        test = folds[lane["fold"]].test
        scored = saved.sel(lag=lane["lag"], fold=lane["fold"], member=str(lane["member"]))
        np.testing.assert_allclose(preds[i, 0, test], scored.values[test], rtol=1e-5, atol=1e-4)
    assert len(run.model.lanes) == 3


def copy_gpt2(standin: Path, out: Path, width: int = 32, seed: int = 0) -> Path:
    """A word-level GPT-2 that can read a prefix, saved like a Hugging Face directory.

    Vocabulary: <|endoftext|>, the byte alphabet and every GPT-2 token of the stand-in's
    transcript (so each word's tokens are its own). Input embeddings: each token's mean
    layer-0 stand-in feature (its fixed type vector, which the planted responses carry), in
    its first `dim` dimensions (randomly projected to width - 2 where wider), centred, mean
    norm 1. Layer 0 is a copy head, as trained LMs have and a random one lacks: every
    position attends to position 0 (marked in its position embedding's last two dimensions)
    and adds its LayerNorm'd first `dim` dimensions twice over; the rest of the weights are
    GPT-2's random 0.02 initialisation.
    """
    import h5py
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    rows = pd.read_csv(
        standin / "stimuli/gpt2-xl/transcript.tsv", sep="\t", index_col=0, dtype={"hftoken": str}
    )
    with h5py.File(standin / "stimuli/gpt2-xl/features.hdf5", "r") as f:
        features = f["layer-0"][()].astype(np.float64)
    rng = np.random.default_rng(seed)
    if features.shape[1] > width - 2:
        features = features @ (
            rng.standard_normal((features.shape[1], width - 2)) / np.sqrt(features.shape[1])
        )
    dim = features.shape[1]
    end = "<|endoftext|>"
    vocab = {end: 0}
    for token in sorted(pre_tokenizers.ByteLevel.alphabet()) + sorted(set(rows["hftoken"])):
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    GPT2TokenizerFast(
        tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end
    ).save_pretrained(out)

    ids = rows["hftoken"].map(vocab).to_numpy()
    sums = np.zeros((len(vocab), dim))
    np.add.at(sums, ids, features)
    counts = np.bincount(ids, minlength=len(vocab))
    emb = rng.standard_normal((len(vocab), dim))  # tokens never said
    emb[counts > 0] = sums[counts > 0] / counts[counts > 0, None]
    emb -= emb.mean(axis=0)
    emb /= np.sqrt((emb**2).sum(axis=1).mean())
    first = np.arange(dim)
    new = {
        "wte": np.zeros((len(vocab), width)),
        "wpe": np.zeros((128, width)),
        "attn": np.zeros((width, 3 * width)),
        "attn_bias": np.zeros(3 * width),
        "proj": np.zeros((width, width)),
    }
    new["wte"][:, :dim] = emb
    new["wpe"][0, -2:] = [-2.0, 2.0]  # marks position 0 (mean 0: LayerNorm keeps the rest)
    new["attn_bias"][0] = 5.0  # every query is the same ...
    new["attn"][-1, width] = 5.0  # ... and matches position 0's key
    new["attn"][first, 2 * width + first] = 1.0  # values: the first dim dimensions
    new["proj"][first, first] = 2.0
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            n_layer=2,
            n_embd=width,
            n_head=1,
            vocab_size=len(vocab),
            n_positions=128,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    names = {
        "wte": "wte.weight",
        "wpe": "wpe.weight",
        "attn": "h.0.attn.c_attn.weight",
        "attn_bias": "h.0.attn.c_attn.bias",
        "proj": "h.0.attn.c_proj.weight",
    }
    state = model.state_dict()
    with torch.no_grad():
        for short, name in names.items():
            state[f"transformer.{name}"].copy_(torch.tensor(new[short], dtype=torch.float32))
        state["transformer.h.0.attn.c_proj.bias"].zero_()
        state["transformer.h.0.mlp.c_proj.weight"].zero_()
    model.save_pretrained(out)
    return out


def test_copy_gpt2_reads_its_prefix(tmp_path, standin):
    """The fixture's premise: a token's own embedding as the prefix makes it one of the most
    likely next tokens after any context; an all-zero prefix leaves it anywhere."""
    import jax.numpy as jnp

    from podbench.tasks.gpt2 import load_gpt2

    lm = load_gpt2(copy_gpt2(standin, tmp_path / "lm"))
    wte = np.asarray(lm.wte.embedding[...])
    rng = np.random.default_rng(0)
    context = lm.embed(rng.integers(0, len(wte), size=(64, 12)))
    target = rng.integers(0, len(wte), size=64)

    def ranks(prefix):
        embeds = jnp.concatenate([jnp.asarray(prefix)[:, None], context], axis=1)
        logits = np.asarray(lm.logits(lm.hidden(embeds)[:, -1]))
        return (logits > logits[np.arange(64), target][:, None]).sum(axis=1)

    assert (ranks(wte[target]) < 5).mean() > 0.75
    assert np.median(ranks(np.zeros_like(wte[target]))) > len(wte) / 4


@pytest.fixture(scope="module")
def small_dim_standin(tmp_path_factory) -> tuple[Path, Path]:
    """The decoding stand-in with 16-d stand-in embeddings: the responsive channels (about
    36) then carry the whole embedding, not 36 random directions of 1,600."""
    from podbench.data.synth import responsive_electrode_csv, synthesize

    out = tmp_path_factory.mktemp("dim16") / "ds"
    synthesize(out, subjects=[3, 6, 9], duration=600, dim=16)
    return out, responsive_electrode_csv(out)


@pytest.mark.slow
def test_two_stage_brain_prefix_beats_the_no_brain_control_at_the_planted_lag(
    small_dim_standin, tmp_path
):
    """Stage 1 regresses the mean token embedding above chance at the planted lag only; stage
    2 from it reaches a lower test perplexity than the no-brain control (trained the same way,
    on the same folds) at the planted lag, and not before the word."""
    root, csv = small_dim_standin
    lm = copy_gpt2(root, tmp_path / "lm")
    lags = {"lags": {"min": -750, "max": PLANTED_MS + 1, "step": 1000}}
    stage_one = llm_config(
        root,
        tmp_path,
        lm,
        csv,
        data=lags,
        task="llm_embedding_pretraining",
        trial_name="stage_one",
        model={"name": "pitom", "params": {"filters": 32, "dropout": 0.0}},
        training={"epochs": 12, "patience": 12, "lr": 1e-3},
    )
    first = api.train(stage_one, **QUIET)
    cosine = first.performance.set_index("lags")["test_cosine_sim_mean"]
    assert cosine[PLANTED_MS] > 0.1 and cosine[-750] < 0.5 * cosine[PLANTED_MS]

    cfg = llm_config(
        root,
        tmp_path,
        lm,
        csv,
        data=lags,
        model={
            "params": {
                "encoder": "pitom",
                "encoder_params": {"filters": 32},
                "encoder_init": str(first.run_dir),
            }
        },
        training={"epochs": 10, "patience": 10, "lr": 1e-2},
    )
    brain = api.train(cfg, **QUIET).performance.set_index("lags")["test_perplexity_mean"]
    control_cfg = cfg.replace(
        {"model.params.prefix": "constant", "trial_name": "llm_decoding_no_brain"}
    )
    control = api.train(control_cfg, **QUIET).performance.set_index("lags")["test_perplexity_mean"]
    print(
        f"\nstage 1 test cosine {cosine.to_dict()}; test perplexity brain {brain.to_dict()}, "
        f"no-brain {control.to_dict()}"
    )
    assert brain[PLANTED_MS] < 0.9 * control[PLANTED_MS]
    assert brain[-750] > 0.98 * control[-750]


def stage_one_config(root: Path, work: Path, lm_dir: Path, **sections):
    return llm_config(
        root,
        work,
        lm_dir,
        task="llm_embedding_pretraining",
        trial_name="stage_one",
        model={"name": "pitom", "params": {"filters": 16}},
        **sections,
    )


def test_stage_one_targets_are_mean_token_embeddings(standin, tmp_path, lm_dir):
    """Stage 1's targets: the mean wte row of each word's target tokens; its linear baseline
    trains."""
    from podbench.tasks.gpt2 import token_embeddings

    llm = llm_config(standin, tmp_path, lm_dir)
    api.build_features(llm, log=lambda s: None)
    ids = api.open_store(llm, "targets")["target"].values.astype(np.int64)[:, 32:]
    stage_one = stage_one_config(standin, tmp_path, lm_dir)
    api.build_features(stage_one, log=lambda s: None)
    got = api.open_store(stage_one, "targets")["target"].values
    wte = token_embeddings(lm_dir)
    expected = np.stack([wte[row[row >= 0]].mean(axis=0) for row in ids])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    # its linear baseline (ridge to the mean embedding) trains and scores
    linear = stage_one.replace(
        {
            "model.name": "linear",
            "model.params": {"alphas": [1.0, 1e3]},
            "trial_name": "stage_one_linear",
        }
    )
    perf = api.train(linear, **QUIET).performance
    assert np.isfinite(perf[["test_cosine_sim_mean", "test_mse_mean"]].to_numpy()).all()


@pytest.fixture(scope="module")
def stage_one_run(standin, tmp_path_factory, lm_dir):
    """A stage-1 run at -250 and 250 ms (2 epochs), and its config."""
    work = tmp_path_factory.mktemp("stage_one")
    cfg = stage_one_config(
        standin, work, lm_dir, data={"lags": {"min": -250, "max": PLANTED_MS + 1, "step": 500}}
    )
    return cfg, api.train(cfg, **QUIET)


def test_stage_two_starts_from_stage_one_of_the_same_lag_and_fold(
    standin, tmp_path, lm_dir, stage_one_run
):
    """encoder_init (a results folder or the stage-1 config): each lane's encoder is the
    stage-1 lane's of its (lag, fold); the stage-1 run enters the training key by content."""
    import yaml

    from podbench.features.keys import stage_keys
    from podbench.train.inputs import merge_inputs, prepare
    from podbench.train.lanes import lane_point, lay_out
    from podbench.train.warm import warm_start

    stage_one, first = stage_one_run
    by_folder = llm_config(
        standin,
        tmp_path,
        lm_dir,
        data={"lags": {"min": PLANTED_MS, "max": PLANTED_MS + 1, "step": 500}},
        model={
            "params": {
                "encoder": "pitom",
                "encoder_params": {"filters": 16},
                "encoder_init": str(first.run_dir),
            }
        },
    )
    yml = tmp_path / "stage_one.yml"
    yml.write_text(yaml.safe_dump(stage_one.to_dict()))
    by_config = by_folder.replace({"model.params.encoder_init": str(yml)})
    assert stage_keys(by_folder)["training"] == stage_keys(by_config)["training"]
    no_init = by_folder.replace({"model.params.encoder_init": ""})
    assert stage_keys(no_init)["training"] != stage_keys(by_folder)["training"]

    inputs = prepare(by_folder, api.build_features(by_folder, log=lambda s: None))
    table = lay_out(inputs.lags, inputs.folds, 1, 1, [lane_point(by_folder)])
    start = warm_start(by_folder, table, merge_inputs([inputs]))
    saved = api.load_run(first.run_dir).model
    for row, (lag, fold) in enumerate(zip(table.lag_ms, table.fold)):
        lane = int(np.flatnonzero((saved.lanes["lag"] == lag) & (saved.lanes["fold"] == fold))[0])
        for part in ("params", "rest"):
            for name, value in saved.best_state()[part].items():
                np.testing.assert_array_equal(start[part]["['encoder']" + name][row], value[lane])
    perf = api.train(by_config, **QUIET).performance
    assert np.isfinite(perf["test_perplexity_mean"]).all()

    # stage 1 lacks a lag stage 2 asks for
    wider = lay_out([-750, PLANTED_MS], inputs.folds, 1, 1, [lane_point(by_folder)])
    with pytest.raises(ConfigError, match=r"no lanes at lags \[-750\]"):
        warm_start(by_folder, wider, merge_inputs([inputs]))


def test_shipped_two_stage_configs_fit_together(monkeypatch):
    """The documentation's recipe (docs/user_guide/tasks.md): the shipped llm_decoding config
    (and its control) accept the shipped stage-1 config as encoder_init; both read the same
    words, latents and folds."""
    from podbench import config

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    stage_one = config.load("configs/tasks/llm_embedding_pretraining.yml")
    init = ["model.params.encoder_init=configs/tasks/llm_embedding_pretraining.yml"]
    for path in ("configs/tasks/llm_decoding.yml", "configs/controls/llm_decoding_no_brain.yml"):
        stage_two = config.load(path, init)
        assert stage_two.data == stage_one.data and stage_two.preprocess == stage_one.preprocess
        assert stage_two.task_params == stage_one.task_params
        for field in ("n_folds", "fold_type", "val_fraction"):
            assert getattr(stage_two.training, field) == getattr(stage_one.training, field)


def test_bad_stage_one_runs(standin, tmp_path, lm_dir, stage_one_run):
    import shutil

    import yaml

    first = stage_one_run[1]
    other = tmp_path / "other_task"
    shutil.copytree(first.run_dir, other)
    raw = yaml.safe_load((other / "config.yml").read_text())
    (other / "config.yml").write_text(yaml.safe_dump({**raw, "task": "llm_decoding"}))
    loop = tmp_path / "loop.yml"  # a stage-2 config that names itself
    loop.write_text(
        yaml.safe_dump(
            {
                "task": "llm_decoding",
                "model": {"name": "llm_prefix", "params": {"encoder_init": str(loop)}},
            }
        )
    )
    init = {"encoder": "pitom", "encoder_params": {"filters": 16}}
    for params, message in [
        ({"encoder_init": str(tmp_path / "nowhere")}, "neither a stage-1 config file nor"),
        ({"encoder_init": str(tmp_path / "stage_one.yml")}, "neither a stage-1 config file nor"),
        ({"encoder_init": str(other)}, "that run is task 'llm_decoding'"),
        ({"encoder_init": str(loop)}, "that run is task 'llm_decoding'"),
        (
            {"encoder_init": str(first.run_dir), "encoder_params": {"filters": 8}},
            "that run trained 'pitom' with",
        ),
        ({"encoder_init": str(first.run_dir), "prefix_tokens": 2}, "prefix_tokens = 2"),
    ]:
        with pytest.raises(ConfigError, match=message):
            llm_config(standin, tmp_path, lm_dir, model={"params": {**init, **params}})


def test_training_key_follows_the_language_models_files(standin, tmp_path, lm_dir):
    """The same GPT-2 in another folder gives the same keys; other weights another key."""
    import shutil

    import torch
    from transformers import GPT2LMHeadModel

    from podbench.features.keys import stage_keys

    copy = tmp_path / "elsewhere"
    shutil.copytree(lm_dir, copy)
    here, there = (stage_keys(llm_config(standin, tmp_path, d)) for d in (lm_dir, copy))
    assert here == there
    model = GPT2LMHeadModel.from_pretrained(copy)
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight.mul_(2.0)
    model.save_pretrained(copy)
    changed = stage_keys(llm_config(standin, tmp_path, copy))
    assert changed["training"] != here["training"] and changed["targets"] == here["targets"]


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"task_params": {"lm_dir": ""}}, "task_params.lm_dir: required"),
        (
            {"model": {"name": "pitom", "params": {}}},
            "needs a decoder that feeds the language model",
        ),
        ({"model": {"members": 3}}, "model.members = 3"),
        ({"model": {"params": {"prefix": "nothing"}}}, "model.params.prefix"),
        (
            {"model": {"params": {"encoder": "pitom", "encoder_params": {"filterz": 8}}}},
            "model.params.encoder_params",
        ),
        (
            {"model": {"params": {"encoder": "nope"}}},
            "model.params.encoder = 'nope': unknown model",
        ),
    ],
)
def test_bad_llm_configs(standin, tmp_path, lm_dir, raw, message):
    with pytest.raises(ConfigError, match=message):
        llm_config(standin, tmp_path, lm_dir, **raw)


def test_missing_language_model_fails_before_any_store(standin, tmp_path):
    cfg = llm_config(standin, tmp_path, tmp_path / "no-gpt2")
    with pytest.raises(ConfigError, match="task_params.lm_dir = .*no-gpt2.*no config.json"):
        api.build_features(cfg, log=lambda s: None)
    assert not (tmp_path / "stores").exists()
