"""`podbench check-data`: compare a dataset root with what ds005574 1.0.2 is known to be.

The facts: participants and NYU ids, the text tables (shipped verbatim in podbench/data/ds005574,
UTF-8 BOMs included), every file's size (the real dataset), derivatives of the good ECoG
channels of channels.tsv at 512 Hz for the sidecar's RecordingDuration (921,600 samples),
transcript rows, GPT-2 layers and Whisper vectors with one row per transcript row, and the
44.1-kHz stereo podcast.wav. A stand-in written by `podbench synth` is held to the same facts
with its ground truth's duration, layers and dimension.

Only headers are read (a .fif through mne without preload, plus its last sample; an EDF's
fixed header; HDF5 shapes; the wav header, its data memory-mapped). Each problem is one line
naming the file, what was found and what was expected. `check_recordings` is the part that
`build-features` runs on the recordings it is about to read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from podbench.data import layout
from podbench.data.dataset import AUDIO, GPT2_FEATURES, TRANSCRIPT, WHISPER_FEATURES, \
    WHISPER_TRANSCRIPT, Dataset, podbench_highgamma_path, read_table, sub_label
from podbench.errors import DataError

GROUND_TRUTH = "derivatives/podbench-synth/ground_truth.json"
SFREQ = 512.0  # every derivative's rate
FULL_DURATION = 1800.0
GPT2_LAYERS = tuple(range(49))  # layer-0 ... layer-48 (49 float32 arrays from the annex size)
GPT2_DIM = 1600
AUDIO_RATE, AUDIO_CHANNELS, AUDIO_WIDTH = 44100, 2, 2
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Expected:
    """What a root should hold: the real dataset, or a stand-in per its ground truth."""

    standin: bool
    duration: float  # seconds recorded
    layers: tuple[int, ...]  # GPT-2 layers in features.hdf5
    dim: int  # GPT-2 feature dimension
    subjects: tuple[int, ...]  # subjects a full copy holds

    @property
    def what(self) -> str:
        if self.standin:
            return f"the stand-in's {self.duration:g} s ({GROUND_TRUTH})"
        return f"{layout.DATASET} {layout.TAG}"


def expected_for(root: Path) -> Expected:
    """The real dataset's facts, or a stand-in's from its ground_truth.json."""
    path = root / GROUND_TRUTH
    if not path.is_file():
        return Expected(False, FULL_DURATION, GPT2_LAYERS, GPT2_DIM, layout.SUBJECTS)
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
        return Expected(True, float(truth["duration_s"]), tuple(truth["layers"]),
                        int(truth["dim"]), tuple(truth["subjects"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a podbench ground truth ({exc!r})") from None


def sidecar_seconds(dataset: Dataset, sub: int) -> tuple[float, float]:
    """(seconds recorded, raw sampling rate) from the sidecar: RecordingDuration is
    (n_samples - 1) / SamplingFrequency."""
    path = dataset.sidecar_path(sub)
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8-sig"))
        rate = float(sidecar["SamplingFrequency"])
        duration = float(sidecar["RecordingDuration"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: no numeric SamplingFrequency and RecordingDuration "
                        f"({exc!r})") from None
    return round(duration * rate + 1) / rate, rate


def good_ecog(dataset: Dataset, sub: int) -> list[str]:
    table = dataset.channels(sub)
    return table.loc[(table["type"] == "ECOG") & (table["status"] == "good"), "name"].tolist()


@dataclass(frozen=True)
class FifHeader:
    n_channels: int
    n_times: int
    sfreq: float

    def __str__(self) -> str:
        return f"{self.n_channels} channels x {self.n_times} samples at {self.sfreq:g} Hz"


def fif_problems(dataset: Dataset, sub: int, path: Path) -> tuple[list[str], FifHeader | None]:
    """Problems of one derivative .fif against its subject's sidecar and channels.tsv (header
    and last sample only), and its header (None if unreadable)."""
    import mne

    try:
        raw = mne.io.read_raw_fif(path, preload=False, verbose="error")
    except (ValueError, OSError) as exc:
        return [f"{path}: cannot read it as a .fif recording ({exc})"], None
    sfreq, n_times, names = float(raw.info["sfreq"]), raw.n_times, raw.ch_names
    seconds, rate = sidecar_seconds(dataset, sub)
    expected = round(seconds * sfreq)
    problems = []
    if n_times != expected:
        problems.append(
            f"{path}: {n_times} samples ({n_times / sfreq:g} s at {sfreq:g} Hz); expected "
            f"{expected} ({seconds:g} s: RecordingDuration at {rate:g} Hz in "
            f"{dataset.sidecar_path(sub)}) - truncated or wrong file?")
    else:
        try:
            raw.get_data(start=n_times - 1, stop=n_times)
        except (ValueError, OSError) as exc:
            problems.append(f"{path}: data truncated ({path.stat().st_size} bytes; reading "
                            f"sample {n_times - 1} of {n_times} failed: {exc})")
    good = good_ecog(dataset, sub)
    if sorted(names) != sorted(good):
        missing = [n for n in good if n not in names]
        extra = [n for n in names if n not in good]
        problems.append(f"{path}: {len(names)} channels; expected the {len(good)} good ECOG "
                        f"channels of {dataset.channels_path(sub)}"
                        + (f" (missing {missing})" if missing else "")
                        + (f" (not good ECOG there: {extra})" if extra else ""))
    return problems, FifHeader(len(names), n_times, sfreq)


def check_recordings(dataset: Dataset, subjects: list[int], signal: str) -> None:
    """Raise one DataError listing every recording whose header disagrees with its sidecar
    (samples, truncation) or its channels.tsv (good ECoG channels); `build-features` calls it
    before reading."""
    problems = []
    for sub in subjects:
        problems += fif_problems(dataset, sub, dataset.derivative_path(sub, signal))[0]
    if problems:
        raise DataError("; ".join(problems))


def edf_header(path: Path) -> tuple[int, float, int, int]:
    """(data records, seconds per record, bytes per record, header bytes) of an EDF file."""
    with path.open("rb") as f:
        head = f.read(256)
        n_signals = int(head[252:256])
        f.seek(256 + n_signals * 216)
        samples = [int(f.read(8)) for _ in range(n_signals)]
    return int(head[236:244]), float(head[244:252]), 2 * sum(samples), int(head[184:192])


class Checker:
    """Collects one line per problem (and per checked item) for a dataset root."""

    def __init__(self, root: str | Path):
        self.dataset = Dataset(root)
        self.root = self.dataset.root
        self.expected = expected_for(self.root)
        self.reference = Dataset(layout.METADATA)
        self.problems: list[str] = []
        self.report: list[str] = []
        self.files = 0
        self.extra_layers: set[int] = set()  # GPT-2 layers a config asks for

    # ------------------------------------------------------------------ one file each
    def check_file(self, rel: str, sub: int | None = None) -> None:
        """Check one dataset file by kind; a missing file is one problem."""
        path = self.root / rel
        if not path.is_file():
            self.problems.append(f"{path}: missing")
            return
        self.files += 1
        before = len(self.problems)
        try:
            self.check_content(rel, sub)
        except DataError as exc:  # a sidecar or channels.tsv it is checked against
            self.problems.append(str(exc))
        if len(self.problems) > before:
            return  # one damage, one line: the content's line says more than the size's
        if (layout.METADATA / rel).is_file() and self.verbatim(rel):
            self.check_text(rel)
        elif not self.expected.standin:
            self.check_size(rel)

    def check_content(self, rel: str, sub: int | None) -> None:
        path = self.root / rel
        if rel.endswith(".fif"):
            assert sub is not None, rel  # recordings are per subject
            problems, header = fif_problems(self.dataset, sub, path)
            self.problems += problems
            if header is not None:
                self.check_rate(path, header)
        elif rel.endswith(".edf"):
            assert sub is not None, rel
            self.check_edf(sub, path)
        elif rel.endswith("/transcript.tsv"):
            self.check_transcript(rel)
        elif rel == GPT2_FEATURES:
            self.check_gpt2(rel)
        elif rel == WHISPER_FEATURES:
            self.check_whisper(rel)
        elif rel == AUDIO:
            self.check_audio(rel)

    def verbatim(self, rel: str) -> bool:
        """Text files a copy must hold byte for byte (a stand-in rewrites its sidecars'
        RecordingDuration and cuts its transcripts)."""
        if not self.expected.standin:
            return True
        return not rel.endswith(("_ieeg.json", "/transcript.tsv", "dataset_description.json"))

    def check_text(self, rel: str) -> None:
        data, want = (self.root / rel).read_bytes(), (layout.METADATA / rel).read_bytes()
        if data.startswith(BOM) != want.startswith(BOM):
            has = "starts with a UTF-8 BOM" if data.startswith(BOM) else "has no UTF-8 BOM"
            self.problems.append(f"{self.root / rel}: {has}; expected "
                                 f"{'one' if want.startswith(BOM) else 'none'}, as in "
                                 f"{layout.DATASET} {layout.TAG}")
        elif data != want:
            self.problems.append(f"{self.root / rel}: {len(data)} bytes that differ from "
                                 f"{layout.DATASET} {layout.TAG}'s; expected its {len(want)} "
                                 f"bytes (podbench/data/ds005574/{rel})")

    def check_size(self, rel: str) -> None:
        size, want = (self.root / rel).stat().st_size, layout.known_sizes()[rel]
        if size != want:
            self.problems.append(f"{self.root / rel}: {size} bytes; expected {want} "
                                 f"({layout.DATASET} {layout.TAG}; `podbench download` "
                                 "resumes a partial file)")

    def check_rate(self, path: Path, header: FifHeader) -> None:
        if header.sfreq != SFREQ:
            self.problems.append(f"{path}: {header.sfreq:g} Hz; expected {SFREQ:g} Hz (every "
                                 f"derivative of {layout.DATASET})")
        self.report.append(f"{path.relative_to(self.root)}: {header}")

    def check_edf(self, sub: int, path: Path) -> None:
        try:
            records, record_s, record_bytes, header = edf_header(path)
        except (ValueError, OSError) as exc:
            self.problems.append(f"{path}: cannot read its EDF header ({exc})")
            return
        size, promised = path.stat().st_size, header + records * record_bytes
        seconds, rate = sidecar_seconds(self.dataset, sub)
        if size < promised:
            self.problems.append(f"{path}: {size} bytes; expected {promised} (its header: "
                                 f"{records} records of {record_bytes} bytes) - truncated")
        if not math.isclose(records * record_s, seconds):
            self.problems.append(f"{path}: {records * record_s:g} s ({records} records of "
                                 f"{record_s:g} s); expected {seconds:g} s (RecordingDuration "
                                 f"in {self.dataset.sidecar_path(sub)})")
        self.report.append(f"{path.relative_to(self.root)}: {records * record_s:g} s, "
                           f"{rate:g} Hz")

    def transcript_rows(self, rel: str) -> int:
        """Rows the dataset's transcript has before the expected duration."""
        return dataset_rows(rel, self.expected.duration)

    def check_transcript(self, rel: str) -> None:
        found = len(read_table(self.root / rel, ("word", "start", "end")))
        want = self.transcript_rows(rel)
        if found != want:
            self.problems.append(f"{self.root / rel}: {found} rows; expected {want} "
                                 f"({self.expected.what})")
        else:
            self.report.append(f"{rel}: {found} rows")

    def h5(self, rel: str):
        import h5py

        try:
            return h5py.File(self.root / rel, "r")
        except OSError as exc:
            self.problems.append(f"{self.root / rel}: cannot open it as HDF5 ({exc})")
            return None

    def check_gpt2(self, rel: str) -> None:
        f = self.h5(rel)
        if f is None:
            return
        with f:
            rows = self.transcript_rows(TRANSCRIPT)
            layers = sorted(set(self.expected.layers) | self.extra_layers)
            want = (rows, self.expected.dim)
            missing = [i for i in layers if f"layer-{i}" not in f]
            if missing:
                names = ", ".join(f"layer-{i}" for i in missing)
                self.problems.append(f"{self.root / rel}: no {names}; expected layer-{{i}} for "
                                     f"i in {layers}")
            for i in layers:
                if f"layer-{i}" in f and f[f"layer-{i}"].shape != want:
                    self.problems.append(f"{self.root / rel}: layer-{i} has shape "
                                         f"{f[f'layer-{i}'].shape}; expected {want} (a row per "
                                         f"token of {TRANSCRIPT})")
            self.report.append(f"{rel}: {len(layers) - len(missing)} layers of "
                               f"({rows}, {self.expected.dim})")

    def check_whisper(self, rel: str) -> None:
        f = self.h5(rel)
        if f is None:
            return
        with f:
            transcript = WHISPER_TRANSCRIPT
            rows = self.transcript_rows(transcript)
            if "vectors" not in f:
                self.problems.append(f"{self.root / rel}: no dataset 'vectors' (has "
                                     f"{sorted(f)}); expected one row per row of {transcript}")
            elif f["vectors"].shape[0] != rows:
                self.problems.append(f"{self.root / rel}: vectors has {f['vectors'].shape[0]} "
                                     f"rows; expected {rows} (a row per row of {transcript})")
            else:
                self.report.append(f"{rel}: vectors {f['vectors'].shape}")

    def check_audio(self, rel: str) -> None:
        import warnings

        from scipy.io import wavfile

        path = self.root / rel
        want = round(self.expected.duration * AUDIO_RATE)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", wavfile.WavFileWarning)  # ds005574's extra chunk
                rate, data = wavfile.read(path, mmap=True)  # header only; fails if truncated
        except (ValueError, OSError, EOFError) as exc:
            self.problems.append(f"{path}: cannot read it as a complete wav file "
                                 f"({path.stat().st_size} bytes: {exc})")
            return
        channels = data.shape[1] if data.ndim == 2 else 1
        if (rate, channels, data.dtype.itemsize) != (AUDIO_RATE, AUDIO_CHANNELS, AUDIO_WIDTH):
            self.problems.append(f"{path}: {rate} Hz, {channels} channel(s), "
                                 f"{8 * data.dtype.itemsize}-bit; expected {AUDIO_RATE} Hz, "
                                 "stereo, 16-bit")
        if len(data) != want:
            self.problems.append(f"{path}: {len(data)} frames ({len(data) / rate:g} s); expected "
                                 f"{want} ({self.expected.what})")
        self.report.append(f"{rel}: {len(data) / rate:g} s at {rate} Hz")

    # ------------------------------------------------------------------ whole root
    def check_participants(self) -> None:
        path = self.root / "participants.tsv"
        self.files += 1
        try:
            found = self.dataset.nyu_to_subject()
        except DataError as exc:
            self.problems.append(str(exc))
            return
        want = self.reference.nyu_to_subject()
        if found != want:
            self.problems.append(f"{path}: participants {pairs(found)}; expected {pairs(want)}")
        else:
            self.report.append(f"participants.tsv: {len(found)} participants, NYU ids "
                               f"{' '.join(str(n) for n in sorted(found))}")

    def present_files(self) -> list[tuple[str, int | None]]:
        """Every file of the known layout present under the root (with its subject), plus
        podbench's recomputed high gamma."""
        out = []
        for rel in sorted(layout.known_sizes()):
            if (self.root / rel).is_file():
                out.append((rel, subject_of(rel)))
        for sub in layout.SUBJECTS:
            path = podbench_highgamma_path(self.root, sub)
            if path.is_file():
                out.append((str(path.relative_to(self.root)), sub))
        return out

    def required_files(self, present: set[str], full: bool = False) -> list[str]:
        """The files a copy must hold: with `full`, every file of ds005574 1.0.2; else every
        file the layout lists for the parts present: the BIDS metadata, each subject's
        sidecars and its recording of each signal present (a stand-in: each subject of its
        ground truth), and every file of each stimulus part present."""
        if full:
            if self.expected.standin:
                raise DataError(f"check-data --all: {self.root} is a stand-in "
                                f"({GROUND_TRUTH}), not a full copy of {layout.DATASET}")
            return sorted(layout.known_sizes())
        subjects = set(self.expected.subjects) if self.expected.standin else {
            sub for sub in map(subject_of, present) if sub is not None}
        signals = [signal for signal in layout.SIGNALS
                   if any(layout.recording(sub, signal) in present for sub in layout.SUBJECTS)]
        files = {"participants.tsv", "dataset_description.json"}
        for sub in subjects:
            files.update(layout.sidecars(sub))
            files.update(layout.recording(sub, signal) for signal in signals)
        for part in layout.STIMULUS_PARTS:
            if present.intersection(part):
                files.update(part)
                if part != (AUDIO,):
                    files.add(TRANSCRIPT)
        return sorted(files)

    def run(self, cfg=None, full: bool = False) -> None:
        """Check every present file and every file the parts present need (`full`: every file
        of the dataset), or exactly the files `cfg` reads."""
        self.check_participants()
        if cfg is None:
            files = self.present_files()
            if not any(rel.endswith((".fif", ".edf")) for rel, _ in files):
                self.problems.append(f"{self.root}: no recording (derivatives/ecogprep/sub-XX/"
                                     "ieeg/*.fif or sub-XX/ieeg/*.edf)")
            have = {rel for rel, _ in files}
            files += [(rel, subject_of(rel)) for rel in self.required_files(have, full)
                      if rel not in have]
        else:
            files = self.config_files(cfg)
            self.extra_layers = {cfg.targets.layer}
        for rel, sub in files:
            if rel != "participants.tsv":
                self.check_file(rel, sub)

    def config_files(self, cfg) -> list[tuple[str, int | None]]:
        """The files `cfg` reads (its electrode CSV checked against this root), with the
        stand-in's subjects for data.subjects: all."""
        from podbench.data.recordings import electrodes_from_csv, is_csv_spec

        if cfg.data.subjects == "all" and is_csv_spec(cfg.data.picks):
            try:
                subjects = sorted(electrodes_from_csv(self.dataset, cfg.data.picks))
            except DataError as exc:
                self.problems.append(str(exc))
                subjects = list(self.expected.subjects)
        elif cfg.data.subjects == "all":
            subjects = list(self.expected.subjects)
        else:
            subjects = list(cfg.data.subjects)
        subset = cfg.replace({"data.subjects": subjects})
        unread = set(layout.TOP_LEVEL) - {"participants.tsv", "dataset_description.json"}
        files = [(rel, subject_of(rel)) for rel in layout.plan_for_config(subset).files
                 if rel not in unread]
        if cfg.data.signal == "podbench_highgamma":
            for sub in subjects:
                path = podbench_highgamma_path(self.root, sub)
                if path.is_file():
                    files.append((str(path.relative_to(self.root)), sub))
                else:
                    self.problems.append(f"{path}: missing; expected the high gamma that "
                                         f"`podbench highgamma --root {self.root}` computes")
        return files


def pairs(nyu_to_subject: dict[int, int]) -> str:
    """sub-01=661, sub-02=662, ..."""
    return ", ".join(f"{sub_label(s)}={n}" for n, s in sorted(nyu_to_subject.items()))


@cache
def dataset_rows(rel: str, duration: float) -> int:
    """Rows of a ds005574 transcript (shipped verbatim) starting before `duration` seconds."""
    table = read_table(layout.METADATA / rel, ("start",))
    return int((table["start"] < duration).sum())


def subject_of(rel: str) -> int | None:
    """The subject number of a per-subject dataset path (None for shared files)."""
    for part in Path(rel).parts:
        if part.startswith("sub-") and part[4:].isdigit():
            return int(part[4:])
    return None


def check_data(root: str | Path, cfg=None, log: Callable[[str], None] = print,
               full: bool = False) -> bool:
    """Check a root (every present file and every file the parts present need, or with `full`
    every file of the dataset; or the files `cfg` reads); log one line per checked item and per
    problem; True when there is no problem."""
    checker = Checker(root)
    checker.run(cfg, full)
    for line in checker.report:
        log(f"  {line}")
    for line in checker.problems:
        log(f"problem: {line}")
    what = checker.expected.what if checker.expected.standin else \
        f"{layout.DATASET} {layout.TAG} (sizes, headers, tables)"
    if checker.problems:
        log(f"{len(checker.problems)} problem(s) in {checker.files} file(s) under "
            f"{checker.root}, checked against {what}")
        return False
    log(f"ok: {checker.files} file(s) under {checker.root} match {what}")
    return True
