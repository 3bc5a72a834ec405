"""Content-keyed zarr (format 3) stores with atomic publish, provenance and verification.

Layout: `<root>/<stage>/<key>/` holding `data.zarr` (the xarray Dataset, metadata consolidated
at publish: `xarray.open_zarr("<root>/<stage>/<key>/data.zarr")` opens it without podbench),
the manifest `podbench-manifest.json` (size and crc32c of every file of every array, string arrays
included) and the completion marker `podbench-complete.json`. A store exists only once it holds
the marker; builds happen in a temporary sibling published by `podbench.publish` under a
per-key lock (`<key>.lock`, removed on release), so a killed build leaves nothing that is
listed and two builders of one key leave one store. Opening a store checks its manifest
(every chunk present, of its size); `verify` also compares checksums and finds extra files.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from podbench import __version__
from podbench.errors import PodbenchError, StoreError
from podbench.features.fingerprints import Fingerprints
from podbench.features.keys import SHORT, StageSpec
from podbench.publish import TMP_TAG, is_lock, is_temp, locked, publish_dir, remove_leftovers

COMPLETE = "podbench-complete.json"
MANIFEST = "podbench-manifest.json"
LAST_USED = "podbench-last-used"
DATA = "data.zarr"


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
        chunks = tuple(
            min(chunk_words, n) if d == "word" else max(n, 1) for d, n in zip(var.dims, var.shape)
        )
        enc[name] = {"chunks": chunks, "compressors": compressors()}
    return enc


def write_dataset(path: Path, ds, chunk_words: int, append: bool = False) -> None:
    """Write (or append along `word`) an xarray Dataset as zarr format 3."""
    if append:
        ds.to_zarr(path, zarr_format=3, consolidated=False, append_dim="word")
    else:
        ds.to_zarr(
            path, zarr_format=3, consolidated=False, mode="w-", encoding=encoding(ds, chunk_words)
        )


def consolidate(path: Path) -> None:
    """Consolidate a finished store's metadata, so xarray.open_zarr reads it in one go and
    without a warning (zarr's note that format 3 has no consolidation spec yet is silenced)."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(path)


def dir_size(path: Path) -> int:
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

    HEADER = f"{'stage':<9} {'key':<12}  {'status':<7} {'shape':<22} {'size':>9} {'time':>8}"

    def line(self) -> str:
        shape = "x".join(str(n) for n in self.shape)
        note = f"  {self.note}" if self.note else ""
        return (
            f"{self.stage:<9} {self.key[:SHORT]}  {self.status:<7} {shape:<22} "
            f"{human_bytes(self.nbytes):>9} {self.seconds:7.1f}s{note}"
        )


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
        """Open a complete store lazily as an xarray Dataset, after checking that every chunk
        of its manifest is present with its size (and, for arrays without a zarr checksum, its
        checksum)."""
        import xarray as xr

        path = self.path(stage, key)
        if self.marker(path) is None:
            raise StoreError(
                f"no complete {stage} store {key[:SHORT]} under {self.root} "
                "(run `podbench build-features`)"
            )
        problems = check_chunks(path, thorough=False)
        if problems:
            raise StoreError(
                f"{stage} store {key[:SHORT]} ({path}) is damaged: {problems[0]}; "
                f"run `podbench stores gc --stores {self.root}` (it removes damaged "
                "stores) and rebuild it with `podbench build-features`"
            )
        try:
            (path / LAST_USED).touch()
        except OSError:
            pass
        with reading(path):
            ds = xr.open_zarr(path / DATA, consolidated=True, chunks=None)
        ds.encoding["source"] = str(path)  # the store folder, for errors of later reads
        return ds

    def load(self, stage: str, key: str):
        """`open` and read everything into memory; a chunk that fails its checksum is a
        StoreError naming the store."""
        ds = self.open(stage, key)
        with reading(self.path(stage, key)):
            return ds.load()

    def _fresh(self, path: Path, sources: list) -> bool:
        marker = self.marker(path)
        return marker is not None and marker.get("sources") == sources

    def ensure(
        self,
        spec: StageSpec,
        build: Callable[[Path], dict],
        sources: list[Path],
        shape_of: Callable[[Path], tuple],
        fingerprints: Fingerprints,
    ) -> BuildReport:
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
            with locked(final):
                if not self._fresh(final, prints):
                    status = "rebuilt" if final.exists() else "built"
                    for leftover in final.parent.glob(f"{final.name}{TMP_TAG}*"):
                        shutil.rmtree(leftover, ignore_errors=True)
                    note = self._build(spec, build, prints, final)
        fingerprints.save()
        return BuildReport(
            spec.stage,
            spec.key,
            status,
            shape_of(final),
            dir_size(final),
            time.perf_counter() - t0,
            note,
        )

    def _build(self, spec: StageSpec, build, sources: list, final: Path) -> str:
        """Build into a temporary sibling and publish it; return the builder's `note`."""
        import zarr

        notes = []

        def write(tmp: Path) -> str:
            extra = build(tmp / DATA) or {}
            notes.append(str(extra.get("note", "")))
            provenance = {
                "stage": spec.stage,
                "key": spec.key,
                "fragment": spec.fragment,
                "parents": spec.parents,
                "podbench_version": __version__,
                "sources": sources,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "host": socket.gethostname(),
                **extra,
            }
            group = zarr.open_group(tmp / DATA, mode="r+")
            group.attrs.update(json.loads(json.dumps(provenance)))
            arrays = {name: list(arr.shape) for name, arr in group.arrays()}
            consolidate(tmp / DATA)
            (tmp / MANIFEST).write_text(json.dumps(chunk_manifest(tmp / DATA)))
            return json.dumps({**provenance, "arrays": arrays}, indent=1)

        publish_dir(final, write, COMPLETE, f"building the {spec.stage} store")
        return notes[0]

    # ------------------------------------------------------------------ inspection

    def complete_stores(self) -> list[tuple[str, str, Path, dict]]:
        """(stage, key, path, marker) of every complete store, oldest first."""
        out = []
        for path in sorted(self.root.glob("*/*")):
            if is_temp(path) or not path.is_dir():
                continue
            marker = self.marker(path)
            if marker is not None:
                out.append((path.parent.name, path.name, path, marker))
        return sorted(out, key=lambda r: r[3].get("created", ""))

    def find(self, prefix: str) -> tuple[str, str, Path, dict]:
        """The complete store whose key starts with `prefix`."""
        hits = [s for s in self.complete_stores() if s[1].startswith(prefix)]
        if not hits:
            raise StoreError(f"no complete store with a key starting {prefix!r} under {self.root}")
        if len(hits) > 1:
            raise StoreError(
                f"key prefix {prefix!r} is ambiguous: "
                + ", ".join(f"{s[0]} {s[1][:SHORT]}" for s in hits)
            )
        return hits[0]

    def leftovers(self) -> list[Path]:
        """Temporary siblings of interrupted builds and lock files of dead builders."""
        return sorted(p for p in self.root.glob("*/*") if is_temp(p) or is_lock(p))

    def require_root(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"store root {self.root} does not exist or is not a folder")

    def verify(self, path: Path) -> list[str]:
        """Check every chunk against the store's manifest (present, same size, same checksum,
        nothing extra); stores without a manifest have every chunk decoded instead. Returns
        the problems found (empty: ok)."""
        if self.marker(path) is None:
            return [f"{path}: no completion marker"]
        if (path / MANIFEST).is_file():
            return [f"{path}: {p}" for p in check_chunks(path, thorough=True)]
        return [f"{path}: {p}" for p in decode_chunks(path)]

    def gc(self, older_than_days: float | None = None, thorough: bool = False) -> list[Path]:
        """Remove leftovers of dead builds (temporary folders, stale lock files), damaged
        stores (a chunk missing or of the wrong size; with `thorough`, any `verify` problem)
        and, optionally, stores unused for N days."""
        self.require_root()
        removed = []
        for stage in sorted(p for p in self.root.iterdir() if p.is_dir()):
            removed += remove_leftovers(stage)
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        for _, _, path, _ in self.complete_stores():
            damaged = bool(self.verify(path) if thorough else check_chunks(path, thorough=False))
            if cutoff is not None and not damaged:
                used = path / LAST_USED
                last = used.stat().st_mtime if used.exists() else (path / COMPLETE).stat().st_mtime
                damaged = last < cutoff
            if damaged:
                with locked(path):
                    shutil.rmtree(path)
                removed.append(path)
        return removed


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Reads of store `path`: a decode or checksum failure becomes one StoreError line."""
    try:
        yield
    except PodbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - zarr/numcodecs raise several types on bad bytes
        found = check_chunks(path, thorough=True) if (path / MANIFEST).is_file() else []
        what = found[0] if found else f"{type(exc).__name__}: {exc}"
        raise StoreError(
            f"store {path} is corrupt: {what}; run `podbench stores gc --verify "
            f"--stores {path.parent.parent}` (it removes corrupt stores) and rebuild "
            "it with `podbench build-features`"
        ) from None


def _crc(path: Path) -> int:
    import google_crc32c

    return int(google_crc32c.value(path.read_bytes()))


def chunk_manifest(zarr_path: Path) -> dict:
    """Every file of a zarr group: {"arrays": {name: {rows, chunk_rows, checksummed}},
    "files": {relative path: [size, crc32c]}}. Numeric arrays carry zarr's crc32c inside each
    chunk as well; string arrays have only this one."""
    import zarr

    group = zarr.open_group(zarr_path, mode="r")
    arrays = {}
    for name, arr in group.arrays():
        codecs = [type(c).__name__ for c in getattr(arr.metadata, "codecs", ())]
        arrays[name] = {
            "rows": int(arr.shape[0]) if arr.ndim else 1,
            "chunk_rows": int(arr.chunks[0]) if arr.ndim else 1,
            "checksummed": any("Crc32c" in c for c in codecs),
        }
    files = {
        str(f.relative_to(zarr_path)): [f.stat().st_size, _crc(f)]
        for f in sorted(zarr_path.rglob("*"))
        if f.is_file()
    }
    return {"arrays": arrays, "files": files}


def _where(rel: str, arrays: dict) -> str:
    """`array 'latent' rows 64..128 (chunk latent/c/1/0/0)` for a file of the manifest."""
    parts = rel.split("/")
    meta = arrays.get(parts[0])
    if meta is None or len(parts) < 2 or parts[1] != "c":
        return f"metadata file {rel}"
    if len(parts) == 2:
        return f"array {parts[0]!r} (chunk {rel})"
    lo = int(parts[2]) * meta["chunk_rows"]
    hi = min(lo + meta["chunk_rows"], meta["rows"])
    return f"array {parts[0]!r} rows {lo}..{hi} (chunk {rel})"


def check_chunks(path: Path, thorough: bool) -> list[str]:
    """Compare a store's files with its manifest: missing, truncated and resized files always;
    altered bytes (checksums) of every file when `thorough`, else only of arrays without a
    zarr checksum of their own (the string labels); extra files when `thorough`."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return []  # built before manifests existed: `verify` decodes it instead
    except (OSError, ValueError) as exc:
        return [f"manifest {MANIFEST} is unreadable ({exc})"]
    arrays, root = manifest["arrays"], path / DATA
    problems = []
    for rel, (size, crc) in manifest["files"].items():
        f = root / rel
        where = _where(rel, arrays)
        try:
            actual = f.stat().st_size
        except FileNotFoundError:
            problems.append(f"{where} is missing")
            continue
        if actual < size:
            problems.append(f"{where} is truncated ({actual} of {size} bytes)")
        elif actual != size:
            problems.append(f"{where} has {actual} bytes, expected {size}")
        elif thorough or not arrays.get(rel.split("/")[0], {}).get("checksummed", True):
            if _crc(f) != crc:
                problems.append(f"{where} is altered (checksum mismatch)")
    if thorough:
        listed = set(manifest["files"])
        for f in sorted(root.rglob("*")):
            rel = str(f.relative_to(root))
            if f.is_file() and rel not in listed:
                problems.append(f"{_where(rel, arrays)} is extra (not in the manifest)")
    return problems


def decode_chunks(path: Path) -> list[str]:
    """Read every chunk of every array of a store without a manifest (zarr checks crc32c)."""
    import zarr

    marker = Stores.marker(path) or {}
    try:
        arrays = dict(zarr.open_group(path / DATA, mode="r").arrays())
    except Exception as exc:  # noqa: BLE001 - any failure to open is a finding
        return [f"cannot open ({exc})"]
    problems = []
    for name, shape in marker.get("arrays", {}).items():
        if name not in arrays:
            problems.append(f"array {name!r} is missing")
        elif list(arrays[name].shape) != shape:
            problems.append(
                f"array {name!r} has shape {arrays[name].shape}, expected {tuple(shape)}"
            )
    for name, arr in arrays.items():
        step = arr.chunks[0] if arr.ndim else 1
        for start in range(0, max(arr.shape[0], 1) if arr.ndim else 1, step):
            try:
                arr[start : start + step] if arr.ndim else arr[()]
            except Exception as exc:  # noqa: BLE001 - a checksum or decode failure
                problems.append(f"array {name!r} rows {start}..{start + step}: {exc}")
    return problems


def shape_of_var(var: str) -> Callable[[Path], tuple]:
    """A `shape_of` for `Stores.ensure`: the shape of one array from its zarr.json (a damaged
    one is a StoreError naming the store)."""

    def shape(path: Path) -> tuple:
        with reading(path):
            meta = json.loads((path / DATA / var / "zarr.json").read_text())
            return tuple(meta["shape"])

    return shape
