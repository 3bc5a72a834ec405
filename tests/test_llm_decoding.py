"""LLM decoding: the Flax GPT-2 against transformers' PyTorch forward, the token targets built
by hand, perplexity and top-k against an independent computation, and end-to-end training of
the brain prefix and the no-brain control on the stand-in (tiny random GPT-2 saved locally).

The planted-lag comparison does not pass, and is marked as an expected failure. Measured
(600-s stand-in, subjects 3, 6, 9; 3 folds; PITOM encoder with 32 filters, 8 prefix
embeddings, lr 1e-2, 20 epochs; test perplexity, mean over folds, uniform = 300):

    lag       brain   no-brain (encoder on zeros)
    -750 ms   296.7   299.1
     250 ms   301.3   298.9

A free learned constant prefix did worse (335 at both lags) than a brain prefix trained on
shuffled targets (297.7), so it measured optimisation rather than the brain; hence the control
is the encoder on an all-zero window. A stand-in with snr 4 gave brain 306.1 / 310.7 against
the same 299.1 / 298.9: the brain prefix fits the training words (train perplexity 220 at the
planted lag) but what it learns does not carry to the test words through a random 2-layer,
32-wide GPT-2 from ~850 training words. An MLP encoder (hidden 16) did worse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podbench import api
from podbench.data.dataset import Dataset, word_table
from podbench.errors import ConfigError

from .conftest import make_config

TRANSCRIPT = Path(__file__).parents[1] / "podbench/data/ds005574/stimuli/gpt2-xl/transcript.tsv"
QUIET = {"log": lambda s: None}
PLANTED_MS = 250
VOCAB = 300


def tiny_gpt2(out: Path, vocab: int = VOCAB, init: float = 0.02, seed: int = 0) -> Path:
    """A 2-layer random GPT-2 (n_embd 32) and a byte-level BPE tokenizer trained on the real
    transcript's words, saved with transformers like a Hugging Face `gpt2` directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    words = pd.read_csv(TRANSCRIPT, sep="\t", index_col=0).groupby("word_idx")["word"].first()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    tok.train_from_iterator([" ".join(words)], trainers.BpeTrainer(
        vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[end], show_progress=False))
    tokenizer = GPT2TokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end,
                                  unk_token=end)
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tokenizer),
                        n_positions=128, initializer_range=init,
                        bos_token_id=tok.token_to_id(end), eos_token_id=tok.token_to_id(end))
    GPT2LMHeadModel(config).save_pretrained(out)
    return out


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
    torch.save(GPT2LMHeadModel.from_pretrained(lm_dir).state_dict(),
               tmp_path / "pytorch_model.bin")
    ids = np.arange(20)[None] % VOCAB
    np.testing.assert_array_equal(np.asarray(load_gpt2(tmp_path)(ids)),
                                  np.asarray(load_gpt2(lm_dir)(ids)))


# --------------------------------------------------------------------------- targets and metrics

def test_word_tokens_by_hand():
    from podbench.tasks.llm_decoding import word_tokens

    word_idx = np.array([0, 1, 1, 2, 4])
    ids = [[5], [6, 7], [8], [], [9]]  # word 2's one transcript token has no LM token
    cols, counts = word_tokens(word_idx, ids, np.array([0, 1, 2, 4]), n_context=3, n_target=2)
    np.testing.assert_array_equal(counts, [1, 3, 0, 1])
    np.testing.assert_array_equal(cols[[0, 1, 3]], [[-1, -1, -1, 5, -1],
                                                    [-1, -1, 5, 6, 7],  # 8 is cut (2 targets)
                                                    [6, 7, 8, 9, -1]])


def test_targets_are_the_transcript_tokens(standin, tmp_path, lm_dir):
    """Every word's target ids re-encode to its tokens' text; contexts are the ids before."""
    from transformers import AutoTokenizer

    cfg = llm_config(standin, tmp_path, lm_dir)
    api.build_features(cfg, log=lambda s: None)
    targets = api.open_store(cfg, "targets")
    cols = targets["target"].values.astype(np.int64)
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    tokens = Dataset(standin).token_table()
    tokens["hftoken"] = pd.read_csv(Dataset(standin).transcript_path, sep="\t", index_col=0,
                                    dtype={"hftoken": str})["hftoken"]
    text = tokens.groupby("word_idx")["hftoken"].apply(
        lambda t: tokenizer.convert_tokens_to_string(list(t)))
    history, n_before = "", 0
    for r, w in enumerate(targets["word"].values):
        target = [i for i in cols[r, 32:] if i >= 0]
        context = [i for i in cols[r, :32] if i >= 0]
        assert 1 <= len(target) < 16  # no word of the stand-in is cut
        assert tokenizer.decode(target) == text.loc[w]
        assert len(context) == min(32, n_before)
        assert np.all(cols[r, :32 - len(context)] == -1)
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

    nll, rank = jax.jit(lambda s, i: token_scores(Head(), s, i))(jnp.asarray(states),
                                                                  jnp.asarray(ids))
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
    base = {"task": "llm_decoding", "trial_name": "llm_decoding",
            "task_params": {"lm_dir": str(lm_dir)},
            "data": {"lags": {"min": PLANTED_MS, "max": PLANTED_MS + 1, "step": 250},
                     **({"electrodes": str(csv)} if csv else {})},
            "model": {"name": "llm_prefix", "members": 1,
                      "params": {"encoder": "pitom", "encoder_params": {"filters": 16}}},
            "training": {"epochs": 2, "patience": 2, "n_folds": 3, "batch_size": 32}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return make_config(root, work, **base)


def test_llm_decoding_trains_and_reports(standin, tmp_path, lm_dir):
    cfg = llm_config(standin, tmp_path, lm_dir)
    perf = api.train(cfg, **QUIET).performance
    for key in ("test_perplexity", "test_cross_entropy", "test_top1_accuracy",
                "test_top5_accuracy", "test_top10_accuracy", "val_perplexity"):
        assert f"{key}_mean" in perf.columns
    np.testing.assert_allclose(perf["test_perplexity_fold_1"],
                               np.exp(perf["test_cross_entropy_fold_1"]), rtol=1e-6)
    assert np.isfinite(perf["test_perplexity_mean"]).all()
    top = perf[[f"test_top{k}_accuracy_mean" for k in (1, 5, 10)]].to_numpy()
    assert (np.diff(top, axis=1) >= 0).all() and (top[:, -1] > 0).all()


PREFIX = {"prefix_tokens": 8}  # one prefix embedding steers a random 2-layer GPT-2 too little


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "with this tiny random GPT-2 the brain prefix does not reach a lower test perplexity "
    "than the no-brain control at the planted lag (measurements in the module docstring)"))
def test_brain_prefix_beats_the_no_brain_control_at_the_planted_lag(decoding_standin, tmp_path,
                                                                      lm_dir):
    root, csv = decoding_standin
    cfg = llm_config(root, tmp_path, lm_dir, csv,
                     data={"lags": {"min": -750, "max": PLANTED_MS + 1, "step": 1000}},
                     model={"params": {"encoder": "pitom", "encoder_params": {"filters": 32},
                                       **PREFIX}},
                     training={"epochs": 20, "patience": 20, "lr": 1e-2})
    brain = api.train(cfg, **QUIET).performance.set_index("lags")["test_perplexity_mean"]
    control_cfg = cfg.replace({"model.params.prefix": "constant",
                               "trial_name": "llm_decoding_no_brain"})
    control = api.train(control_cfg, **QUIET).performance.set_index("lags")["test_perplexity_mean"]
    print(f"\ntest perplexity brain {brain.to_dict()}, no-brain {control.to_dict()}")
    assert brain[PLANTED_MS] < 0.97 * control[PLANTED_MS]
    assert brain[-750] > 0.99 * control[-750]


@pytest.mark.parametrize("raw, message", [
    ({"task_params": {"lm_dir": ""}}, "task_params.lm_dir: required"),
    ({"model": {"name": "pitom", "params": {}}}, "needs a decoder that feeds the language model"),
    ({"model": {"members": 3}}, "model.members = 3"),
    ({"model": {"params": {"prefix": "nothing"}}}, "model.params.prefix"),
    ({"model": {"params": {"encoder": "pitom", "encoder_params": {"filterz": 8}}}},
     "model.params.encoder_params"),
    ({"model": {"params": {"encoder": "nope"}}}, "model.params.encoder = 'nope': unknown model"),
])
def test_bad_llm_configs(standin, tmp_path, lm_dir, raw, message):
    with pytest.raises(ConfigError, match=message):
        llm_config(standin, tmp_path, lm_dir, **raw)


def test_missing_language_model_fails_before_any_store(standin, tmp_path):
    cfg = llm_config(standin, tmp_path, tmp_path / "no-gpt2")
    with pytest.raises(ConfigError, match="task_params.lm_dir = .*no-gpt2.*no config.json"):
        api.build_features(cfg, log=lambda s: None)
    assert not (tmp_path / "stores").exists()
