"""Resume snapshots: a trained program's working state, written between epochs, so that a
killed run started again with the same command goes on from its last snapshot instead of
from epoch 0.

A program's snapshots live in `<output.stores>/snapshots/<program key>/`, the key a hash of
its points' training keys (a run of the same points finds them, whatever the command). One
file per chunk of lanes, `chunk-<c>.npz`, holds the chunk's lanes, the next epoch, the
working state and the host bank of stopped lanes (`podbench.train.execute.train_chunk`), the
widths so far, the training seconds so far and whether the chunk finished. Each is published
atomically (a temporary file renamed in), so a kill leaves the previous one whole. Training
from a snapshot gives the same results, bit for bit, as training straight through: a lane's
randomness is a function of its key and the epoch, and the state is restored exactly. The
folder is removed once the program's results are written. A snapshot whose lanes or shapes do
not match the program (a different chunking, say) is ignored, with a line in the log.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from podbench.errors import OutputError
from podbench.publish import publish_file


@dataclass
class Resumed:
    """A chunk's training as a snapshot left it."""

    epoch: int  # the next epoch to train
    finished: bool  # every lane stopped or ran out of epochs
    working: object  # the working state (host arrays, the structure of the program's State)
    bank: object | None  # host copy of every lane (None: the working set was never compacted)
    ids: np.ndarray  # the lanes in the working set's first slots
    pick: np.ndarray | None  # the lanes the working set holds, fillers included (None: all)
    widths: list[int]
    seconds: float  # training seconds to this point, over every run that got there (the
    # work a killed run did after its last snapshot, done again, is not counted twice)


@dataclass
class Snapshots:
    """Where a program's resume snapshots go, and how often (`every_s` seconds of training
    between two; 0: after every epoch; None: never)."""

    folder: Path
    every_s: float | None
    log: Callable[[str], None] = print
    _last: float = field(default_factory=time.perf_counter, init=False, repr=False)

    @classmethod
    def of_program(
        cls,
        stores: str | Path,
        training_keys: Sequence[str],
        every_s: float | None,
        log: Callable[[str], None] = print,
    ) -> Snapshots:
        key = hashlib.sha256("\n".join(sorted(training_keys)).encode()).hexdigest()
        return cls(Path(stores).expanduser() / "snapshots" / key[:16], every_s, log)

    def path(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk}.npz"

    def due(self) -> bool:
        """Whether a snapshot is due (enough training since the last one)."""
        return self.every_s is not None and time.perf_counter() - self._last >= self.every_s

    def save(self, chunk: int, lanes: np.ndarray, resumed: Resumed) -> None:
        """Publish chunk `chunk`'s snapshot. A failed write (a full disk) is logged and
        training goes on: only a resume would have needed it."""
        import jax

        arrays = {"lanes": np.asarray(lanes), "ids": np.asarray(resumed.ids)}
        arrays["meta"] = np.array([resumed.epoch, int(resumed.finished)], np.int64)
        arrays["seconds"] = np.array(resumed.seconds, np.float64)
        arrays["widths"] = np.asarray(resumed.widths, np.int64)
        if resumed.pick is not None:
            arrays["pick"] = np.asarray(resumed.pick)
        for name, tree in (("working", resumed.working), ("bank", resumed.bank)):
            if tree is not None:
                for i, leaf in enumerate(jax.tree.leaves(tree)):
                    arrays[f"{name}_{i}"] = np.asarray(leaf)
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            publish_file(
                self.path(chunk),
                lambda tmp: np.savez(tmp, allow_pickle=False, **arrays),
                "resume snapshot",
            )
        except (OSError, OutputError) as err:
            self.log(f"could not write the resume snapshot {self.path(chunk)}: {err}")
        self._last = time.perf_counter()

    def load(self, chunk: int, lanes: np.ndarray, like: object) -> Resumed | None:
        """Chunk `chunk`'s snapshot if there is one for exactly these lanes, its trees in the
        structure of `like` (the chunk's freshly initialised working state); else None."""
        import jax

        path = self.path(chunk)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if not np.array_equal(arrays["lanes"], lanes):
                raise ValueError("it holds other lanes")
            leaves, treedef = jax.tree.flatten(like)

            def tree(name: str, lane_count: int | None):
                if f"{name}_0" not in arrays:
                    return None
                got = [arrays[f"{name}_{i}"] for i in range(len(leaves))]
                for g, want in zip(got, leaves):
                    shape = (*([lane_count] if lane_count else want.shape[:1]), *want.shape[1:])
                    if g.shape != shape or g.dtype != want.dtype:
                        raise ValueError(f"an array of shape {g.shape}, expected {shape}")
                return jax.tree.unflatten(treedef, got)

            epoch, finished = (int(v) for v in arrays["meta"])
            pick = arrays.get("pick")
            working = tree("working", None if pick is None else len(pick))
            if working is None:
                raise ValueError("it holds no working state")
            resumed = Resumed(
                epoch,
                bool(finished),
                working,
                tree("bank", len(lanes)),
                arrays["ids"],
                pick,
                [int(w) for w in arrays["widths"]],
                float(arrays["seconds"]),
            )
        except (OSError, ValueError, KeyError) as err:
            self.log(f"ignoring the resume snapshot {path}: {err}")
            return None
        self._last = time.perf_counter()
        return resumed

    def clear(self) -> None:
        """Remove the program's snapshots (its results are written)."""
        shutil.rmtree(self.folder, ignore_errors=True)
