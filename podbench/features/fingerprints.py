"""Content fingerprints of the files a stage reads, independent of where they lie.

A file's fingerprint is its size and a sha256: of all its bytes up to FULL_BYTES (the
tables, transcripts, electrode CSVs), else of sampled blocks (the first and last MiB and
SAMPLES evenly spaced MiB between them: the header and a content digest of a big .fif,
.hdf5, .wav or .edf), so a multi-GB recording costs a few MiB of reading once. Digests are
cached per (absolute path, size, mtime_ns) in `<store root>/.fingerprints.json` (written
atomically, once the store root exists), so a file is digested again only when it changes.

A file is labelled by its path relative to the dataset root, or to the store root
(`stores/...`, e.g. a parent store's completion marker), else by its name: keys and
staleness checks never see absolute paths, so a copied dataset or store root hits the same
stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from podbench.errors import DataError

FULL_BYTES = 16 * 2**20
BLOCK = 2**20
SAMPLES = 8
CACHE = ".fingerprints.json"

_memory: dict[str, str] = {}  # "abs|size|mtime_ns" -> digest, for this process


def content_digest(path: Path, size: int) -> str:
    """sha256 of the whole file (small) or of its sampled blocks (big), with its size."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= FULL_BYTES:
            h.update(f.read())
        else:
            step = (size - BLOCK) / (SAMPLES + 1)
            for offset in [0, *(int(step * i) for i in range(1, SAMPLES + 1)), size - BLOCK]:
                f.seek(offset)
                h.update(f.read(BLOCK))
    return h.hexdigest()


class Fingerprints:
    """Digests of source files, cached beside a store root."""

    def __init__(self, store_root: str | Path, data_root: str | Path):
        self.store_root = Path(store_root).expanduser().resolve()
        self.data_root = Path(data_root).expanduser().resolve()
        self.cache_path = self.store_root / CACHE
        self._cache: dict[str, str] | None = None
        self._new: dict[str, str] = {}

    def _cached(self) -> dict[str, str]:
        if self._cache is None:
            try:
                self._cache = json.loads(self.cache_path.read_text())
            except (OSError, ValueError):
                self._cache = {}
        return self._cache

    def digest(self, path: Path) -> tuple[int, str]:
        """(size, content digest) of one file."""
        path = Path(path).resolve()
        if not path.is_file():
            raise DataError(f"missing file: {path} (read by a feature stage)")
        st = path.stat()
        token = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        digest = self._cached().get(token)
        if digest is None:
            digest = _memory.get(token) or content_digest(path, st.st_size)
            self._new[token] = digest
        _memory[token] = digest
        return st.st_size, digest

    def label(self, path: Path) -> str:
        path = Path(path).resolve()
        for base, prefix in ((self.data_root, ""), (self.store_root, "stores/")):
            if path.is_relative_to(base):
                return prefix + path.relative_to(base).as_posix()
        return path.name

    def of(self, paths: list[Path]) -> list[list]:
        """[label, size, digest] of each file, in order."""
        return [[self.label(p), *self.digest(p)] for p in paths]

    def save(self) -> None:
        """Merge new digests into the cache file (temporary sibling, then rename), once the
        store root exists: computing keys never creates it (a failed command writes nothing);
        `Stores.ensure` saves after a build."""
        if not self._new or not self.store_root.is_dir():
            return
        try:
            current = {}
            try:
                current = json.loads(self.cache_path.read_text())
            except (OSError, ValueError):
                pass
            current.update(self._new)
            tmp = self.cache_path.with_name(f"{CACHE}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            tmp.write_text(json.dumps(current, indent=0, sort_keys=True))
            os.replace(tmp, self.cache_path)
            self._cache, self._new = current, {}
        except OSError:
            pass  # a read-only store root: digests are recomputed next time
