"""`podbench check-data`: stand-ins pass; damaged copies fail with one precise line each."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import mne
import pytest
from click.testing import CliRunner

from podbench.cli import main
from podbench.data.check import Checker, check_recordings
from podbench.data.dataset import Dataset
from podbench.errors import DataError
from podbench.features.build import build_features
from tests.helpers import make_config

FIF = "derivatives/ecogprep/sub-01/ieeg/sub-01_task-podcast_desc-highgamma_ieeg.fif"


def problems(root: Path, cfg=None) -> list[str]:
    checker = Checker(root)
    checker.run(cfg)
    return checker.problems


@pytest.fixture
def copy(standin, tmp_path) -> Path:
    """A private copy of the 120-s stand-in (subjects 1 and 3) to damage."""
    out = tmp_path / "ds"
    shutil.copytree(standin, out)
    return out


def test_standins_pass(standin, tmp_path):
    result = CliRunner().invoke(main, ["check-data", "--root", str(standin)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"  {FIF}: 99 channels x 61440 samples at 512 Hz" in lines
    assert "  stimuli/gpt2-xl/features.hdf5: 5 layers of (397, 1600)" in lines
    assert lines[-1].startswith("ok: 29 file(s) under ") and "stand-in's 120 s" in lines[-1]
    from podbench.data.synth import synthesize  # sub-07: a 2048-Hz raw EDF, 512-Hz derivative

    raw = synthesize(tmp_path / "raw", subjects=[7], duration=4, raw=True, dim=8)
    assert problems(raw) == []
    report = Checker(raw)
    report.run()
    assert "sub-07/ieeg/sub-07_task-podcast_ieeg.edf: 4 s, 2048 Hz" in report.report
    cfg = make_config(
        raw, tmp_path, data={"signal": "podbench_highgamma"}, targets={"kind": "arbitrary"}
    )
    hg = (
        raw
        / "derivatives/podbench-highgamma/sub-07/ieeg"
        / "sub-07_task-podcast_desc-highgamma_ieeg.fif"
    )
    assert problems(raw, cfg) == [
        f"{hg}: missing; expected the high gamma that `podbench highgamma --root {raw}` computes"
    ]
    from podbench.data.highgamma import write_highgamma

    write_highgamma(raw, log=lambda s: None)
    assert problems(raw, cfg) == []


def test_decoding_standin_passes_with_its_electrode_csv(decoding_standin):
    from podbench import config

    root, csv = decoding_standin
    assert problems(root) == []
    cfg = config.load(
        Path(__file__).parents[1] / "configs/demo.yml",
        [f"data.root={root}", f"data.electrodes={csv}"],
    )
    assert problems(root, cfg) == []


def test_config_checks_exactly_its_files(standin):
    from podbench import config

    cfg = config.load(
        Path(__file__).parents[1] / "configs/tasks/content_word.yml",
        [f"data.root={standin}", "data.electrodes=null"],
    )
    checker = Checker(standin)
    checker.run(cfg)
    assert checker.problems == []
    # participants.tsv, dataset_description.json, 2 subjects x (4 sidecars + fif), 2 transcripts
    assert checker.files == 2 + 2 * 5 + 2
    cfg = cfg.replace({"data.subjects": [1, 2]})
    assert problems(standin, cfg) == [
        f"{standin}/derivatives/ecogprep/sub-02/ieeg/sub-02_task-podcast_desc-highgamma_ieeg.fif: "
        "missing",
        f"{standin}/sub-02/ieeg/sub-02_space-MNI152NLin2009aSym_coordsystem.json: missing",
        f"{standin}/sub-02/ieeg/sub-02_space-MNI152NLin2009aSym_electrodes.tsv: missing",
        f"{standin}/sub-02/ieeg/sub-02_task-podcast_channels.tsv: missing",
        f"{standin}/sub-02/ieeg/sub-02_task-podcast_ieeg.json: missing",
    ]


def test_truncated_fif_is_one_line_and_stops_build_features(copy, tmp_path):
    path = copy / FIF
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    [line] = problems(copy)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: \d+ samples \(\d+ s at 512 Hz\); expected 61440 \(120 s: "
        rf"RecordingDuration at 512 Hz in {re.escape(str(copy))}/sub-01/ieeg/"
        r"sub-01_task-podcast_ieeg.json\) - truncated or wrong file\?",
        line,
    ), line
    result = CliRunner().invoke(main, ["check-data", "--root", str(copy)])
    assert result.exit_code == 2 and result.output.splitlines()[-1].startswith("1 problem(s)")
    cfg = make_config(copy, tmp_path, data={"subjects": [1, 3]}, targets={"kind": "arbitrary"})
    with pytest.raises(DataError, match=re.escape(f"{path}: ") + r"\d+ samples .* expected 61440"):
        build_features(cfg, log=lambda s: None)
    assert not [p for p in (tmp_path / "stores").glob("*/*") if p.is_dir()]  # nothing built


def test_fif_cut_inside_its_last_buffer(copy):
    path = copy / FIF
    data = path.read_bytes()
    path.write_bytes(data[:-2000])
    [line] = problems(copy)
    assert line.startswith(
        f"{path}: data truncated ({len(data) - 2000} bytes; reading sample 61439 of 61440 failed"
    )
    with pytest.raises(DataError, match="data truncated"):
        check_recordings(Dataset(copy), [1, 3], "highgamma")


def test_wrong_channel_count(copy):
    path = copy / FIF
    raw = mne.io.read_raw_fif(path, preload=True, verbose="error").drop_channels(["G2"])
    raw.save(path, overwrite=True, verbose="error")
    [line] = problems(copy)
    assert line == (
        f"{path}: 98 channels; expected the 99 good ECOG channels of "
        f"{copy}/sub-01/ieeg/sub-01_task-podcast_channels.tsv (missing ['G2'])"
    )


def test_missing_gpt2_layer(copy):
    with h5py.File(copy / "stimuli/gpt2-xl/features.hdf5", "a") as f:
        del f["layer-24"]
    [line] = problems(copy)
    assert line == (
        f"{copy}/stimuli/gpt2-xl/features.hdf5: no layer-24; expected layer-{{i}} "
        "for i in [0, 12, 24, 36, 48]"
    )


def test_transcript_with_missing_rows(copy):
    path = copy / "stimuli/gpt2-xl/transcript.tsv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-10]), encoding="utf-8")
    [line] = problems(copy)
    assert line == (
        f"{path}: 387 rows; expected 397 (the stand-in's 120 s "
        "(derivatives/podbench-synth/ground_truth.json))"
    )


def test_bom_and_participants(copy):
    channels = copy / "sub-01/ieeg/sub-01_task-podcast_channels.tsv"  # ds005574's has a BOM
    channels.write_bytes(channels.read_bytes()[3:])
    participants = copy / "participants.tsv"
    participants.write_text(participants.read_text().replace("717", "718"))
    found = problems(copy)
    assert found[0].startswith(f"{participants}: participants sub-01=661, sub-02=662, sub-03=718")
    assert "; expected sub-01=661, sub-02=662, sub-03=717" in found[0]
    assert f"{channels}: has no UTF-8 BOM; expected one, as in ds005574 1.0.2" in found


def test_electrode_csv_is_checked_against_the_root(copy):
    from podbench import config

    csv = copy / "sig.csv"
    csv.write_text("subject,elec\n661,G2\n999,G2\n717,NOPE\n")
    cfg = config.load(
        Path(__file__).parents[1] / "configs/demo.yml",
        [f"data.root={copy}", f"data.electrodes={csv}"],
    )
    [line] = problems(copy, cfg)
    assert line.startswith(f"data.electrodes {csv}: subject 999 is not a nyu_id")
    assert "sub-03 has no good channel(s) ['NOPE']" in line


def test_truncated_audio(copy):
    path = copy / "stimuli/podcast.wav"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    [line] = problems(copy)
    assert line == (
        f"{path}: cannot read it as a complete wav file ({len(data) // 2} bytes: "
        "mmap length is greater than file size)"
    )


@pytest.mark.parametrize(
    "removed",
    [
        ["stimuli/gpt2-xl/transcript.tsv"],
        ["stimuli/gpt2-xl/features.hdf5"],
        ["sub-03/ieeg/sub-03_task-podcast_channels.tsv"],
        ["derivatives/ecogprep/sub-03/ieeg/sub-03_task-podcast_desc-highgamma_ieeg.fif"],
    ],
)
def test_a_copy_missing_a_file_of_a_part_it_holds_fails(standin, tmp_path, removed):
    """Without --config: each file the layout lists for the parts present is required."""
    from .helpers import mirror

    root = mirror(standin, tmp_path / "ds", dict.fromkeys(removed))
    result = CliRunner().invoke(main, ["check-data", "--root", str(root)])
    assert result.exit_code == 2, result.output
    for rel in removed:
        assert f"problem: {root / rel}: missing" in result.output.splitlines(), result.output


def test_check_data_all_requires_every_file_of_the_dataset(standin, tmp_path):
    from podbench.data.layout import METADATA, known_sizes

    result = CliRunner().invoke(main, ["check-data", "--root", str(standin), "--all"])
    assert result.exit_code == 2 and "is a stand-in" in result.stderr, result.output
    root = tmp_path / "ds005574"
    shutil.copytree(METADATA, root, ignore=shutil.ignore_patterns("CITATION.md"))
    missing = [p for p in problems_all(root) if p.endswith(": missing")]
    assert len(missing) == sum(not (root / rel).is_file() for rel in known_sizes()) > 0


def problems_all(root: Path) -> list[str]:
    checker = Checker(root)
    checker.run(full=True)
    return checker.problems


def test_the_real_layout_knowledge_on_ds005574s_text_files(tmp_path):
    """podbench ships ds005574's text files verbatim: checked as the real dataset (no ground
    truth), they pass; a transcript missing rows is one line against the real row count."""
    from podbench.data.layout import METADATA

    root = tmp_path / "ds005574"
    shutil.copytree(METADATA, root, ignore=shutil.ignore_patterns("CITATION.md"))
    missing = [
        f"{root}/stimuli/gpt2-xl/features.hdf5: missing",  # parts of the transcripts
        f"{root}/stimuli/whisper-medium/features.hdf5: missing",
    ]
    assert problems(root) == [
        f"{root}: no recording (derivatives/ecogprep/sub-XX/ieeg/*.fif or sub-XX/ieeg/*.edf)",
        *missing,
    ]
    path = root / "stimuli/whisper-medium/transcript.tsv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-4]), encoding="utf-8")
    sidecar = root / "sub-07/ieeg/sub-07_task-podcast_ieeg.json"
    sidecar.write_text(sidecar.read_text().replace("2048.0", "512.0"))
    assert problems(root)[1:] == [
        f"{path}: 5130 rows; expected 5134 (ds005574 1.0.2)",
        f"{sidecar}: 703 bytes that differ from ds005574 1.0.2's; expected its 704 bytes "
        "(podbench/data/ds005574/sub-07/ieeg/sub-07_task-podcast_ieeg.json)",
        *missing,
    ]


def test_build_features_lists_every_bad_electrode_before_building(standin, tmp_path):
    csv = tmp_path / "sig.csv"
    csv.write_text("subject,elec\n661,G2\n999,G2\n661,G1\n717,NOPE\n")
    cfg = make_config(
        standin, tmp_path, data={"electrodes": str(csv)}, targets={"kind": "arbitrary"}
    )
    with pytest.raises(DataError) as err:
        build_features(cfg, log=lambda s: None)
    message = str(err.value)
    assert "subject 999 is not a nyu_id" in message
    assert "sub-01 has no good channel(s) ['G1']" in message and "(G1: bad)" in message
    assert "sub-03 has no good channel(s) ['NOPE']" in message and "(NOPE: not listed)" in message
    assert not [p for p in (tmp_path / "stores").glob("*/*") if p.is_dir()]
