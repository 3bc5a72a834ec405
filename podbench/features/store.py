"""Content-keyed zarr (format 3) stores with atomic publish, provenance and verification.

Layout: `<root>/<stage>/<key>/` holding `data.zarr` (the xarray Dataset, metadata consolidated
at publish: `xarray.open_zarr("<root>/<stage>/<key>/data.zarr")` opens it without podbench)
and the completion marker `podbench-complete.json`; lock files live in `<root>/.locks/`. A
store exists only once it holds the marker; builds happen in a temporary sibling that is
renamed into place, under a per-key file lock, so a killed build leaves nothing that looks
complete and two builders of one key leave one store. Chunks carry crc32c checksums, so
`verify` finds corrupted bytes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from podbench import __version__
from podbench.errors import StoreError
from podbench.features.fingerprints import Fingerprints
from podbench.features.keys import SHORT, StageSpec

COMPLETE = "podbench-complete.json"
LAST_USED = "podbench-last-used"
DATA = "data.zarr"
TMP_TAG = ".tmp-"
LOCKS = ".locks"


def compressors():
    """Codecs of every podbench array: blosc-zstd with bitshuffle, then a crc32c checksum."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    return [BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"), Crc32cCodec()]


def encoding(ds, chunk_words: int) -> dict:
    """Chunk every variable along `word` (whole extent along the other dims)."""
    enc = {}
    for name, var in {**ds.data_vars, **ds.coords}.items():
        if var.dtype.kind in "OUT":
            continue
        chunks = tuple(min(chunk_words, n) if d == "word" else max(n, 1)
                       for d, n in zip(var.dims, var.shape))
        enc[name] = {"chunks": chunks, "compressors": compressors()}
    return enc


def write_dataset(path: Path, ds, chunk_words: int, append: bool = False) -> None:
    """Write (or append along `word`) an xarray Dataset as zarr format 3."""
    if append:
        ds.to_zarr(path, zarr_format=3, consolidated=False, append_dim="word")
    else:
        ds.to_zarr(path, zarr_format=3, consolidated=False, mode="w-",
                   encoding=encoding(ds, chunk_words))


def consolidate(path: Path) -> None:
    """Consolidate a finished store's metadata, so xarray.open_zarr reads it in one go and
    without a warning (zarr's note that format 3 has no consolidation spec yet is silenced)."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(path)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@dataclass
class BuildReport:
    """One line of the build report: stage, key, hit or built, shape, size, time."""

    stage: str
    key: str
    status: str  # hit | built | rebuilt (stale sources)
    shape: tuple
    nbytes: int
    seconds: float
    note: str = ""

    def line(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        note = f"  {self.note}" if self.note else ""
        return (f"{self.stage:<9} {self.key[:SHORT]}  {self.status:<7} {shape:<22} "
                f"{human_bytes(self.nbytes):>9} {self.seconds:7.1f}s{note}")


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Stores:
    """The store root: find, open, build, list, verify and garbage-collect stores."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    @staticmethod
    def marker(path: Path) -> dict | None:
        try:
            return json.loads((path / COMPLETE).read_text())
        except (OSError, ValueError):
            return None

    def open(self, stage: str, key: str):
        """Open a complete store lazily as an xarray Dataset."""
        import xarray as xr

        path = self.path(stage, key)
        if self.marker(path) is None:
            raise StoreError(f"no complete {stage} store {key[:SHORT]} under {self.root} "
                             "(run `podbench build-features`)")
        try:
            (path / LAST_USED).touch()
        except OSError:
            pass
        return xr.open_zarr(path / DATA, consolidated=True, chunks=None)

    def lock_path(self, path: Path) -> Path:
        """A store's lock file, kept apart (`<root>/.locks/`) so it never looks like a store."""
        return self.root / LOCKS / f"{path.parent.name}-{path.name}.lock"

    @contextmanager
    def _lock(self, path: Path) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.lock_path(path)
        lock.parent.mkdir(exist_ok=True)
        with open(lock, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _leftovers(self, path: Path) -> list[Path]:
        return sorted(path.parent.glob(f"{path.name}{TMP_TAG}*"))

    def _fresh(self, path: Path, sources: list) -> bool:
        marker = self.marker(path)
        return marker is not None and marker.get("sources") == sources

    def ensure(self, spec: StageSpec, build: Callable[[Path], dict], sources: list[Path],
               shape_of: Callable[[Path], tuple], fingerprints: Fingerprints) -> BuildReport:
        """Return the store of `spec`, building it first if it is missing or stale.

        `build(zarr_path)` writes the xarray Dataset there and returns extra provenance;
        `sources` are the files it reads (their content fingerprints, labelled relative to
        the dataset or store root, are kept in the marker; a change means rebuild).
        """
        t0 = time.perf_counter()
        final = self.path(spec.stage, spec.key)
        status, note = "hit", ""
        prints = fingerprints.of(sources)
        if not self._fresh(final, prints):
            with self._lock(final):
                if not self._fresh(final, prints):
                    status = "rebuilt" if final.exists() else "built"
                    for leftover in self._leftovers(final):
                        shutil.rmtree(leftover, ignore_errors=True)
                    note = self._build(spec, build, prints, final)
        fingerprints.save()
        return BuildReport(spec.stage, spec.key, status, shape_of(final), _dir_size(final),
                           time.perf_counter() - t0, note)

    def _build(self, spec: StageSpec, build, sources: list, final: Path) -> str:
        """Build into a temporary sibling and publish it; return the builder's `note`."""
        import zarr

        tmp = final.parent / f"{final.name}{TMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(parents=True)
            extra = build(tmp / DATA) or {}
            provenance = {
                "stage": spec.stage, "key": spec.key, "fragment": spec.fragment,
                "parents": spec.parents, "podbench_version": __version__,
                "sources": sources,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "host": socket.gethostname(), **extra,
            }
            group = zarr.open_group(tmp / DATA, mode="r+")
            group.attrs.update(json.loads(json.dumps(provenance)))
            arrays = {name: list(arr.shape) for name, arr in group.arrays()}
            consolidate(tmp / DATA)
            (tmp / COMPLETE).write_text(json.dumps({**provenance, "arrays": arrays}, indent=1))
            self._publish(tmp, final)
            return str(extra.get("note", ""))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _publish(tmp: Path, final: Path) -> None:
        """Rename tmp into place; an existing (stale) store is moved aside first."""
        if final.exists():
            trash = final.parent / f"{final.name}{TMP_TAG}old-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another node published the same key first (no shared lock): keep theirs.
            if Stores.marker(final) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ inspection

    def complete_stores(self) -> list[tuple[str, str, Path, dict]]:
        """(stage, key, path, marker) of every complete store, oldest first."""
        out = []
        for path in sorted(self.root.glob("*/*")):
            marker = self.marker(path) if path.is_dir() else None
            if marker is not None:
                out.append((path.parent.name, path.name, path, marker))
        return sorted(out, key=lambda r: r[3].get("created", ""))

    def find(self, prefix: str) -> tuple[str, str, Path, dict]:
        """The complete store whose key starts with `prefix`."""
        hits = [s for s in self.complete_stores() if s[1].startswith(prefix)]
        if not hits:
            raise StoreError(f"no complete store with a key starting {prefix!r} under {self.root}")
        if len(hits) > 1:
            raise StoreError(f"key prefix {prefix!r} is ambiguous: "
                             + ", ".join(f"{s[0]} {s[1][:SHORT]}" for s in hits))
        return hits[0]

    def leftovers(self) -> list[Path]:
        return sorted(self.root.glob(f"*/*{TMP_TAG}*"))

    def verify(self, path: Path) -> list[str]:
        """Read every chunk of every array; return the problems found (empty: ok)."""
        import zarr

        marker = self.marker(path)
        if marker is None:
            return [f"{path}: no completion marker"]
        problems = []
        try:
            group = zarr.open_group(path / DATA, mode="r")
            arrays = dict(group.arrays())
        except Exception as exc:  # noqa: BLE001 - any failure to open is a finding
            return [f"{path}: cannot open ({exc})"]
        for name, shape in marker.get("arrays", {}).items():
            if name not in arrays:
                problems.append(f"{path}: array {name!r} is missing")
            elif list(arrays[name].shape) != shape:
                problems.append(f"{path}: array {name!r} has shape {arrays[name].shape}, "
                                f"expected {tuple(shape)}")
        for name, arr in arrays.items():
            step = arr.chunks[0] if arr.ndim else 1
            for start in range(0, max(arr.shape[0], 1) if arr.ndim else 1, step):
                try:
                    arr[start:start + step] if arr.ndim else arr[()]
                except Exception as exc:  # noqa: BLE001 - a checksum or decode failure
                    problems.append(f"{path}: array {name!r} rows {start}..{start + step}: {exc}")
        return problems

    def gc(self, older_than_days: float | None = None) -> list[Path]:
        """Remove leftovers of dead builds and, optionally, stores unused for N days."""
        removed = []
        for tmp in self.leftovers():
            final = tmp.parent / tmp.name.split(TMP_TAG)[0]
            lock = self.lock_path(final)
            lock.parent.mkdir(exist_ok=True)
            with open(lock, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a build of this key is running
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        for lock in sorted((self.root / LOCKS).glob("*.lock")):
            with open(lock, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # held by a running build
                lock.unlink(missing_ok=True)  # a builder that opens it later makes a new one
        if older_than_days is not None:
            cutoff = time.time() - older_than_days * 86400
            for _, _, path, _ in self.complete_stores():
                used = path / LAST_USED
                last = used.stat().st_mtime if used.exists() else (path / COMPLETE).stat().st_mtime
                if last < cutoff:
                    with self._lock(path):
                        shutil.rmtree(path)
                    removed.append(path)
        return removed


def shape_of_var(var: str) -> Callable[[Path], tuple]:
    """A `shape_of` for `Stores.ensure`: the shape of one array from its zarr.json."""

    def shape(path: Path) -> tuple:
        meta = json.loads((path / DATA / var / "zarr.json").read_text())
        return tuple(meta["shape"])

    return shape
