"""Atomic publishing of folders and files, and one lock per published name.

Every writer of podbench (stores, results, pretraining, the high-gamma derivative, the sweep
summary) goes through `publish_dir` or `publish_file`:

1. the content is written into a temporary sibling `<name>.tmp-<pid>-<hex>`;
2. every file in it is fsynced, then the completion marker is written last (and fsynced);
3. the sibling replaces the target in one step: an atomic exchange (Linux renameat2
   RENAME_EXCHANGE) when a target exists, a plain rename otherwise; where the filesystem has no
   exchange, the old target is renamed aside to `<name>.tmp-old-<hex>` first;
4. the old folder, now under a temporary name, is deleted.

So a kill at any moment leaves the old complete folder or the new complete one at `<name>`,
plus temporary siblings that `remove_leftovers` cleans. Nothing whose name holds TMP_TAG is
ever listed as a store or a result. A full disk or a read-only root while writing is one
`OutputError` naming the stage and the path; the temporary sibling is removed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from podbench.errors import DiskFullError, OutputError

TMP_TAG = ".tmp-"
LOCK_SUFFIX = ".lock"
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
DENIED = {errno.EROFS, errno.EACCES, errno.EPERM}
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def is_temp(path: Path) -> bool:
    """A temporary sibling (an unpublished or replaced folder or file)?"""
    return TMP_TAG in Path(path).name


def is_lock(path: Path) -> bool:
    return Path(path).name.endswith(LOCK_SUFFIX)


def final_of(temp: Path) -> Path:
    """The published name a temporary sibling belongs to."""
    return temp.parent / temp.name.split(TMP_TAG)[0]


def temp_sibling(final: Path, tag: str = "", suffix: str = "") -> Path:
    """`<name>.tmp-<tag><pid>-<hex><suffix>` (a suffix for writers that check extensions)."""
    return final.parent / f"{final.name}{TMP_TAG}{tag}{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def output_error(exc: BaseException, stage: str, path: Path) -> OutputError | None:
    """The one-line error for a failed write (full disk, read-only), if `exc` is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in FULL:
            return DiskFullError(
                f"{stage}: disk full while writing {path} ({seen.strerror}); nothing was published"
            )
        if isinstance(seen, OSError) and seen.errno in DENIED:
            return OutputError(
                f"{stage}: cannot write {path} ({seen.strerror}); nothing was published"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under `path` (and `path` itself)."""
    for folder, _, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace(tmp: Path, final: Path) -> None:
    """Put `tmp` at `final`, replacing (and deleting) what was there."""
    if final.exists():
        if _exchange(tmp, final):
            _fsync_dir(final.parent)
            _remove(tmp)
            return
        aside = temp_sibling(final, "old-")
        os.rename(final, aside)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        _remove(aside)
        return
    os.rename(tmp, final)
    _fsync_dir(final.parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def _publishing(tmp: Path, final: Path, stage: str) -> Iterator[None]:
    """Remove the temporary `tmp` if publishing fails; an output failure (disk full, read-only)
    becomes one line naming the stage and `final`."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException as exc:
        _remove(tmp)
        friendly = output_error(exc, stage, final)
        if friendly is not None:
            raise friendly from None
        raise


def publish_dir(final: Path, write: Callable[[Path], str], marker: str, stage: str) -> None:
    """Publish a folder: `write(tmp)` fills the temporary sibling and returns the text of the
    completion marker `marker`, which is written last; then the sibling replaces `final`."""
    final = Path(final)
    tmp = temp_sibling(final)
    with _publishing(tmp, final, stage):
        tmp.mkdir()
        text = write(tmp)
        fsync_tree(tmp)
        _write_synced(tmp / marker, text)
        _fsync_dir(tmp)
        _replace(tmp, final)


def publish_file(final: Path, write: Callable[[Path], object], stage: str) -> None:
    """Publish one file: `write(tmp)` writes it under a temporary name (ending like `final`;
    what it returns is ignored), then it is renamed in."""
    final = Path(final)
    tmp = temp_sibling(final, suffix=final.suffix)
    with _publishing(tmp, final, stage):
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(final.parent)


def publish_text(final: Path, text: str, stage: str) -> None:
    """Publish one UTF-8 text file (`publish_file`)."""
    publish_file(final, lambda tmp: tmp.write_text(text, encoding="utf-8"), stage)


def publish_bytes(final: Path, data: bytes, stage: str) -> None:
    """Publish one binary file (`publish_file`)."""
    publish_file(final, lambda tmp: tmp.write_bytes(data), stage)


def lock_path(final: Path) -> Path:
    return final.parent / f"{final.name}{LOCK_SUFFIX}"


@contextmanager
def locked(final: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold the lock of a published name (`<name>.lock`); yields whether another holder had to
    be waited for. The lock file is removed on release. Non-blocking: raises BlockingIOError
    when held."""
    path = lock_path(Path(final))
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not blocking:
                    raise
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by its last holder (or gc) while we waited: take the new one
                continue
            try:
                yield waited
            finally:
                path.unlink(missing_ok=True)
            return
        finally:
            os.close(fd)


def remove_leftovers(folder: Path, grace_s: float = 0.0) -> list[Path]:
    """Remove the temporary siblings and stale lock files directly inside `folder` whose name
    is not locked by a running writer (and, for temporaries, older than `grace_s`)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in sorted(folder.iterdir()):
        if is_temp(entry):
            final = final_of(entry)
            try:
                if now - entry.lstat().st_mtime < grace_s:
                    continue
                with locked(final, blocking=False):
                    if entry.name.startswith(f"{final.name}{TMP_TAG}old-") and not final.exists():
                        os.rename(entry, final)  # killed between the two renames: restore it
                    else:
                        _remove(entry)
            except (BlockingIOError, FileNotFoundError):
                continue  # a writer of this name is running
            removed.append(entry)
        elif is_lock(entry):
            if not entry.exists():
                continue  # removed with a temporary sibling's lock just now
            try:
                with locked(entry.parent / entry.name[: -len(LOCK_SUFFIX)], blocking=False):
                    pass  # released without a holder: the file is removed on release
            except (BlockingIOError, FileNotFoundError):
                continue
            removed.append(entry)
    return removed


def clean_tree(root: Path, grace_s: float, depth: int = 4) -> list[Path]:
    """`remove_leftovers` in `root` and its folders down to `depth` levels (a results root:
    <trial>/<run>, <trial>/sweep-<id>/...)."""
    root = Path(root)
    removed = remove_leftovers(root, grace_s)
    if depth > 0 and root.is_dir():
        for sub in sorted(root.iterdir()):
            if sub.is_dir() and not sub.is_symlink() and not is_temp(sub):
                removed += clean_tree(sub, grace_s, depth - 1)
    return removed
