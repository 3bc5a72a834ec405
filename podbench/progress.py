"""Progress of long steps: a tqdm bar on a terminal or in a notebook; elsewhere (a log file, a
batch job, CI) a line on standard error every `PODBENCH_PROGRESS_EVERY` seconds (default 10)
once a step has run that long, and a closing line, so short steps stay silent and long ones
say how far they are and how long is left."""

from __future__ import annotations

import os
import sys
import time
from typing import Protocol, TextIO

from podbench.errors import ConfigError

EVERY_ENV = "PODBENCH_PROGRESS_EVERY"  # seconds between log lines (0: a line every update)
EVERY = 10.0


class Progress(Protocol):
    """What a step calls on its progress: steps done, extra fields to show, the end."""

    def update(self, n: int = 1) -> object: ...

    def set_postfix(self, **fields: object) -> None: ...

    def close(self) -> None: ...


class LogProgress:
    """Progress as log lines: at most one per `every` seconds, and a closing line if any was
    written (a step shorter than `every` writes nothing)."""

    def __init__(
        self, total: int, desc: str, unit: str, every: float, stream: TextIO, initial: int = 0
    ) -> None:
        self.total, self.desc, self.every, self.stream = total, desc, every, stream
        self.unit = unit if len(unit) <= 2 else f"{unit}s"  # "B" stays, "window" -> "windows"
        self.done, self.initial, self.fields = initial, initial, ""
        self.start = self.last = time.perf_counter()
        self.written = False

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            elapsed = now - self.start
            ran = self.done - self.initial  # done by this step (not before a resume)
            left = elapsed / ran * (self.total - self.done) if ran else float("nan")
            share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
            self._write(
                f"{self.done}/{self.total} {self.unit}{share}, {elapsed:.0f} s, "
                f"about {left:.0f} s left"
            )

    def set_postfix(self, **fields: object) -> None:
        self.fields = ", ".join(f"{k} {v}" for k, v in fields.items())

    def close(self) -> None:
        if self.written:
            elapsed = time.perf_counter() - self.start
            self._write(f"{self.done}/{self.total} {self.unit} in {elapsed:.0f} s")

    def _write(self, text: str) -> None:
        extra = f" [{self.fields}]" if self.fields else ""
        print(f"{self.desc}: {text}{extra}", file=self.stream, flush=True)
        self.written = True


def progress(total: int, desc: str, unit: str = "it", initial: int = 0) -> Progress:
    """The progress of a step of `total` units, `initial` of them done before (a resumed
    training: the time left is paced by what this run does): a bar that disappears when done
    on a terminal or in a notebook, log lines elsewhere (`LogProgress`); call .update(n) and
    .close()."""
    stream = sys.stderr
    if stream.isatty() or "ipykernel" in sys.modules:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, file=stream, initial=initial)
    return LogProgress(total, desc, unit, log_every(), stream, initial)


def log_every() -> float:
    """Seconds between progress lines in logs: `PODBENCH_PROGRESS_EVERY`, default 10."""
    raw = os.environ.get(EVERY_ENV, "")
    try:
        every = float(raw) if raw else EVERY
    except ValueError:
        every = -1.0
    if not every >= 0:
        raise ConfigError(f"{EVERY_ENV}={raw!r}: expected a number of seconds >= 0")
    return every
