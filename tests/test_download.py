"""`podbench download`: the exact file list of shipped configs, and the openneuro-py call."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from podbench import config
from podbench.cli import main
from podbench.data.download import download
from podbench.data.layout import known_sizes, plan_for_config, plan_for_parts
from podbench.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
TOP = [
    ".bidsignore",
    "CHANGES",
    "README",
    "dataset_description.json",
    "participants.json",
    "participants.tsv",
]


def per_subject(subjects, recording):
    """Hand-written per-subject paths: the four sidecars and the recording."""
    files = []
    for n in subjects:
        s = f"sub-{n:02d}"
        files += [
            f"{s}/ieeg/{s}_task-podcast_ieeg.json",
            f"{s}/ieeg/{s}_task-podcast_channels.tsv",
            f"{s}/ieeg/{s}_space-MNI152NLin2009aSym_electrodes.tsv",
            f"{s}/ieeg/{s}_space-MNI152NLin2009aSym_coordsystem.json",
            recording.format(s=s),
        ]
    return files


HIGHGAMMA = "derivatives/ecogprep/{s}/ieeg/{s}_task-podcast_desc-highgamma_ieeg.fif"
GPT2 = ["stimuli/gpt2-xl/transcript.tsv", "stimuli/gpt2-xl/features.hdf5"]


def dry_run(*args) -> list[str]:
    result = CliRunner().invoke(main, ["download", *args, "--to", "data/ds005574", "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def listed(lines: list[str]) -> list[str]:
    return [
        line.strip().split("  ", 1)[1]
        for line in lines
        if "total:" not in line and not line.startswith("note:")
    ]


def test_demo_config_lists_the_highgamma_of_all_nine_and_gpt2():
    lines = dry_run("--config", str(REPO / "configs/demo.yml"))
    want = TOP + per_subject(range(1, 10), HIGHGAMMA) + GPT2
    assert listed(lines) == sorted(want)
    total = sum(known_sizes()[p] for p in want)
    assert round(total / 1e8) == 64  # 9 high-gamma derivatives 4.7 GB + GPT-2 features 1.7 GB
    assert lines[-2] == (
        f"   {total / 1e9:.1f} GB  total: 53 files of ds005574 1.0.2 into data/ds005574"
    )
    assert "1.7 GB  stimuli/gpt2-xl/features.hdf5" in " ".join(lines)
    assert lines[-1].startswith("note: data.electrodes 'responsive' names a stand-in's")
    assert "all nine subjects" in lines[-1]


def test_reference_gpt2_with_the_significant_electrodes_csv_skips_sub_02(tmp_path):
    csv = tmp_path / "all_subject_sig.csv"  # a few electrodes of the 8 subjects the reference uses
    csv.write_text(
        "subject,elec\n661,G2\n717,LGA2\n723,LSF2\n741,GA2\n742,G2\n743,G3\n763,G2\n798,G2\n"
    )
    lines = dry_run(
        "--config", str(REPO / "configs/reference/gpt2.yml"), "--set", f"data.electrodes={csv}"
    )
    want = TOP + per_subject([1, 3, 4, 5, 6, 7, 8, 9], HIGHGAMMA) + GPT2
    assert listed(lines) == sorted(want)
    total = sum(known_sizes()[p] for p in want)
    assert f"{total / 1e9:.1f} GB  total: {len(want)} files" in lines[-1]


def test_reference_gpt2_with_its_own_selection_needs_no_table():
    lines = dry_run("--config", str(REPO / "configs/reference/gpt2_selected.yml"))
    assert listed(lines) == sorted(TOP + per_subject(range(1, 10), HIGHGAMMA) + GPT2)
    assert not [line for line in lines if line.startswith("note:")]


def test_task_configs_list_their_stimuli(tmp_path):
    content = dry_run("--config", str(REPO / "configs/tasks/content_word.yml"))
    assert listed(content) == sorted(
        TOP
        + per_subject(range(1, 10), HIGHGAMMA)
        + ["stimuli/gpt2-xl/transcript.tsv", "stimuli/syntactic/transcript.tsv"]
    )
    whisper = dry_run(
        "--config",
        str(REPO / "configs/tasks/whisper_embedding.yml"),
        "--set",
        "data.subjects=[3]",
        "--set",
        "data.signal=broadband",
    )
    assert listed(whisper) == sorted(
        TOP
        + per_subject([3], "derivatives/ecogprep/{s}/ieeg/{s}_task-podcast_ieeg.fif")
        + [
            "stimuli/gpt2-xl/transcript.tsv",
            "stimuli/whisper-medium/transcript.tsv",
            "stimuli/whisper-medium/features.hdf5",
        ]
    )
    several = plan_for_config(
        config.load(
            REPO / "configs/demo.yml",
            ["data.subjects=[8]", "data.signal=podbench_highgamma", "task=[loudness, surprisal]"],
        )
    )
    assert several.files == sorted(
        TOP
        + per_subject([8], "{s}/ieeg/{s}_task-podcast_ieeg.edf")
        + ["stimuli/gpt2-xl/transcript.tsv", "stimuli/podcast.wav"]
    )
    assert any("podbench highgamma" in n for n in several.notes)


def test_iu_boundary_config_lists_the_recordings_its_task_declares():
    """iu_boundary reads no stimulus file of ds005574 (its boundary table is not part of it)."""
    lines = dry_run("--config", str(REPO / "configs/tasks/iu_boundary.yml"))
    assert listed(lines) == sorted(TOP + per_subject(range(1, 10), HIGHGAMMA))


PLUGIN_TASKS = '''
from podbench.registry import register_task
from podbench.tasks.surprisal import Surprisal


@register_task("audio_surprisal",
               dataset_files=lambda cfg: ["stimuli/gpt2-xl/transcript.tsv", "stimuli/podcast.wav"])
class AudioSurprisal(Surprisal):
    """Surprisal, declaring that it also reads the audio."""


@register_task("undeclared_surprisal")
class UndeclaredSurprisal(Surprisal):
    """Surprisal, declaring no dataset files."""
'''


def test_a_plugin_task_declares_the_files_download_lists(tmp_path, monkeypatch):
    (tmp_path / "download_plugin_tasks.py").write_text(PLUGIN_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    config_path = tmp_path / "task.yml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "plugins": ["download_plugin_tasks"],
                "task": "audio_surprisal",
                "data": {"subjects": [3]},
            }
        )
    )
    lines = dry_run("--config", str(config_path))
    assert listed(lines) == sorted(
        TOP
        + per_subject([3], HIGHGAMMA)
        + ["stimuli/gpt2-xl/transcript.tsv", "stimuli/podcast.wav"]
    )
    result = CliRunner().invoke(
        main,
        [
            "download",
            "--config",
            str(config_path),
            "--set",
            "task=undeclared_surprisal",
            "--to",
            "x",
            "--dry-run",
        ],
    )
    assert result.exit_code == 2
    assert (
        "task 'undeclared_surprisal': podbench download does not know which files" in result.output
    )


def test_parts():
    plan = plan_for_parts(["highgamma", "stimuli"])
    assert len(plan.files) == 6 + 9 * 5 + 17  # 17 files under stimuli/
    assert "stimuli/whisper-medium/encoder.hdf5" in plan.files
    raw = plan_for_parts(["raw"])
    assert "sub-07/ieeg/sub-07_task-podcast_ieeg.edf" in raw.files
    assert raw.size("sub-07/ieeg/sub-07_task-podcast_ieeg.edf") == 1_017_481_984  # 2048 Hz
    with pytest.raises(
        ConfigError,
        match="--what eeg: expected a comma-separated list of highgamma, broadband, raw, stimuli",
    ):
        plan_for_parts(["eeg"])
    result = CliRunner().invoke(main, ["download", "--to", "x", "--dry-run"])
    assert result.exit_code == 2 and "give --config FILE or --what PARTS" in result.output


def test_electrode_csv_problems_are_listed_together_before_downloading(tmp_path):
    csv = tmp_path / "sig.csv"
    csv.write_text("subject,elec\n661,G2\n999,G2\n661,G1\n717,NOPE\n")
    result = CliRunner().invoke(
        main,
        [
            "download",
            "--config",
            str(REPO / "configs/demo.yml"),
            "--set",
            f"data.electrodes={csv}",
            "--to",
            "x",
            "--dry-run",
        ],
    )
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert "subject 999 is not a nyu_id" in line and "line 3" in line
    assert "sub-01 has no good channel(s) ['G1']" in line and "G1: bad" in line
    assert "sub-03 has no good channel(s) ['NOPE']" in line and "NOPE: not listed" in line


def small_plan():
    return plan_for_config(
        config.load(REPO / "configs/demo.yml", ["data.subjects=[8]", "targets.kind=arbitrary"])
    )


def test_openneuro_download_is_called_with_the_plan(tmp_path, monkeypatch):
    openneuro = pytest.importorskip("openneuro")
    calls = []

    def fake_download(**kwargs):  # writes sparse files of the announced sizes
        calls.append(kwargs)
        for rel in kwargs["include"]:
            path = Path(kwargs["target_dir"]) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                f.truncate(known_sizes()[rel])

    monkeypatch.setattr(openneuro, "download", fake_download)
    plan = small_plan()
    lines = []
    download(plan, tmp_path / "ds", log=lines.append)
    assert calls == [
        {
            "dataset": "ds005574",
            "tag": "1.0.2",
            "target_dir": tmp_path / "ds",
            "include": plan.files,
        }
    ]
    assert plan.files == sorted(
        TOP + per_subject([8], HIGHGAMMA) + ["stimuli/gpt2-xl/transcript.tsv"]
    )
    assert lines[-1] == f"done: {len(plan.files)} files, 266.0 MB, sizes as in ds005574 1.0.2"

    def short_download(**kwargs):
        fake_download(**kwargs)
        with (Path(kwargs["target_dir"]) / "stimuli/gpt2-xl/transcript.tsv").open("r+b") as f:
            f.truncate(10)

    monkeypatch.setattr(openneuro, "download", short_download)
    with pytest.raises(
        DataError,
        match=r"1 file\(s\) incomplete; run the same command again to "
        r"resume: .*transcript.tsv: 10 bytes, expected 502512 "
        r"\(ds005574 1.0.2\)$",
    ):
        download(plan, tmp_path / "ds2", log=lambda s: None)


def test_without_openneuro_the_error_gives_the_equivalent_commands(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openneuro", None)  # import openneuro -> ImportError
    lines = []
    with pytest.raises(
        ConfigError,
        match=r"openneuro-py is not installed: pip install "
        r"'podbench\[data\]'",
    ):
        download(small_plan(), tmp_path / "ds", log=lines.append)
    commands = lines[lines.index("equivalent commands:") + 1 :]
    assert commands[0].startswith(
        "  openneuro-py download --dataset ds005574 --tag 1.0.2 "
        f"--target-dir {tmp_path / 'ds'} --include .bidsignore"
    )
    assert commands[1].startswith(
        "  datalad clone https://github.com/OpenNeuroDatasets/ds005574.git"
    )
    assert commands[2].startswith(
        f"  aws s3 sync --no-sign-request s3://openneuro.org/ds005574 "
        f"{tmp_path / 'ds'} --exclude '*' --include .bidsignore"
    )
    assert f"--include {HIGHGAMMA.format(s='sub-08')}" in commands[2]
    assert not (tmp_path / "ds").exists()
