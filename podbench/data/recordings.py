"""Selecting electrodes and reading segments of the derivative recordings."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from podbench.data.dataset import Dataset, read_table, sub_label
from podbench.errors import DataError
from podbench.publish import publish_file


def is_csv_spec(spec: str | None) -> TypeGuard[str]:
    return spec is not None and spec.lower().endswith(".csv")


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (for small inputs whose content defines a selection)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


RESPONSIVE = "responsive"
RESPONSIVE_FOLDER = "electrodes"  # under output.stores: the tables `responsive` resolves to


def resolve_electrodes(dataset: Dataset, spec: str | None, stores: str | Path) -> str | None:
    """`data.electrodes` made concrete: a regex stays as it is; `responsive` names a stand-in's
    ground-truth responsive channels, as a CSV written once into the store root `stores`
    (output.stores: never into the dataset) under a name keyed by the ground truth's digest; a
    CSV path is taken as it is when absolute, else relative to data.root when it exists there,
    else relative to the working directory."""
    if spec == RESPONSIVE:
        from podbench.data.synth import GROUND_TRUTH, responsive_electrode_csv

        truth = dataset.root / GROUND_TRUTH
        if not truth.is_file():
            raise DataError(f"data.electrodes = {RESPONSIVE!r}: names a stand-in's ground truth, "
                            f"but {dataset.root} has no {GROUND_TRUTH} (not written by "
                            "`podbench synth`); give a regex or an electrode CSV")
        csv = (Path(stores).expanduser() / RESPONSIVE_FOLDER
               / f"responsive-{file_digest(truth)[:16]}.csv").resolve()
        if not csv.is_file():
            publish_file(csv, lambda tmp: responsive_electrode_csv(dataset.root, tmp),
                         "writing the responsive-electrodes table")
        return str(csv)
    if not is_csv_spec(spec):
        return spec
    path = Path(spec).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [dataset.root / path, Path.cwd() / path]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    raise DataError(f"data.electrodes = {spec!r}: no such file (looked for "
                    f"{' and '.join(str(c) for c in candidates)})")


def electrodes_from_csv(dataset: Dataset, path: str | Path) -> dict[int, list[str]]:
    """Electrode CSV (columns subject = NYU id, elec) -> {subject number: [names]}.

    Every NYU id that is not in participants.tsv and every name that is not a good ECoG channel
    of its subject's channels.tsv are listed in one error, before any recording is opened.
    """
    table = read_table(Path(path), ("subject", "elec"), sep=",")
    nyu = dataset.nyu_to_subject()
    picks: dict[int, list[str]] = {}
    unknown: dict[str, list[int]] = {}
    for row, (nyu_id, elec) in enumerate(zip(table["subject"], table["elec"]), start=2):
        try:
            sub = nyu[int(nyu_id)]
        except (KeyError, ValueError):
            unknown.setdefault(str(nyu_id), []).append(row)
            continue
        picks.setdefault(sub, []).append(str(elec))
    if not picks and not unknown:
        raise DataError(f"{path}: no electrodes listed")
    problems = [f"subject {nyu_id} is not a nyu_id of {dataset.root / 'participants.tsv'} "
                f"({sorted(nyu)}; line {', '.join(map(str, rows))})"
                for nyu_id, rows in unknown.items()]
    for sub, names in sorted(picks.items()):
        channels = dataset.channels(sub)
        why_not = {name: None if status == "good" and kind == "ECOG" else
                   "bad" if status == "bad" else f"type {kind}"
                   for name, kind, status in zip(channels["name"], channels["type"],
                                                 channels["status"])}
        reasons = {n: why_not.get(n, "not listed") for n in names}
        missing = [n for n, why in reasons.items() if why is not None]
        if missing:
            detail = ", ".join(f"{n}: {reasons[n]}" for n in missing)
            problems.append(f"{sub_label(sub)} has no good channel(s) {missing} in "
                            f"{dataset.channels_path(sub)} ({detail})")
    if problems:
        raise DataError(f"data.electrodes {path}: {'; '.join(problems)}")
    return picks


def resolve_subjects(dataset: Dataset, subjects, electrodes: str | None,
                     signal: str = "highgamma") -> list[int]:
    """Subjects of a selection.

    'all' with an electrode CSV means the CSV's subjects; 'all' otherwise means every
    participant whose `signal` recording is present (a stand-in may hold a few subjects).
    """
    if subjects == "all" and is_csv_spec(electrodes):
        return sorted(electrodes_from_csv(dataset, electrodes))
    if subjects == "all":
        present = []
        for sub in dataset.subjects:
            try:
                dataset.derivative_path(sub, signal)
            except DataError:
                continue
            present.append(sub)
        if not present:
            raise DataError(f"no {signal} recording under {dataset.root / 'derivatives/ecogprep'}")
        return present
    return dataset.check_subjects(subjects)


@dataclass
class Recording:
    """One subject's derivative recording with its picked channels (recording order)."""

    subject: int
    path: Path
    channels: list[str]
    sfreq: float
    n_times: int
    _raw: Any = field(default=None, repr=False)  # an mne Raw

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of the picked channels, float32 [channel, time]."""
        if start < 0 or stop > self.n_times:
            raise DataError(f"{self.path}: samples [{start}, {stop}) outside 0..{self.n_times}")
        data = self._raw.get_data(picks=self.channels, start=start, stop=stop)
        return data.astype(np.float32, copy=False)

    def window_means(self, onsets: np.ndarray, start: int, stop: int,
                     block: int = 32) -> np.ndarray:
        """Each picked channel's mean over samples [onset + start, onset + stop) of each
        onset sample: float32 [event, channel], NaN where the window leaves the recording."""
        lo, hi = onsets + start, onsets + stop
        inside = (lo >= 0) & (hi <= self.n_times)
        out = np.full((len(onsets), len(self.channels)), np.nan, np.float32)
        data = self.read(0, self.n_times)
        for first in range(0, len(self.channels), block):  # float64 running sums, by block
            sums = np.cumsum(data[first:first + block], axis=1, dtype=np.float64)
            sums = np.concatenate([np.zeros((len(sums), 1)), sums], axis=1)
            means = (sums[:, hi[inside]] - sums[:, lo[inside]]) / (stop - start)
            out[inside, first:first + len(sums)] = means.T
        return out


def _pick(dataset: Dataset, sub: int, names: list[str], spec: str | None,
          csv_picks: dict[int, list[str]] | None) -> list[str]:
    """Good channels of the recording selected by the CSV or regex, in recording order."""
    table = dataset.channels(sub)
    bad = set(table.loc[table["status"] == "bad", "name"])
    good = [n for n in names if n not in bad]
    if csv_picks is not None:
        wanted = csv_picks.get(sub, [])
        missing = [n for n in wanted if n not in good]
        if missing:
            raise DataError(f"data.electrodes {spec}: {sub_label(sub)} has no good channel(s) "
                            f"{missing} in {dataset.derivative_path(sub)}")
        chosen = set(wanted)
        picked = [n for n in good if n in chosen]
    elif spec is not None:
        try:
            pattern = re.compile(spec)
        except re.error as exc:
            raise DataError(f"data.electrodes = {spec!r}: not a valid regex ({exc})") from exc
        picked = [n for n in good if pattern.match(n)]
    else:
        picked = good
    if not picked:
        raise DataError(f"data.electrodes = {spec!r} selects no good channel of {sub_label(sub)}")
    return picked


def open_recordings(dataset: Dataset, subjects: list[int], electrodes: str | None,
                    signal: str = "highgamma") -> list[Recording]:
    """Open (without loading) each subject's recording with its electrode picks."""
    import mne

    csv_picks = electrodes_from_csv(dataset, electrodes) if is_csv_spec(electrodes) else None
    out = []
    for sub in subjects:
        path = dataset.derivative_path(sub, signal)
        try:
            raw = mne.io.read_raw_fif(path, preload=False, verbose="error")
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: cannot read it as a .fif recording ({exc})") from exc
        picks = _pick(dataset, sub, raw.ch_names, electrodes, csv_picks)
        out.append(Recording(sub, path, picks, float(raw.info["sfreq"]), raw.n_times, raw))
    rates = {r.sfreq for r in out}
    if len(rates) > 1:
        detail = ", ".join(f"{sub_label(r.subject)} {r.sfreq:g} Hz" for r in out)
        raise DataError(f"recordings have different sampling rates ({detail}); resample them "
                        "to one rate first")
    return out
