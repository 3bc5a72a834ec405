"""The ds005574 data layer on the real metadata and on stand-ins."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pytest

from podbench.data.dataset import Dataset, normalise_label, read_table, word_table
from podbench.data.recordings import electrodes_from_csv, open_recordings, resolve_subjects
from podbench.errors import DataError

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "podbench" / "data" / "ds005574"


def test_word_table_of_the_full_transcript():
    words = word_table(Dataset(PACKAGE_DATA))
    assert len(words) == 5136
    assert words["word_idx"].tolist() == list(range(5136))
    first = words.iloc[1]  # "one," is two GPT-2 tokens: first start, last end
    assert (first["word"], first["start"], first["end"]) == ("one,", 3.99, 4.19)
    assert words["start"].is_monotonic_increasing or (np.diff(words["start"]) < 0).sum() < 200
    assert words["word"].str.lower().str.strip(".,?!").nunique() > 1000


@pytest.mark.parametrize(
    "mode, expected", [("raw", "There's,"), ("lower", "there's,"), ("strip", "there's")]
)
def test_label_normalisation(mode, expected):
    assert normalise_label("There's,", mode) == expected


def test_channel_tables_with_and_without_bom():
    ds = Dataset(PACKAGE_DATA)
    with_bom = PACKAGE_DATA / "sub-01/ieeg/sub-01_task-podcast_channels.tsv"
    without = PACKAGE_DATA / "sub-02/ieeg/sub-02_task-podcast_channels.tsv"
    assert (
        with_bom.read_bytes()[:3] == b"\xef\xbb\xbf" and without.read_bytes()[:3] != b"\xef\xbb\xbf"
    )
    for sub, n_good in ((1, 99), (2, 90), (3, 235)):
        table = ds.channels(sub)
        assert list(table.columns[:3]) == ["name", "type", "units"]
        assert ((table["type"] == "ECOG") & (table["status"] == "good")).sum() == n_good


def test_participants_map_nyu_ids():
    ds = Dataset(PACKAGE_DATA)
    assert ds.subjects == list(range(1, 10))
    assert ds.nyu_to_subject()[717] == 3
    with pytest.raises(DataError, match="subject 12 is not in"):
        ds.check_subjects([1, 12])


def test_malformed_and_missing_tables(tmp_path):
    bad = tmp_path / "participants.tsv"
    bad.write_text("participant\tnyu\nsub-01\t661\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['participant_id', 'nyu_id'\]"):
        _ = Dataset(tmp_path).participants
    with pytest.raises(DataError, match="missing file"):
        read_table(tmp_path / "nope.tsv", ("a",))
    with pytest.raises(DataError, match="no such directory"):
        Dataset(tmp_path / "absent")


def test_derivatives_are_the_good_ecog_channels(standin):
    ds = Dataset(standin)
    recs = open_recordings(ds, [1, 3], None)
    assert [len(r.channels) for r in recs] == [99, 235]
    assert all(r.sfreq == 512 and r.n_times == 120 * 512 for r in recs)
    table = ds.channels(3)
    good = table[(table["type"] == "ECOG") & (table["status"] == "good")]["name"].tolist()
    assert recs[1].channels == good


def test_selection_by_regex_and_by_csv(standin, tmp_path):
    ds = Dataset(standin)
    by_regex = open_recordings(ds, [3], "LG[AB]")
    assert by_regex[0].channels and all(c.startswith(("LGA", "LGB")) for c in by_regex[0].channels)
    csv = tmp_path / "sig.csv"
    csv.write_text("subject,elec\n717,LGA10\n661,G2\n717,LGB70\n")
    assert electrodes_from_csv(ds, csv) == {3: ["LGA10", "LGB70"], 1: ["G2"]}
    assert resolve_subjects(ds, "all", str(csv)) == [1, 3]
    recs = open_recordings(ds, [1, 3], str(csv))
    assert [r.channels for r in recs] == [["G2"], ["LGA10", "LGB70"]]  # recording order
    data = recs[1].read(100, 200)
    raw = mne.io.read_raw_fif(ds.derivative_path(3), verbose="error")
    np.testing.assert_array_equal(
        data, raw.get_data(picks=["LGA10", "LGB70"], start=100, stop=200).astype(np.float32)
    )


def test_selection_errors(standin, tmp_path):
    ds = Dataset(standin)
    with pytest.raises(DataError, match="selects no good channel of sub-01"):
        open_recordings(ds, [1], "^XYZ")
    csv = tmp_path / "sig.csv"
    csv.write_text("subject,elec\n999,G2\n")
    with pytest.raises(DataError, match="subject '?999'? is not a nyu_id"):
        electrodes_from_csv(ds, csv)
    csv.write_text("subject,elec\n661,G1\n")  # G1 is marked bad in channels.tsv
    with pytest.raises(DataError, match=r"no good channel\(s\) \['G1'\]"):
        open_recordings(ds, [1], str(csv))
    with pytest.raises(DataError, match="missing highgamma recording of sub-02"):
        ds.derivative_path(2)


def test_different_sampling_rates_are_refused(standin, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(standin, copy)
    path = Dataset(copy).derivative_path(3)
    raw = mne.io.read_raw_fif(path, preload=True, verbose="error").resample(256, verbose="error")
    raw.save(path, overwrite=True, verbose="error")
    with pytest.raises(DataError, match="different sampling rates.*sub-03 256 Hz"):
        open_recordings(Dataset(copy), [1, 3], None)


def test_raw_edf_to_high_gamma_path(tmp_path):
    from podbench.data.highgamma import write_highgamma
    from podbench.data.synth import synthesize

    root = synthesize(tmp_path / "ds", subjects=[7], duration=20, raw=True)  # EDF at 2048 Hz
    [path] = write_highgamma(root, log=lambda s: None)
    ds = Dataset(root)
    assert ds.derivative_path(7, "podbench_highgamma") == path
    recomputed = open_recordings(ds, [7], None, "podbench_highgamma")[0]
    planted = open_recordings(ds, [7], None, "highgamma")[0]
    assert recomputed.channels == planted.channels and recomputed.sfreq == 512
    assert recomputed.n_times == planted.n_times == 20 * 512
    smooth = np.ones(64) / 64
    a = recomputed.read(0, recomputed.n_times)
    b = planted.read(0, planted.n_times)
    corr = [
        np.corrcoef(
            np.convolve(x, smooth, "valid")[512:-512], np.convolve(y, smooth, "valid")[512:-512]
        )[0, 1]
        for x, y in zip(a, b)
    ]
    assert np.median(corr) > 0.6  # the recipe recovers the planted envelope
    with pytest.raises(DataError, match="run `podbench highgamma"):
        Dataset(root).derivative_path(8, "podbench_highgamma")
