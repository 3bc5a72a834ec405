"""Tests of the synthetic ds005574 stand-in (podbench.data.synth)."""

import json
from pathlib import Path

import h5py
import mne
import mne_bids
import numpy as np
import pandas as pd
import pytest

import podbench
from podbench.data.synth import GROUND_TRUTH, LAYERS, SOURCE, TRANSCRIPT_SETS, synthesize
from podbench.errors import DataError

DURATION = 120
SUBJECTS = [1, 3]
SIDECARS = (
    "task-podcast_channels.tsv",
    "space-MNI152NLin2009aSym_electrodes.tsv",
    "space-MNI152NLin2009aSym_coordsystem.json",
    "space-Other_electrodes.tsv",
    "space-Other_coordsystem.json",
)
EXPECTED_GOOD = {1: 99, 3: 235}


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("standin"), subjects=SUBJECTS, duration=DURATION)


@pytest.fixture(scope="module")
def ground_truth(standin) -> dict:
    return json.loads((standin / GROUND_TRUTH).read_text())


def _bids_path(root: Path, subject: int) -> mne_bids.BIDSPath:
    return mne_bids.BIDSPath(
        root=root / "derivatives/ecogprep",
        subject=f"{subject:02d}",
        task="podcast",
        datatype="ieeg",
        description="highgamma",
        suffix="ieeg",
        extension=".fif",
        check=False,
    )


def _read_highgamma(root: Path, subject: int) -> mne.io.BaseRaw:
    return mne.io.read_raw_fif(_bids_path(root, subject).fpath, preload=True, verbose="error")


def _channels(subject: int) -> pd.DataFrame:
    label = f"sub-{subject:02d}"
    return pd.read_csv(
        SOURCE / label / "ieeg" / f"{label}_task-podcast_channels.tsv",
        sep="\t",
        encoding="utf-8-sig",
        dtype=str,
        keep_default_na=False,
    )


def _highgamma_data(root: Path, subject: int) -> np.ndarray:
    return _read_highgamma(root, subject).get_data()


def _responsive(ground_truth: dict, subject: int) -> list[str]:
    """Names of the subject's responsive channels."""
    prefix = f"sub-{subject:02d}:"
    return [
        name[len(prefix) :]
        for name in ground_truth["responsive_channels"]
        if name.startswith(prefix)
    ]


def _gpt2_transcript(root: Path) -> pd.DataFrame:
    return pd.read_csv(
        root / "stimuli/gpt2-xl/transcript.tsv", sep="\t", index_col=0, keep_default_na=False
    )


def _word_onsets(root: Path) -> np.ndarray:
    return _gpt2_transcript(root).groupby("word_idx")["start"].first().to_numpy()


def test_layout_and_verbatim_copies(standin):
    top_level = ("participants.tsv", "participants.json", "README", "CHANGES")
    for name in (*top_level, "stimuli/gpt2-xl/performance.json"):
        assert (standin / name).read_bytes() == (SOURCE / name).read_bytes(), name
    for subject in SUBJECTS:
        label = f"sub-{subject:02d}"
        for suffix in SIDECARS:
            name = f"{label}/ieeg/{label}_{suffix}"
            assert (standin / name).read_bytes() == (SOURCE / name).read_bytes(), name
        assert _bids_path(standin, subject).fpath.is_file()
        assert not (standin / label / "ieeg" / f"{label}_task-podcast_ieeg.edf").exists()
    assert (
        (standin / "sub-01/ieeg/sub-01_task-podcast_channels.tsv")
        .read_bytes()
        .startswith(b"\xef\xbb\xbf")
    )
    assert not (standin / "sub-02").exists()
    found = mne_bids.find_matching_paths(
        standin / "derivatives/ecogprep",
        tasks="podcast",
        descriptions="highgamma",
        extensions=".fif",
    )
    assert sorted(p.subject for p in found) == ["01", "03"]


def test_dataset_description(standin):
    real = json.loads((SOURCE / "dataset_description.json").read_text())
    made = json.loads((standin / "dataset_description.json").read_text())
    assert "stand-in" in made["Name"] and "ds005574" in made["Name"] and "podbench" in made["Name"]
    assert made["GeneratedBy"] == [{"Name": "podbench synth", "Version": podbench.__version__}]
    assert made["License"] == "CC0"
    assert {k: v for k, v in made.items() if k not in ("Name", "GeneratedBy")} == {
        k: v for k, v in real.items() if k != "Name"
    }


def test_recording_duration_rewritten(standin):
    for subject in SUBJECTS:
        name = f"sub-{subject:02d}/ieeg/sub-{subject:02d}_task-podcast_ieeg.json"
        real = json.loads((SOURCE / name).read_text())
        made = json.loads((standin / name).read_text())
        assert made["RecordingDuration"] == (DURATION * 512 - 1) / 512
        assert {k: v for k, v in made.items() if k != "RecordingDuration"} == {
            k: v for k, v in real.items() if k != "RecordingDuration"
        }


def test_transcripts_keep_rows_before_duration(standin):
    for name in TRANSCRIPT_SETS:
        relative = f"stimuli/{name}/transcript.tsv"
        header, *rows = (SOURCE / relative).read_text(encoding="utf-8").splitlines(keepends=True)
        start = header.rstrip("\n").split("\t").index("start")
        expected = header + "".join(r for r in rows if float(r.split("\t")[start]) < DURATION)
        assert (standin / relative).read_text(encoding="utf-8") == expected, name
    real = _gpt2_transcript(SOURCE)
    pd.testing.assert_frame_equal(_gpt2_transcript(standin), real[real["start"] < DURATION])


def test_features(standin, ground_truth):
    n_tokens = ground_truth["n_tokens"]
    with h5py.File(standin / "stimuli/gpt2-xl/features.hdf5", "r") as f:
        assert sorted(f) == sorted(f"layer-{i}" for i in LAYERS)
        layers = {i: f[f"layer-{i}"][()] for i in LAYERS}
    for values in layers.values():
        assert values.shape == (n_tokens, 1600) and values.dtype == np.float32
    the = np.flatnonzero(_gpt2_transcript(standin)["hftoken"] == "Ġthe")
    assert len(the) > 2

    def same_token_similarity(values):
        unit = values[the] / np.linalg.norm(values[the], axis=1, keepdims=True)
        return np.mean(unit @ unit.T)

    # layer 0 is mostly the token type, deeper layers more context
    assert same_token_similarity(layers[0]) > 0.9
    similarity = [same_token_similarity(layers[i]) for i in (0, 24, 48)]
    assert similarity == sorted(similarity, reverse=True)


def test_highgamma_derivatives(standin):
    for subject in SUBJECTS:
        raw = _read_highgamma(standin, subject)
        channels = _channels(subject)
        good = channels.loc[
            (channels["type"] == "ECOG") & (channels["status"] == "good"), "name"
        ].tolist()
        assert raw.ch_names == good and len(good) == EXPECTED_GOOD[subject]
        assert set(raw.get_channel_types()) == {"ecog"}
        assert raw.info["sfreq"] == 512 and raw.n_times == DURATION * 512
        assert raw.orig_format == "single"
        assert (
            raw.info["highpass"] == 70
            and raw.info["lowpass"] == 200
            and raw.info["line_freq"] == 60
        )
        label = f"sub-{subject:02d}"
        electrodes = pd.read_csv(
            SOURCE / label / "ieeg" / f"{label}_space-MNI152NLin2009aSym_electrodes.tsv", sep="\t"
        ).set_index("name")
        locs = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
        np.testing.assert_allclose(
            locs, electrodes.loc[good, ["x", "y", "z"]].to_numpy() / 1000, atol=1e-7
        )
        assert {ch["coord_frame"] for ch in raw.info["chs"]} == {
            mne.io.constants.FIFF.FIFFV_COORD_HEAD
        }
        data = raw.get_data()
        assert np.all(data > 0) and 1e-7 < np.median(data) < 1e-5


def test_ground_truth(standin, ground_truth):
    assert (
        ground_truth["latency_ms"] == 250.0
        and ground_truth["seed"] == 0
        and ground_truth["snr"] == 1.0
    )
    assert ground_truth["duration_s"] == DURATION and ground_truth["subjects"] == SUBJECTS
    assert ground_truth["podbench_version"] == podbench.__version__
    assert ground_truth["kernel"]["peak_ms"] == 250.0
    assert ground_truth["n_words"] == len(_word_onsets(standin))
    responsive = ground_truth["responsive_channels"]
    channel_order = [
        f"sub-{s:02d}:{name}" for s in SUBJECTS for name in _read_highgamma(standin, s).ch_names
    ]
    assert set(responsive) <= set(channel_order)
    assert responsive == sorted(responsive, key=channel_order.index)
    for subject in SUBJECTS:
        assert 0.08 < len(_responsive(ground_truth, subject)) / EXPECTED_GOOD[subject] < 0.16


def test_responsive_channels_show_evoked_response(standin, ground_truth):
    onsets = _word_onsets(standin)
    peak = np.round((onsets + 0.25) * 512).astype(int)
    before = np.round((onsets - 0.5) * 512).astype(int)
    usable = (before >= 0) & (peak < DURATION * 512)
    for subject in SUBJECTS:
        raw = _read_highgamma(standin, subject)
        data = raw.get_data()
        ratio = data[:, peak[usable]].mean(axis=1) / data[:, before[usable]].mean(axis=1)
        responsive = np.isin(raw.ch_names, _responsive(ground_truth, subject))
        assert ratio[responsive].mean() > ratio[~responsive].mean() + 0.08
        assert abs(ratio[~responsive].mean() - 1) < 0.05
        assert np.mean(ratio[responsive] > np.median(ratio[~responsive])) > 0.9


def _assert_same_standin(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for name in files:
        if name.suffix == ".fif":
            subject = int(name.parts[2][4:])
            np.testing.assert_array_equal(_highgamma_data(a, subject), _highgamma_data(b, subject))
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_deterministic(standin, tmp_path):
    _assert_same_standin(
        standin, synthesize(tmp_path / "again", subjects=SUBJECTS, duration=DURATION)
    )


def test_subject_independent_of_selection(standin, ground_truth, tmp_path):
    alone = synthesize(tmp_path / "alone", subjects=[1], duration=DURATION)
    np.testing.assert_array_equal(_highgamma_data(alone, 1), _highgamma_data(standin, 1))
    alone_truth = json.loads((alone / GROUND_TRUTH).read_text())
    assert alone_truth["responsive_channels"] == [
        f"sub-01:{name}" for name in _responsive(ground_truth, 1)
    ]


def test_other_seed_differs(standin, tmp_path):
    other = synthesize(tmp_path / "other", subjects=[1], duration=DURATION, seed=1)
    assert not np.array_equal(_highgamma_data(other, 1), _highgamma_data(standin, 1))


def test_snr_zero_removes_response(tmp_path):
    flat = synthesize(tmp_path / "flat", subjects=[1], duration=30, snr=0.0)
    evoked = synthesize(tmp_path / "evoked", subjects=[1], duration=30)
    truth = json.loads((evoked / GROUND_TRUTH).read_text())
    responsive = np.isin(_read_highgamma(flat, 1).ch_names, _responsive(truth, 1))
    flat_data, evoked_data = _highgamma_data(flat, 1), _highgamma_data(evoked, 1)
    np.testing.assert_array_equal(flat_data[~responsive], evoked_data[~responsive])
    assert not np.array_equal(flat_data[responsive], evoked_data[responsive])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subjects": [10]},
        {"subjects": [0]},
        {"subjects": []},
        {"duration": 0},
        {"duration": -5},
        {"duration": 1800.5},
    ],
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(DataError):
        synthesize(tmp_path / "out", **{"subjects": [1], "duration": 10, **kwargs})
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=str(tmp_path)):
        synthesize(tmp_path, subjects=[1], duration=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_overwrites_previous_standin(tmp_path):
    synthesize(tmp_path, subjects=[1, 2], duration=10)
    synthesize(tmp_path, subjects=[1], duration=10)
    assert not (tmp_path / "sub-02").exists()
    assert not _bids_path(tmp_path, 2).fpath.exists()
    assert json.loads((tmp_path / GROUND_TRUTH).read_text())["subjects"] == [1]


def test_raw_edf(tmp_path):
    out = synthesize(tmp_path, subjects=[2, 7], duration=20, raw=True)
    for subject, sfreq in ((2, 512.0), (7, 2048.0)):
        label = f"sub-{subject:02d}"
        edf_path = out / label / "ieeg" / f"{label}_task-podcast_ieeg.edf"
        edf = mne.io.read_raw_edf(edf_path, preload=True, verbose="error")
        rows = _channels(subject)["name"].tolist()
        assert edf.ch_names == [name for name in rows if name != "EDF Annotations"]
        assert edf.info["sfreq"] == sfreq and edf.n_times == 20 * sfreq
        assert (out / label / "ieeg" / f"{label}_task-podcast_channels.tsv").read_bytes() == (
            SOURCE / label / "ieeg" / f"{label}_task-podcast_channels.tsv"
        ).read_bytes()
    assert "EDF Annotations" in _channels(2)["name"].tolist()

    # the tutorial's high-gamma recipe recovers the derivative envelope from the raw EDF
    derivative = _read_highgamma(out, 2)
    edf = mne.io.read_raw_edf(
        out / "sub-02/ieeg/sub-02_task-podcast_ieeg.edf", preload=True, verbose="error"
    )
    edf.pick(derivative.ch_names).set_channel_types(dict.fromkeys(derivative.ch_names, "ecog"))
    edf.set_eeg_reference("average", ch_type="ecog", verbose="error")
    edf.notch_filter([60, 120, 180], verbose="error")
    edf.filter(70, 200, method="iir", verbose="error")
    edf.apply_hilbert(envelope=True)
    smooth = np.ones(64) / 64
    recovered = np.apply_along_axis(np.convolve, 1, edf.get_data(), smooth, "valid")[:, 512:-512]
    truth = np.apply_along_axis(np.convolve, 1, derivative.get_data(), smooth, "valid")[:, 512:-512]
    correlation = [np.corrcoef(r, t)[0, 1] for r, t in zip(recovered, truth)]
    assert np.median(correlation) > 0.6
    assert 0.8 < recovered.mean() / truth.mean() < 1.3


def test_raw_needs_whole_seconds(tmp_path):
    with pytest.raises(DataError, match="whole seconds"):
        synthesize(tmp_path / "out", subjects=[1], duration=10.5, raw=True)


def test_whisper_features(standin):
    transcript = pd.read_csv(
        standin / "stimuli/whisper-medium/transcript.tsv",
        sep="\t",
        index_col=0,
        keep_default_na=False,
    )
    with h5py.File(standin / "stimuli/whisper-medium/features.hdf5", "r") as f:
        assert list(f) == ["vectors"]
        vectors = f["vectors"][()]
    assert vectors.shape == (len(transcript), 1024) and vectors.dtype == np.float32
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    the = np.flatnonzero(transcript["word"] == "the")
    same = unit[the] @ unit[the].T
    assert same[np.triu_indices(len(the), 1)].mean() > 0.3  # a component per word type
    assert abs(np.mean(unit[: len(the)] @ unit[-len(the) :].T)) < 0.1


def test_audio(standin, ground_truth):
    from scipy.io import wavfile

    sr, data = wavfile.read(standin / "stimuli/podcast.wav", mmap=True)
    assert sr == 44100 and data.dtype == np.int16 and data.shape == (DURATION * 44100, 2)
    assert ground_truth["audio"]["sfreq"] == 44100
    # louder during words than in the pauses between them (the task's loudness, dB at 512 Hz)
    from podbench.data.audio import loudness_db

    db = loudness_db(standin / "stimuli/podcast.wav")
    words = (
        _gpt2_transcript(standin)
        .groupby("word_idx")
        .agg(start=("start", "first"), end=("end", "last"))
    )
    inside = np.zeros(len(db), bool)
    for a, b in zip(
        np.round(words["start"] * 512).astype(int), np.round(words["end"] * 512).astype(int)
    ):
        inside[a:b] = True
    assert db[inside].mean() > db[~inside].mean() + 3


def test_content_and_loudness_channels(standin, ground_truth):
    """Content channels respond more to content words; loudness channels track the loudness."""
    from podbench import config
    from podbench.data.audio import loudness_db
    from podbench.data.dataset import Dataset
    from podbench.tasks.content_word import ContentWord

    cfg = config.from_dict({"task": "content_word"})
    content = ContentWord().values(cfg, Dataset(standin)).set_index("word_idx")["value"]
    assert int(content.sum()) == ground_truth["n_content_words"]
    onsets = _gpt2_transcript(standin).groupby("word_idx")["start"].first()
    peak = np.round((onsets.to_numpy() + 0.25) * 512).astype(int)
    usable = peak < DURATION * 512
    is_content = content.reindex(onsets.index).to_numpy() == 1
    loud = loudness_db(standin / "stimuli/podcast.wav")
    delayed = np.r_[np.full(128, loud[0]), loud[:-128]]  # 250 ms later
    for subject in SUBJECTS:
        raw = _read_highgamma(standin, subject)
        log_env = np.log(raw.get_data())
        names = np.array(raw.ch_names)
        prefix = f"sub-{subject:02d}:"
        sets = {
            key: np.isin(
                names, [n[len(prefix) :] for n in ground_truth[key] if n.startswith(prefix)]
            )
            for key in ("responsive_channels", "content_channels", "loudness_channels")
        }
        assert not (sets["content_channels"] & ~sets["responsive_channels"]).any()
        assert not (sets["loudness_channels"] & ~sets["responsive_channels"]).any()
        assert 0.3 < sets["content_channels"].sum() / sets["responsive_channels"].sum() < 0.7
        at_peak = log_env[:, peak[usable]]
        difference = at_peak[:, is_content[usable]].mean(1) - at_peak[:, ~is_content[usable]].mean(
            1
        )
        others = sets["responsive_channels"] & ~sets["content_channels"]
        assert difference[sets["content_channels"]].mean() > difference[others].mean() + 0.2
        r = np.array([np.corrcoef(row, delayed)[0, 1] for row in log_env])
        others = sets["responsive_channels"] & ~sets["loudness_channels"]
        assert r[sets["loudness_channels"]].mean() > r[others].mean() + 0.1
