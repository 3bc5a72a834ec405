"""The known file layout of OpenNeuro ds005574 1.0.2, and which of its files a config reads.

Sizes come from `ds005574_files.tsv` beside this module (every file of the dataset, from the
annex keys and git blobs of its git mirror at tag 1.0.2; the file's header names the commit).
The stimulus files a task reads are declared by the task itself (`TaskSpec.dataset_files`, read
through the registry, so the data layer imports no task).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from podbench import registry
from podbench.data.dataset import AUDIO, GPT2_FEATURES, SYNTACTIC, TRANSCRIPT, WHISPER_FEATURES, \
    WHISPER_TRANSCRIPT, Dataset
from podbench.errors import ConfigError

DATASET = "ds005574"
TAG = "1.0.2"
SUBJECTS = tuple(range(1, 10))
SIZES_FILE = Path(__file__).with_name("ds005574_files.tsv")
METADATA = Path(__file__).with_name("ds005574")  # its text files, verbatim
# Top-level files openneuro-py always downloads (its essential BIDS metadata).
TOP_LEVEL = (".bidsignore", "CHANGES", "README", "dataset_description.json",
             "participants.json", "participants.tsv")
PARTS = ("highgamma", "broadband", "raw", "stimuli")
SIGNALS = ("highgamma", "broadband", "podbench_highgamma")  # data.signal's values
# The stimulus files podbench reads, by part: a copy holding one file of a part needs all of
# them, and every part but the audio needs the words.
STIMULUS_PARTS = ((TRANSCRIPT, GPT2_FEATURES), (WHISPER_TRANSCRIPT, WHISPER_FEATURES), (SYNTACTIC,),
                  (AUDIO,))


def label(sub: int) -> str:
    return f"sub-{sub:02d}"


def sidecars(sub: int) -> list[str]:
    """The per-subject tables podbench reads: recording sidecar, channels, MNI electrodes."""
    folder = f"{label(sub)}/ieeg/{label(sub)}"
    return [f"{folder}_task-podcast_ieeg.json", f"{folder}_task-podcast_channels.tsv",
            f"{folder}_space-MNI152NLin2009aSym_electrodes.tsv",
            f"{folder}_space-MNI152NLin2009aSym_coordsystem.json"]


def recording(sub: int, signal: str) -> str:
    """The file `data.signal` reads for a subject (podbench_highgamma: the raw EDF it is
    recomputed from by `podbench highgamma`)."""
    derivative = f"derivatives/ecogprep/{label(sub)}/ieeg/{label(sub)}_task-podcast"
    if signal == "highgamma":
        return f"{derivative}_desc-highgamma_ieeg.fif"
    if signal == "broadband":
        return f"{derivative}_ieeg.fif"
    if signal == "podbench_highgamma":
        return f"{label(sub)}/ieeg/{label(sub)}_task-podcast_ieeg.edf"
    raise ConfigError(f"data.signal = {signal!r}: expected highgamma, broadband or "
                      "podbench_highgamma")


@cache
def known_sizes() -> dict[str, int]:
    """Path inside the dataset -> size in bytes, for every file of ds005574 1.0.2."""
    with SIZES_FILE.open(encoding="utf-8") as f:
        rows = csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")
        return {row["path"]: int(row["bytes"]) for row in rows}


def task_files(cfg) -> list[str]:
    """Dataset files one task of `cfg` reads (cfg names a single task), as the task declares
    them (`TaskSpec.dataset_files`)."""
    declared = registry.tasks.spec(cfg.task, "task").dataset_files
    if declared is None:
        raise ConfigError(f"task {cfg.task!r}: podbench download does not know which files it "
                          "reads (it declares no dataset_files); use --what stimuli (or --what "
                          "with the parts it needs)")
    return list(declared(cfg))


def config_subjects(cfg) -> tuple[list[int], str | None]:
    """Subjects a config reads, and a note when that had to be assumed.

    A list is taken as is; 'all' with an electrode CSV present means the CSV's subjects (checked
    against the dataset's participants and channel tables, which podbench ships); otherwise
    all nine.
    """
    from podbench.data.recordings import RESPONSIVE, electrodes_from_csv, is_csv_spec

    spec, electrodes = cfg.data.subjects, cfg.data.picks
    if spec != "all":
        unknown = [s for s in spec if s not in SUBJECTS]
        if unknown:
            raise ConfigError(f"data.subjects = {spec}: {unknown} not in ds005574 (1-9)")
        return sorted(spec), None
    if electrodes == RESPONSIVE:
        return list(SUBJECTS), (f"data.electrodes {RESPONSIVE!r} names a stand-in's ground "
                                "truth: listing all nine subjects; give the real dataset an "
                                "electrode CSV (--set data.electrodes=FILE)")
    if not is_csv_spec(electrodes):
        return list(SUBJECTS), None
    path = Path(electrodes).expanduser()
    if not path.is_file():
        return list(SUBJECTS), (f"data.electrodes {electrodes} does not exist (yet): listing all "
                                "nine subjects")
    return sorted(electrodes_from_csv(Dataset(METADATA), path)), None


@dataclass(frozen=True)
class Plan:
    """Files to fetch (dataset paths, sorted) with notes on what was assumed or left out."""

    files: list[str]
    notes: list[str]

    def size(self, path: str) -> int:
        return known_sizes()[path]

    @property
    def total(self) -> int:
        return sum(self.size(p) for p in self.files)


def plan_for_config(cfg) -> Plan:
    """The files a config (one or several tasks) reads, with the top-level metadata."""
    subjects, note = config_subjects(cfg)
    files = set(TOP_LEVEL)
    for sub in subjects:
        files.update(sidecars(sub))
        files.add(recording(sub, cfg.data.signal))
    for single in cfg.task_configs():
        files.update(task_files(single))
    notes = [note] if note else []
    if cfg.targets.kind == "glove" and any(c.task == "word_embedding" for c in cfg.task_configs()):
        notes.append(f"GloVe is not part of ds005574: get targets.glove_path "
                     f"({cfg.targets.glove_path}) yourself")
    if cfg.data.signal == "podbench_highgamma":
        notes.append("data.signal podbench_highgamma: run `podbench highgamma --root DIR` after "
                     "the download")
    return Plan(sorted(files), notes)


def plan_for_parts(parts: list[str]) -> Plan:
    """The files of named parts: highgamma, broadband (derivatives), raw (EDF), stimuli."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ConfigError(f"--what {','.join(parts)}: expected a comma-separated list of "
                          f"{', '.join(PARTS)}")
    files = set(TOP_LEVEL)
    for part in parts:
        if part == "stimuli":
            files.update(p for p in known_sizes() if p.startswith("stimuli/"))
            continue
        signal = {"highgamma": "highgamma", "broadband": "broadband",
                  "raw": "podbench_highgamma"}[part]
        for sub in SUBJECTS:
            files.update(sidecars(sub))
            files.add(recording(sub, signal))
    return Plan(sorted(files), [])
