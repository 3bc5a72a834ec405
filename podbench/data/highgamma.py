"""The raw -> high-gamma path: recompute the high-gamma derivative from the raw EDF recordings.

The recipe of the dataset's tutorial: read the raw recording through mne-bids (channel types
and bad channels from channels.tsv), keep the good ECoG channels, common average reference,
notch 60/120/180 Hz, 4th-order Butterworth band-pass 70-200 Hz applied forward and backward,
Hilbert envelope, then resample to 512 Hz (sub-07 is recorded at 2048 Hz). The result is
written as `derivatives/podbench-highgamma/sub-XX/ieeg/sub-XX_task-podcast_desc-highgamma_ieeg.fif`
(float32) and read with `data.signal: podbench_highgamma`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from podbench.data.dataset import TASK, Dataset, podbench_highgamma_path, sub_label
from podbench.errors import DataError
from podbench.publish import publish_file

OUT_SFREQ = 512.0
LINE_HARMONICS = (60.0, 120.0, 180.0)
BAND = (70.0, 200.0)


def read_raw(dataset: Dataset, sub: int):
    """The raw EDF of a subject through mne-bids, with channels.tsv types and bad channels."""
    from mne_bids import BIDSPath, read_raw_bids

    path = BIDSPath(root=dataset.root, subject=f"{sub:02d}", task=TASK, datatype="ieeg",
                    suffix="ieeg", extension=".edf")
    if not path.fpath.is_file():
        raise DataError(f"missing raw recording of {sub_label(sub)}: {path.fpath}")
    return read_raw_bids(path, verbose="error")


def highgamma(raw):
    """High-gamma envelope of the good ECoG channels of a raw recording, at 512 Hz."""
    raw = raw.copy().pick("ecog", exclude="bads").load_data(verbose="error")
    if not raw.ch_names:
        raise DataError("no good ECoG channel in the raw recording")
    raw.set_eeg_reference("average", ch_type="ecog", verbose="error")
    raw.notch_filter(LINE_HARMONICS, verbose="error")
    raw.filter(*BAND, method="iir", iir_params={"order": 4, "ftype": "butter"}, verbose="error")
    raw.apply_hilbert(envelope=True, verbose="error")
    if raw.info["sfreq"] != OUT_SFREQ:
        raw.resample(OUT_SFREQ, verbose="error")
    with raw.info._unlock():
        raw.info["highpass"], raw.info["lowpass"] = BAND
    return raw


def write_highgamma(root: str | Path, subjects: list[int] | None = None,
                    log: Callable[[str], None] = print) -> list[Path]:
    """Recompute and write the high-gamma derivative of each subject (one at a time);
    no subjects: every subject with a raw recording."""
    dataset = Dataset(root)
    if subjects:
        chosen = dataset.check_subjects(subjects)
    else:
        chosen = [s for s in dataset.subjects if dataset.edf_path(s).is_file()]
        if not chosen:
            raise DataError(f"no raw recording (sub-XX/ieeg/*_ieeg.edf) under {dataset.root}")
    written = []
    for sub in chosen:
        out = podbench_highgamma_path(dataset.root, sub)
        env = highgamma(read_raw(dataset, sub))
        publish_file(out, lambda tmp: env.save(tmp, fmt="single", overwrite=True,
                                               verbose="error"),
                     f"writing the high-gamma derivative of {sub_label(sub)}")
        log(f"{sub_label(sub)}: {len(env.ch_names)} channels -> {out}")
        written.append(out)
    return written
